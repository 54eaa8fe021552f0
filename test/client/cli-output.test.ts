// The command line around the transfers: what a refusal over TLS says, where --debug writes, a reader that goes away,
// and Ctrl-C in a one-shot command.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { assertBuilt, collect, killAll, makeFile, runMyftp, sizeOf, spawnMyftp, spawnPty, tempDir, waitFor } from "./cli-helpers.js";

const MiB = 1024 * 1024;
const USER = { name: "alice", password: "s3cret alice" };

describe("myftp's command line against myftpd", () => {
  let s: RunningServer;
  let work: { path: string; remove(): Promise<void> };
  let certDir: Awaited<ReturnType<typeof testCertificate>>;
  let implicitPort: number;

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir();
    certDir = await testCertificate();
    s = await startServer([{ ...USER, quota: null }], {
      tls: { cert: await readFile(certDir.cert), key: await readFile(certDir.key) },
      implicitTlsPort: 0,
    });
    implicitPort = s.server.implicitTlsPort!;
    await writeFile(join(s.homeOf(USER.name), "here.txt"), "here\n");
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await s?.close();
    await work?.remove();
    if (certDir) await rm(certDir.dir, { recursive: true, force: true });
  });

  const url = (p = "") => s.url(USER.name, USER.password, `/${p}`);
  const implicitUrl = (p = "") => `ftps://${USER.name}:${encodeURIComponent(USER.password)}@127.0.0.1:${implicitPort}/${p}`;

  it("lists a file given to ls (MLSD lists directories only; MLST gives the file), and a name with wildcards", async () => {
    const ls = await runMyftp(["ls", url("here.txt")]);
    expect(ls.stderr).toBe("");
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^- +5 .* here\.txt$/m);
    const sh = await runMyftp([url()], { stdin: "ls here.txt\nls\n" });
    expect(sh.code).toBe(0);
    expect(sh.stdout.match(/here\.txt$/gm)).toHaveLength(2);
    // A name with wildcards is for the server to expand (LIST does; MLSD lists a directory as written).
    const glob = await runMyftp(["ls", url("*.txt")]);
    expect(glob.stderr).toBe("");
    expect(glob.code).toBe(0);
    expect(glob.stdout).toMatch(/here\.txt$/m);
  });

  it("suggests ftps:// when a plain ftp:// connection gets no greeting (an implicit-TLS port)", async () => {
    const r = await runMyftp(["ls", "--timeout", "1", "--retries", "0", `ftp://${USER.name}:${encodeURIComponent(USER.password)}@127.0.0.1:${implicitPort}/`]);
    expect(r.stderr).toMatch(/sent no greeting .*; if that port speaks implicit TLS, use ftps:\/\//);
    expect(r.code).toBe(3);
  });

  it("names both files when the server refuses an mv", async () => {
    const sh = await runMyftp([url()], { stdin: "mv nosuch.txt other.txt\n" });
    expect(sh.stderr).toMatch(/^myftp: mv nosuch\.txt other\.txt: the server refused: .*\(550\)\n$/);
    expect(sh.code).toBe(5);
  });

  it("names a download into a directory given with a trailing slash without a double slash", async () => {
    const dir = join(work.path, "into");
    await mkdir(join(dir, "here.txt"), { recursive: true });
    const get = await runMyftp(["get", url("here.txt"), `${dir}/`]);
    expect(get.code).toBe(8);
    expect(get.stderr).toContain(`${dir}/here.txt is a directory`);
    expect(get.stderr).not.toContain("//");
  });

  it("reports the server's refusal of a data command over TLS, not the reset of the data connection", async () => {
    // The server answers 550 and drops the pending data connection; which the client sees first varies, so try often.
    for (let i = 0; i < 4; i++) {
      const ls = await runMyftp(["ls", "--tls", "--ca", certDir.cert, url("nodir/")]);
      expect(ls.stderr).toBe("myftp: ls nodir/: the server refused: No such file or directory (550)\n");
      expect(ls.code).toBe(5);
      const implicit = await runMyftp(["ls", "--ca", certDir.cert, implicitUrl("nodir/")]);
      expect(implicit.stderr).toBe("myftp: ls nodir/: the server refused: No such file or directory (550)\n");
      expect(implicit.code).toBe(5);
      const dst = join(work.path, `missing-${i}.bin`);
      const get = await runMyftp(["get", "--tls", "--ca", certDir.cert, url("missing.bin"), dst]);
      expect(get.stderr).toMatch(/^myftp: get missing\.bin: the server refused: .*\(550\)\n$/);
      expect(get.code).toBe(5);
      expect(await sizeOf(dst)).toBe(-1);
    }
    // In the shell the session stays usable after such a refusal.
    const sh = await runMyftp(["--tls", "--ca", certDir.cert, url()], { stdin: "ls nodir\nls\n" });
    expect(sh.stderr).toBe("myftp: ls: the server refused: No such file or directory (550)\n");
    expect(sh.stdout).not.toContain("reconnecting");
    expect(sh.stdout).toMatch(/^- +5 .* here\.txt$/m);
    expect(sh.code).toBe(5);
  });

  it("the shell's rm takes -- before names that start with a dash", async () => {
    const home = s.homeOf(USER.name);
    await writeFile(join(home, "-x"), "dash");
    const r = await runMyftp([url()], { stdin: "rm -- -x\n" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(await sizeOf(join(home, "-x"))).toBe(-1);
    expect(await sizeOf(join(home, "here.txt"))).toBe(5);
  });

  it("a CA file that cannot be read is a local file problem (exit 8), named", async () => {
    const missing = join(work.path, "no-such-ca.pem");
    const r = await runMyftp(["ls", "--tls", "--ca", missing, url()]);
    expect(r.stderr).toMatch(new RegExp(`^myftp: .*cannot read CA file ${missing.replace(/[.]/g, "\\.")}: ENOENT`));
    expect(r.code).toBe(8);
  });

  it("writes the --debug trace of the control connection to stderr, keeping stdout for results", async () => {
    const r = await runMyftp(["ls", "--debug", url()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^- +5 .* here\.txt\n$/);
    expect(r.stderr).toContain("< 220 ");
    expect(r.stderr).toMatch(/^> USER alice$/m);
    expect(r.stderr).not.toContain(USER.password);
  });

  it("ends quietly when the reader of its output goes away (myftp ls URL | head -1)", async () => {
    const dir = join(s.homeOf(USER.name), "many");
    await mkdir(dir);
    for (let i = 0; i < 200; i++) await writeFile(join(dir, `file-${String(i).padStart(3, "0")}.txt`), "x");
    const child = spawnMyftp(["ls", url("many/")]);
    // The reader closes its end before anything was written.
    child.stdout!.destroy();
    const r = await collect(child);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(141);
  });

  it("ends the progress bar's line and exits 130 on Ctrl-C in a one-shot command", async () => {
    await makeFile(join(s.homeOf(USER.name), "slow.bin"), 8 * MiB);
    const dst = join(work.path, "slow.bin");
    const pty = spawnPty(["get", "--limit-rate", "2M", url("slow.bin"), dst], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/slow\.bin +\[#*-+\] +\d+%/);
    expect(await waitFor(async () => (await sizeOf(dst)) >= 256 * 1024)).toBe(true);
    pty.send("\x03");
    expect(await pty.exit()).toBe(130);
    const out = pty.output();
    // The bar's line is ended before the next output: the shell's prompt will not run into it.
    expect(out).toMatch(/\n$/);
    const last = out.split(/\r?\n/).filter((l) => l !== "");
    expect(last.at(-1)).toBe("myftp: get slow.bin: interrupted");
    expect(last.at(-2)).toMatch(/slow\.bin +\[#*-+\] +\d+%.*(\^C)?$/);
    const partial = await sizeOf(dst);
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(8 * MiB);
  });
});
