// RETR and HASH open a file by its path as it is, without resolving every link of it first, and then ask the kernel
// where the file is. Two things must hold all the same:
//
// - Nothing outside the home is opened, not even to be refused a moment later: opening is not harmless for
//   everything (a FIFO's blocked writer wakes and writes into nothing, a device acts on its open, as root too). A link
//   in the home to a directory outside leads there. Watched here with inotify (IN_OPEN, IN_ACCESS) on the outside
//   directory: the event is queued by the open itself, so it is there by the time the reply is.
// - The home directory itself may be renamed away and a link to the outside put in its place after the login (by a
//   local process): a file directly in "the home" is then outside, and refused, as LIST and SIZE refuse it.
//
// The replies stay what they were when the path was resolved in full before the open.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { withTimeout } from "../helpers/util.js";

const PYTHON = "/usr/bin/python3";
const SECRET = "SECRET outside\n";

// Prints "ready" once the watch is set; on each line read, prints "events" and the names opened or read since.
const WATCHER = String.raw`
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
if fd < 0 or libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x20 | 0x01) < 0:
    print("error", ctypes.get_errno(), flush=True)
    sys.exit(1)
print("ready", flush=True)
for _ in sys.stdin:
    names = []
    while True:
        try:
            buf = os.read(fd, 65536)
        except BlockingIOError:
            break
        i = 0
        while i < len(buf):
            _wd, _mask, _cookie, n = struct.unpack_from("iIII", buf, i)
            names.append(buf[i + 16 : i + 16 + n].rstrip(b"\0").decode() or ".")
            i += 16 + n
    print("events " + ",".join(names), flush=True)
`;

class Watcher {
  private out = "";
  private wake: (() => void) | null = null;
  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {
    proc.stdout.on("data", (d: Buffer) => {
      this.out += d.toString();
      this.wake?.();
    });
    proc.on("exit", () => this.wake?.());
  }

  static async start(dir: string): Promise<Watcher> {
    const w = new Watcher(spawn(PYTHON, ["-c", WATCHER, dir]));
    expect(await w.line()).toBe("ready");
    return w;
  }

  private async line(): Promise<string> {
    return withTimeout(
      (async () => {
        for (let i = 0; i < 10_000 && !this.out.includes("\n"); i++) {
          if (this.proc.exitCode !== null) throw new Error(`watcher exited: ${this.out}`);
          await new Promise<void>((r) => (this.wake = r));
        }
        const nl = this.out.indexOf("\n");
        const l = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        return l;
      })(),
      10_000,
      "inotify watcher",
    );
  }

  /** The names in the watched directory opened or read since the last call. */
  async events(): Promise<string[]> {
    this.proc.stdin.write("\n");
    const l = await this.line();
    expect(l.startsWith("events ")).toBe(true);
    const names = l.slice("events ".length);
    return names === "" ? [] : names.split(",");
  }

  stop(): void {
    this.proc.kill();
  }
}

let srv: RunningServer;
let home: string;
let outside: string;
let watcher: Watcher | null = null;
const clients: RawFtp[] = [];

beforeEach(async () => {
  srv = await startServer();
  home = srv.homeOf("alice");
  outside = mkdtempSync(path.join(tmpdir(), "myftp-outside-"));
  writeFileSync(path.join(outside, "f.txt"), SECRET);
  execFileSync("mkfifo", [path.join(outside, "pipe")]);
  mkdirSync(path.join(home, "d"));
  writeFileSync(path.join(home, "d", "in.txt"), "inside\n");
  writeFileSync(path.join(home, "f.txt"), "inside home\n");
  symlinkSync(outside, path.join(home, "out"));
});

afterEach(async () => {
  watcher?.stop();
  watcher = null;
  for (const c of clients.splice(0)) await c.close().catch(() => undefined);
  await srv.close();
  rmSync(outside, { recursive: true, force: true });
});

async function login(): Promise<RawFtp> {
  const c = await RawFtp.login(srv.port, "alice", "secret", { type: "I" });
  clients.push(c);
  return c;
}

describe.skipIf(process.platform !== "linux" || !existsSync(PYTHON))("RETR's open of a path as it is", () => {
  it("opens nothing outside the home through a link to a directory there, and refuses as before", async () => {
    const c = await login();
    watcher = await Watcher.start(outside);
    expect((await c.retrieve("RETR d/in.txt")).data.toString()).toBe("inside\n");
    for (const name of ["out/pipe", "out/f.txt"]) {
      const r = await c.retrieve(`RETR ${name}`);
      expect(r.prelim.code, name).toBe(550);
      expect(r.prelim.text, name).toBe("Permission denied");
      expect(r.data.length).toBe(0);
    }
    expect((await c.cmd("HASH out/f.txt")).code).toBe(550);
    expect(await watcher.events()).toEqual([]);
    // The watcher does see an open there.
    closeSync(openSync(path.join(outside, "f.txt"), "r"));
    expect(await watcher.events()).toEqual(["f.txt"]);
    // A FIFO inside the home is opened to be refused, as before: the watcher would see such an open.
    execFileSync("mkfifo", [path.join(home, "d", "pipe")]);
    const r = await c.retrieve("RETR d/pipe");
    expect(r.prelim.code).toBe(550);
    expect(r.prelim.text).toBe("Not a regular file");
  });

  it("refuses a file directly in a home renamed away and replaced by a link to the outside, as LIST does", async () => {
    const c = await login();
    expect((await c.retrieve("RETR f.txt")).data.toString()).toBe("inside home\n");
    renameSync(home, `${home}-away`);
    symlinkSync(outside, home);
    watcher = await Watcher.start(outside);
    expect((await c.retrieve("LIST")).prelim.code).toBe(550);
    const r = await c.retrieve("RETR f.txt");
    expect(r.data.toString()).not.toContain("SECRET");
    expect(r.prelim.code).toBe(550);
    expect(r.prelim.text).toBe("Permission denied");
    expect((await c.cmd("HASH f.txt")).code).toBe(550);
    expect(await watcher.events()).toEqual([]);
    rmSync(home);
    renameSync(`${home}-away`, home);
  });
});
