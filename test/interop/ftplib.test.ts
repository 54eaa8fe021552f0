// Python's standard ftplib against myftpd: every command of issue 2, over PASV, EPSV, PORT and EPRT. The session
// itself is test/interop/py/ftplib_session.py; it reports what failed and what it downloaded.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { killRunning, sha256File } from "../helpers/util.js";
import { makeFixtures, run, sha256 } from "./fixtures.js";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "py", "ftplib_session.py");
const STOU_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "py", "ftplib_stou.py");

const ISSUE_COMMANDS =
  "USER PASS QUIT SYST FEAT OPTS NOOP HELP STAT PWD CWD CDUP MKD RMD DELE RNFR RNTO LIST NLST MLSD MLST SIZE MDTM MFMT TYPE MODE STRU ALLO PASV EPSV PORT EPRT REST RETR STOR APPE ABOR XPWD XCWD XCUP XMKD XRMD".split(
    " ",
  );

let srv: RunningServer;
let home: string;
let local: string;
const sentAll = new Set<string>();

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "py-secret" }]);
  home = srv.homeOf("alice");
  local = tempDir("myftp-ftplib-");
  symlinkSync("/etc", path.join(home, "etc"));
  // A 32 MiB file for ABOR to interrupt.
  writeFileSync(path.join(home, "abort-src.bin"), Buffer.alloc(32 * 1024 * 1024));
});
afterEach(() => killRunning());
afterAll(async () => {
  killRunning();
  await srv.close();
  rmSync(local, { recursive: true, force: true });
});

const modes: [string, string, boolean][] = [
  ["PASV", "pasv", true],
  ["EPSV", "epsv", false],
  ["PORT", "port", false],
  ["EPRT", "eprt", false],
];

describe.each(modes)("ftplib over %s", (verb, mode, big) => {
  it("runs every command with the exact replies, and moves every file intact", async () => {
    const src = path.join(local, mode);
    const hashes = makeFixtures(src, { big });
    const remote = `py-${mode}`;
    const cfg = { port: srv.port, user: "alice", password: "py-secret", mode, local: src, remote };
    try {
      const r = await run("python3", [SCRIPT, JSON.stringify(cfg)], { timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { failures: string[]; sent: string[]; dataVerbs: string[]; downloads: Record<string, string> };
      expect(out.failures).toEqual([]);
      expect(out.dataVerbs).toEqual([verb]);
      for (const v of out.sent) sentAll.add(v);
      // Every file came back as it went, and is stored as it was sent.
      for (const [name, hash] of hashes) {
        expect(out.downloads[name], name).toBe(hash);
        expect(await sha256File(path.join(home, remote, name)), name).toBe(hash);
      }
      // TYPE A upload stored LF line ends (the file was renamed and deleted later, so check the APPE/REST ones).
      expect(readFileSync(path.join(home, remote, "appended.bin"), "utf8")).toBe("abcdef");
      expect(await sha256File(path.join(home, remote, "resumed.bin"))).toBe(hashes.get("mib.bin"));
      expect(existsSync("/etc/myftp-ftplib-never")).toBe(false);
    } finally {
      rmSync(src, { recursive: true, force: true });
      rmSync(path.join(home, remote), { recursive: true, force: true });
    }
  });
});

describe("ftplib STOU", () => {
  it("storbinary('STOU name') and storbinary('STOU'): the 150 names each file, which holds what was sent", async () => {
    const remote = "py-stou";
    mkdirSync(path.join(home, remote));
    // A file of the name already there: STOU never touches it.
    const old = randomBytes(777);
    writeFileSync(path.join(home, remote, "up.bin"), old);
    const sends: [string, Buffer][] = [
      ["STOU free.bin", randomBytes(300_000)],
      ["STOU up.bin", randomBytes(1000)],
      ["STOU up.bin", Buffer.alloc(0)],
      ["STOU", randomBytes(5000)],
    ];
    const src = path.join(local, "stou");
    mkdirSync(src);
    const files = sends.map(([command, data], i) => {
      writeFileSync(path.join(src, `f${i}`), data);
      return [command, path.join(src, `f${i}`)];
    });
    const cfg = { port: srv.port, user: "alice", password: "py-secret", remote, files };
    try {
      const r = await run("python3", [STOU_SCRIPT, JSON.stringify(cfg)], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as {
        failures: string[];
        stored: { command: string; prelim: string; final: string; name: string | null; fetched: string | null }[];
      };
      expect(out.failures).toEqual([]);
      const names = out.stored.map((s) => s.name);
      expect(names.slice(0, 3)).toEqual(["free.bin", "up.bin.1", "up.bin.2"]);
      expect(names[3]).toMatch(/^stou-[0-9a-f]{12}$/);
      out.stored.forEach((s, i) => {
        const data = sends[i]![1];
        expect(s.final, s.command).toBe(`226 Transfer complete (${data.length} bytes); stored as ${s.name}`);
        expect(s.fetched, s.command).toBe(sha256(data));
        expect(readFileSync(path.join(home, remote, s.name!)).equals(data), s.name!).toBe(true);
      });
      expect(readFileSync(path.join(home, remote, "up.bin")).equals(old)).toBe(true);
    } finally {
      rmSync(src, { recursive: true, force: true });
      rmSync(path.join(home, remote), { recursive: true, force: true });
    }
  });
});

describe("ftplib and a refused upload larger than the socket buffers", () => {
  // ftplib sends the whole file before it reads the reply: a data connection closed with its data unread would be
  // reset under it, and it would report the reset, not the 552.
  const script = [
    "import ftplib, io, json, sys",
    "c = json.loads(sys.argv[1]); out = []",
    "for i in range(3):",
    "    f = ftplib.FTP(); f.connect('127.0.0.1', c['port']); f.login('bob', 'pw')",
    "    try:",
    "        f.storbinary('STOR big%d.bin' % i, io.BytesIO(b'x' * (64 << 20))); out.append('stored')",
    "    except Exception as e:",
    "        out.append(type(e).__name__ + ': ' + str(e))",
    "    f.close()",
    "print(json.dumps(out))",
  ].join("\n");
  it.each([
    ["in the server process", 0],
    ["in a transfer process", 1],
  ])("is reported with its 552 (copied %s)", async (_where, transferProcesses) => {
    const s = await startServer([{ name: "bob", password: "pw", quota: 1024 * 1024 }], { transferProcesses });
    try {
      const r = await run("python3", ["-c", script, JSON.stringify({ port: s.port })], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as string[];
      expect(out).toHaveLength(3);
      for (const o of out) expect(o).toMatch(/^error_perm: 552 /);
    } finally {
      await s.close();
    }
  });
});

describe("ftplib coverage", () => {
  it("sent every command issue 2 lists", () => {
    expect(ISSUE_COMMANDS.filter((v) => !sentAll.has(v))).toEqual([]);
  });
});
