// A password in a ~/.netrc that group or others can access is not used, as classic FTP clients refuse it: myftp warns
// on standard error (naming the file and `chmod 600 FILE`) and goes on as if the file had no password, keeping the
// login name from it: without a terminal the login fails with "no password" (exit 4), on one the password is asked.
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, runMyftp, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "s3cret" };

describe.skipIf(process.platform === "win32")("~/.netrc open to group or others", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  /** A home with a .netrc for the server (mode as given) and the URL without user or password. */
  async function setup(name: string, mode: number): Promise<{ home: string; netrc: string; url: string }> {
    s ??= await startServer([{ ...USER, quota: null }]);
    await writeFile(join(s.homeOf(USER.name), "listed.txt"), "x\n");
    const home = join(work.path, name);
    await mkdir(home, { recursive: true });
    const netrc = join(home, ".netrc");
    await writeFile(netrc, `machine 127.0.0.1 login ${USER.name} password ${USER.password}\n`);
    await chmod(netrc, mode);
    return { home, netrc, url: `ftp://127.0.0.1:${s.port}/` };
  }

  it("without a terminal: warns, names the fix, and fails with no password for the netrc's login name", async () => {
    for (const [i, mode] of [0o644, 0o640, 0o604].entries()) {
      const { home, netrc, url } = await setup(`open-${i}`, mode);
      const r = await runMyftp(["ls", url], { env: { HOME: home }, cwd: home });
      expect(r.stderr).toBe(
        `myftp: warning: not using the password in ${netrc}: group or others can access the file (mode ${mode.toString(8)}); fix it with: chmod 600 ${netrc}\n` +
          `myftp: no password for alice@127.0.0.1 (set MYFTP_PASSWORD, add it to ~/.netrc, or run on a terminal)\n`,
      );
      expect(r.code).toBe(4);
      expect(r.stdout).toBe("");
    }
  });

  it("with mode 600 the password is used, without a warning", async () => {
    const { home, url } = await setup("private", 0o600);
    const r = await runMyftp(["ls", url], { env: { HOME: home }, cwd: home });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/listed\.txt$/m);
  });

  it("on a terminal: warns, then asks for the password of the netrc's login name", async () => {
    const { home, netrc, url } = await setup("terminal", 0o644);
    const pty = spawnPty(["ls", url], { cwd: home, env: { HOME: home } });
    await pty.expect(new RegExp(`not using the password in ${netrc.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: .*chmod 600 `));
    await pty.expect(/Password for alice@127\.0\.0\.1: /);
    pty.send(`${USER.password}\r`);
    await pty.expect(/listed\.txt/);
    expect(await pty.exit()).toBe(0);
  });
});
