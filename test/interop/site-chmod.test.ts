// SITE CHMOD from real clients: lftp's chmod (octal and symbolic modes, names with spaces), curl's -Q and Python's
// ftplib sendcmd. Each checks the mode on disk, and that a refusal (setuid, a link leading outside) reaches the client
// as a failure. A client that is not installed skips its tests.
import { chmodSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { killRunning } from "../helpers/util.js";
import { hasCommand, run } from "./fixtures.js";

const PASSWORD = "chmod pw";
let srv: RunningServer;
let home: string;
let outside: string;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: PASSWORD }]);
  home = srv.homeOf("alice");
  outside = tempDir("myftp-chmod-interop-");
  writeFileSync(path.join(outside, "secret.txt"), "secret");
  chmodSync(path.join(outside, "secret.txt"), 0o644);
  symlinkSync(path.join(outside, "secret.txt"), path.join(home, "out-link"));
});
afterEach(() => killRunning());
afterAll(async () => {
  killRunning();
  await srv.close();
  rmSync(outside, { recursive: true, force: true });
});

const modeOf = (p: string) => statSync(p).mode & 0o7777;

/** A fresh directory in the home holding `names` (files, mode 0644) for one test. */
let n = 0;
function fresh(names: string[]): { remote: string; dir: string } {
  const remote = `m${n++}`;
  const dir = path.join(home, remote);
  mkdirSync(dir);
  for (const name of names) {
    writeFileSync(path.join(dir, name), name);
    chmodSync(path.join(dir, name), 0o644);
  }
  return { remote, dir };
}

function expectOutsideUnchanged(): void {
  expect(modeOf(path.join(outside, "secret.txt"))).toBe(0o644);
}

describe.skipIf(!hasCommand("lftp"))("lftp chmod", () => {
  function lftp(commands: string[]) {
    const script = ["set ftp:ssl-allow no", "set net:max-retries 1", "set net:timeout 15", "set cmd:fail-exit yes"];
    script.push(`open --user alice --password '${PASSWORD}' -p ${srv.port} 127.0.0.1`, ...commands);
    return run("lftp", ["-c", script.join("; ")], { timeoutMs: 60_000 });
  }

  it("sets octal and symbolic modes, names with spaces included", async () => {
    const { remote, dir } = fresh(["a.txt", "with space.txt"]);
    mkdirSync(path.join(dir, "sub"));
    chmodSync(path.join(dir, "sub"), 0o755);
    const r = await lftp([`cd ${remote}`, "chmod 640 a.txt", "chmod u+x,g-r 'with space.txt'", "chmod 0700 sub"]);
    expect(r.code, r.stderr).toBe(0);
    expect(modeOf(path.join(dir, "a.txt"))).toBe(0o640);
    // u+x,g-r on 0644 (lftp reads the mode from the listing).
    expect(modeOf(path.join(dir, "with space.txt"))).toBe(0o704);
    expect(modeOf(path.join(dir, "sub"))).toBe(0o700);
  });

  it("fails on a setuid mode and on a link leading outside, changing nothing", async () => {
    const { remote, dir } = fresh(["b.txt"]);
    const suid = await lftp([`chmod 4755 ${remote}/b.txt`]);
    expect(suid.code).not.toBe(0);
    expect(suid.stderr).toMatch(/550 Only permission bits/);
    const link = await lftp(["chmod 666 out-link"]);
    expect(link.code).not.toBe(0);
    expect(link.stderr).toMatch(/550/);
    expect(modeOf(path.join(dir, "b.txt"))).toBe(0o644);
    expectOutsideUnchanged();
  });
});

describe.skipIf(!hasCommand("curl"))("curl -Q SITE CHMOD", () => {
  const url = (p: string) => `ftp://alice:${encodeURIComponent(PASSWORD)}@127.0.0.1:${srv.port}/${p}`;
  const curl = (args: string[]) => run("curl", ["-sS", "--max-time", "30", "--connect-timeout", "5", ...args]);

  it("sets the mode of a file, a name with spaces too", async () => {
    const { remote, dir } = fresh(["c.txt", "c d.txt"]);
    const r = await curl(["-Q", `SITE CHMOD 640 ${remote}/c.txt`, "-Q", `SITE CHMOD 0600 ${remote}/c d.txt`, url(`${remote}/`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(modeOf(path.join(dir, "c.txt"))).toBe(0o640);
    expect(modeOf(path.join(dir, "c d.txt"))).toBe(0o600);
  });

  it("fails (QUOT command failed) on a sticky bit, a missing file and a link leading outside", async () => {
    const { remote, dir } = fresh(["e.txt"]);
    for (const cmd of [`SITE CHMOD 1777 ${remote}`, `SITE CHMOD 644 ${remote}/missing.txt`, "SITE CHMOD 777 out-link", "SITE CHMOD 777 ../../out"]) {
      const r = await curl(["-Q", cmd, url("")]);
      expect(r.code, cmd).toBe(21);
      expect(r.stderr, cmd).toMatch(/QUOT command failed with 550/);
    }
    expect(modeOf(dir)).not.toBe(0o1777);
    expect(modeOf(path.join(dir, "e.txt"))).toBe(0o644);
    expectOutsideUnchanged();
  });
});

const FTPLIB = String.raw`
import ftplib, json, sys
cfg = json.loads(sys.argv[1])
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", cfg["port"], timeout=30)
out = {}
def reply(cmd):
    try:
        return ftp.sendcmd(cmd)
    except ftplib.all_errors as e:
        return str(e)
out["before"] = reply("SITE CHMOD 600 " + cfg["remote"] + "/f.txt")
ftp.login("alice", cfg["password"])
for key, cmd in cfg["commands"].items():
    out[key] = reply(cmd)
ftp.quit()
print(json.dumps(out))
`;

describe.skipIf(!hasCommand("python3"))("Python ftplib sendcmd SITE CHMOD", () => {
  it("gets 200 and the mode changes; 501, 550 and 530 where they are due", async () => {
    const { remote, dir } = fresh(["f.txt", "g h.txt"]);
    const commands = {
      ok: `SITE CHMOD 640 ${remote}/f.txt`,
      spaced: `SITE CHMOD 604 ${remote}/g h.txt`,
      badMode: `SITE CHMOD 9 ${remote}/f.txt`,
      noPath: "SITE CHMOD 644",
      setgid: `SITE CHMOD 2755 ${remote}/f.txt`,
      home: "SITE CHMOD 700 /",
      outside: "SITE CHMOD 777 out-link",
      help: "SITE HELP",
    };
    const r = await run("python3", ["-c", FTPLIB, JSON.stringify({ port: srv.port, password: PASSWORD, remote, commands })]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<keyof typeof commands | "before", string>;
    expect(out.before).toMatch(/^530 /);
    expect(out.ok).toMatch(/^200 SITE CHMOD command successful/);
    expect(out.spaced).toMatch(/^200 /);
    expect(out.badMode).toMatch(/^501 /);
    expect(out.noPath).toMatch(/^501 /);
    expect(out.setgid).toMatch(/^550 Only permission bits/);
    expect(out.home).toMatch(/^550 /);
    expect(out.outside).toMatch(/^550 /);
    expect(out.help).toMatch(/CHMOD/);
    expect(modeOf(path.join(dir, "f.txt"))).toBe(0o640);
    expect(modeOf(path.join(dir, "g h.txt"))).toBe(0o604);
    expectOutsideUnchanged();
  });
});
