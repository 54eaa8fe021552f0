// SITE CHMOD over a raw control connection: the permission bits change on disk, bad modes and paths get 501 or 550,
// setuid, setgid and sticky bits are refused, and the jail holds: `..`, absolute paths and links planted in the home
// never reach a file outside it, and the home's own mode is left alone. An info-level `chmod` event is logged.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp, sessionInNewDir } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";
import { captureLog, type CapturedLog } from "../security/log-capture.js";

let srv: RunningServer;
let home: string;
let outside: string;
let log: CapturedLog;
const open: RawFtp[] = [];

const modeOf = (p: string) => statSync(p).mode & 0o7777;

beforeAll(async () => {
  log = captureLog("info");
  srv = await startServer([{ name: "alice", password: "secret" }], { logger: log.logger });
  home = srv.homeOf("alice");
  outside = mkdtempSync(path.join(tmpdir(), "myftp-chmod-outside-"));
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});
afterAll(async () => {
  await srv.close();
  rmSync(outside, { recursive: true, force: true });
});

async function login(): Promise<RawFtp> {
  const c = await RawFtp.login(srv.port, "alice", "secret");
  open.push(c);
  return c;
}

/** A fresh directory in the home for one test, the session's working directory. */
let dirCount = 0;
function inDir(): Promise<{ c: RawFtp; dir: string; vdir: string }> {
  return sessionInNewDir(login, home, `t${dirCount++}`);
}

/** A file with mode 0644 (whatever the umask). */
function file(p: string, content = "x"): string {
  writeFileSync(p, content);
  chmodSync(p, 0o644);
  return p;
}

describe("SITE CHMOD changes the permission bits", () => {
  it("of a file, relative and absolute, with or without a leading zero, and logs it", async () => {
    const { c, dir, vdir } = await inDir();
    const f = file(path.join(dir, "f.txt"));
    const r = await c.cmd("SITE CHMOD 640 f.txt");
    expect(r.code, r.all).toBe(200);
    expect(r.text).toMatch(/SITE CHMOD command successful/);
    expect(modeOf(f)).toBe(0o640);
    await c.expect(`SITE CHMOD 0600 ${vdir}/f.txt`, 200);
    expect(modeOf(f)).toBe(0o600);
    // One digit is the lowest three bits; the subcommand is case-insensitive.
    await c.expect("site chmod 4 f.txt", 200);
    expect(modeOf(f)).toBe(0o004);
    await c.expect("SITE CHMOD 0 f.txt", 200);
    expect(modeOf(f)).toBe(0);
    await c.expect("SITE CHMOD 777 f.txt", 200);
    expect(modeOf(f)).toBe(0o777);
    const events = log.events("chmod").filter((e) => e.path === `${vdir}/f.txt`);
    expect(events.map((e) => e.mode)).toEqual(["0640", "0600", "0004", "0000", "0777"]);
    expect(events.every((e) => e.level === 30 && e.user === "alice")).toBe(true);
  });

  it("of a directory, keeping what is in it", async () => {
    const { c, dir } = await inDir();
    mkdirSync(path.join(dir, "sub"));
    file(path.join(dir, "sub", "in.txt"));
    await c.expect("SITE CHMOD 750 sub", 200);
    expect(modeOf(path.join(dir, "sub"))).toBe(0o750);
    expect(modeOf(path.join(dir, "sub", "in.txt"))).toBe(0o644);
    await c.expect("SITE CHMOD 0700 sub/", 200);
    expect(modeOf(path.join(dir, "sub"))).toBe(0o700);
  });

  it("of names with spaces (the path is everything after the mode)", async () => {
    const { c, dir } = await inDir();
    const spaced = file(path.join(dir, "my file.txt"));
    const lead = file(path.join(dir, " lead"));
    mkdirSync(path.join(dir, "a dir"));
    const deep = file(path.join(dir, "a dir", "two  spaces "));
    await c.expect("SITE CHMOD 600 my file.txt", 200);
    await c.expect("SITE CHMOD 640  lead", 200);
    await c.expect("SITE CHMOD 604 a dir/two  spaces ", 200);
    expect(modeOf(spaced)).toBe(0o600);
    expect(modeOf(lead)).toBe(0o640);
    expect(modeOf(deep)).toBe(0o604);
  });

  it("of a link's target when the link stays inside the home; the link itself is kept", async () => {
    const { c, dir } = await inDir();
    const target = file(path.join(dir, "target.txt"));
    symlinkSync("target.txt", path.join(dir, "link"));
    await c.expect("SITE CHMOD 600 link", 200);
    expect(modeOf(target)).toBe(0o600);
    expect(lstatSync(path.join(dir, "link")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path.join(dir, "link"))).toBe("target.txt");
  });

  it("leaves the quota figure as it was", async () => {
    const { c } = await inDir();
    await c.expect("TYPE I", 200);
    // Uploaded, so that the figure counts it.
    expect((await c.store("STOR q.bin", randomBytes(10_000))).final.code).toBe(226);
    const before = await c.usedBytes();
    expect(before).toBeGreaterThanOrEqual(10_000);
    await c.expect("SITE CHMOD 600 q.bin", 200);
    await c.expect("SITE CHMOD 000 q.bin", 200);
    expect(await c.usedBytes()).toBe(before);
  });
});

describe("SITE CHMOD syntax: 501", () => {
  it("for a missing or malformed mode or a missing path, changing nothing", async () => {
    const { c, dir } = await inDir();
    const f = file(path.join(dir, "f.txt"));
    for (const line of [
      "SITE CHMOD",
      "SITE CHMOD ",
      "SITE CHMOD 644",
      "SITE CHMOD 644 ",
      "SITE CHMOD  f.txt",
      "SITE CHMOD abc f.txt",
      "SITE CHMOD 8 f.txt",
      "SITE CHMOD 649 f.txt",
      "SITE CHMOD 00644 f.txt",
      "SITE CHMOD -644 f.txt",
      "SITE CHMOD +x f.txt",
      "SITE CHMOD u+x f.txt",
      "SITE CHMOD 0x1ff f.txt",
    ]) {
      const r = await c.cmd(line);
      expect(r.code, `${line}: ${r.all}`).toBe(501);
      expect(r.text, line).toMatch(/SITE CHMOD <octal mode> <path>/);
    }
    expect(modeOf(f)).toBe(0o644);
  });
});

describe("SITE CHMOD refusals: 550", () => {
  it("for setuid, setgid and sticky bits, saying only permission bits may be changed", async () => {
    const { c, dir } = await inDir();
    const f = file(path.join(dir, "f.txt"));
    mkdirSync(path.join(dir, "d"));
    chmodSync(path.join(dir, "d"), 0o755);
    for (const [mode, name] of [["4755", "f.txt"], ["2755", "f.txt"], ["1777", "d"], ["7777", "f.txt"], ["6644", "f.txt"], ["1000", "d"]]) {
      const r = await c.cmd(`SITE CHMOD ${mode} ${name}`);
      expect(r.code, `${mode}: ${r.all}`).toBe(550);
      expect(r.text).toMatch(/only permission bits/i);
    }
    expect(modeOf(f)).toBe(0o644);
    expect(modeOf(path.join(dir, "d"))).toBe(0o755);
  });

  it("for a missing file, and for a name under a file", async () => {
    const { c, dir } = await inDir();
    file(path.join(dir, "f.txt"));
    for (const p of ["nope.txt", "nodir/f.txt", "f.txt/below"]) {
      const r = await c.cmd(`SITE CHMOD 644 ${p}`);
      expect(r.code, `${p}: ${r.all}`).toBe(550);
    }
    expect((await c.cmd("SITE CHMOD 644 nope.txt")).text).toMatch(/no such file/i);
  });

  it("for the home itself, however it is named, leaving its mode alone", async () => {
    const { c, dir } = await inDir();
    const homeMode = modeOf(home);
    symlinkSync(home, path.join(dir, "home-link"));
    symlinkSync("..", path.join(dir, "up-link"));
    const t = path.basename(dir);
    await c.expect("CWD /", 250);
    for (const p of ["/", ".", "..", "/.", "../..", `${t}/..`, `${t}/home-link`, `${t}/up-link`, `${t}/home-link/`, `/${t}/up-link/.`]) {
      const r = await c.cmd(`SITE CHMOD 700 ${p}`);
      expect(r.code, `${p}: ${r.all}`).toBe(550);
    }
    expect((await c.cmd("SITE CHMOD 700 /")).text).toMatch(/home directory/);
    expect(modeOf(home)).toBe(homeMode);
  });

  it("for a directory mode without the owner's read and search bits", async () => {
    const { c, dir } = await inDir();
    mkdirSync(path.join(dir, "d"));
    chmodSync(path.join(dir, "d"), 0o755);
    for (const mode of ["000", "300", "600", "100", "400", "077"]) {
      const r = await c.cmd(`SITE CHMOD ${mode} d`);
      expect(r.code, `${mode}: ${r.all}`).toBe(550);
      expect(r.text).toMatch(/read and search/);
    }
    expect(modeOf(path.join(dir, "d"))).toBe(0o755);
    // A file may have any of them.
    const f = file(path.join(dir, "f.txt"));
    await c.expect("SITE CHMOD 000 f.txt", 200);
    expect(modeOf(f)).toBe(0);
  });

  it("for a temporary upload name (553, as for every other command)", async () => {
    const { c, dir } = await inDir();
    const f = file(path.join(dir, ".myftp-upload-0123456789ab.x"));
    expect((await c.cmd("SITE CHMOD 600 .myftp-upload-0123456789ab.x")).code).toBe(553);
    expect(modeOf(f)).toBe(0o644);
  });
});

describe("SITE CHMOD and the jail", () => {
  // Files beside and above the home, which `..` would reach if it were not stopped at the home.
  let beside: string;
  let above: string;
  let secret: string;
  let secretDir: string;
  beforeEach(() => {
    beside = file(path.join(path.dirname(home), "beside.txt"));
    above = file(path.join(srv.dataDir, "above.txt"));
    secret = file(path.join(outside, "secret.txt"));
    secretDir = path.join(outside, "sub");
    mkdirSync(secretDir, { recursive: true });
    chmodSync(secretDir, 0o755);
  });
  afterEach(() => {
    for (const p of [beside, above]) rmSync(p, { force: true });
  });

  function expectOutsideUnchanged(): void {
    expect(modeOf(beside)).toBe(0o644);
    expect(modeOf(above)).toBe(0o644);
    expect(modeOf(secret)).toBe(0o644);
    expect(modeOf(secretDir)).toBe(0o755);
    expect(modeOf(outside)).toBe(0o700);
  }

  it("`..` and absolute paths stop at the home", async () => {
    const { c } = await inDir();
    for (const p of ["../../beside.txt", "../../../above.txt", "/../beside.txt", "/../../above.txt", "../../../../../../../../tmp", `../../../../../../..${secret}`]) {
      const r = await c.cmd(`SITE CHMOD 777 ${p}`);
      expect(r.code, `${p}: ${r.all}`).toBe(550);
    }
    expectOutsideUnchanged();
  });

  it("a link planted in the home that leads outside changes nothing there", async () => {
    const { c, dir } = await inDir();
    chmodSync(outside, 0o700);
    symlinkSync(secret, path.join(dir, "out-file"));
    symlinkSync(outside, path.join(dir, "out-dir"));
    symlinkSync(path.join(outside, "missing.txt"), path.join(dir, "dangling"));
    symlinkSync(beside, path.join(dir, "beside-link"));
    for (const p of ["out-file", "out-dir", "out-dir/", "out-dir/secret.txt", "out-dir/sub", "dangling", "beside-link"]) {
      const r = await c.cmd(`SITE CHMOD 777 ${p}`);
      expect(r.code, `${p}: ${r.all}`).toBe(550);
    }
    expectOutsideUnchanged();
    expect(existsSync(path.join(outside, "missing.txt"))).toBe(false);
  });
});

describe("SITE CHMOD and the session", () => {
  it("is refused before login with 530", async () => {
    const f = file(path.join(home, "pre-login.txt"));
    const c = await RawFtp.connect(srv.port);
    open.push(c);
    expect((await c.cmd("SITE CHMOD 600 pre-login.txt")).code).toBe(530);
    await c.expect("USER alice", 331);
    expect((await c.cmd("SITE CHMOD 600 pre-login.txt")).code).toBe(530);
    expect(modeOf(f)).toBe(0o644);
  });

  it("is listed by SITE HELP and HELP SITE, not by FEAT", async () => {
    const c = await login();
    expect((await c.expect("SITE HELP", 214)).lines.join("\n")).toMatch(/\bCHMOD\b/);
    expect((await c.expect("HELP SITE", 214)).text).toMatch(/\bCHMOD\b/);
    expect((await c.expect("FEAT", 211)).all).not.toMatch(/CHMOD|SITE/);
  });

  it("waits with 450 while the file is being overwritten (the upload would put the old mode back)", async () => {
    const { c, dir } = await inDir();
    const f = file(path.join(dir, "up.bin"), "old content");
    const other = await login();
    await c.expect("TYPE I", 200);
    const d = await c.epsv();
    expect((await c.cmd("STOR up.bin")).code).toBe(150);
    d.write(randomBytes(64 * 1024));
    // The upload writes a temporary file beside the old one.
    await until(() => readdirSync(dir).some((n) => n.startsWith(".myftp-upload-")), 5000, "the upload's temporary file");
    const r = await other.cmd(`SITE CHMOD 600 ${path.basename(dir)}/up.bin`);
    expect(r.code, r.all).toBe(450);
    await new Promise<void>((resolve) => d.end(() => resolve()));
    expect((await c.read()).code).toBe(226);
    d.destroy();
    expect(modeOf(f)).toBe(0o644);
    await other.expect(`SITE CHMOD 600 ${path.basename(dir)}/up.bin`, 200);
    expect(modeOf(f)).toBe(0o600);
  });
});

