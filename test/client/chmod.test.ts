// The shell's chmod: SITE CHMOD for each path (names with spaces in quotes), a mode that is not octal refused before
// anything is sent, the server's refusals reported per path, and a server without SITE CHMOD said as such.
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { startScripted, type ScriptedServer } from "../helpers/scripted-ftp.js";
import { clientWorkDir, runMyftp } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };
const modeOf = async (p: string) => (await stat(p)).mode & 0o7777;

describe("myftp chmod", () => {
  let s: RunningServer | undefined;
  let scripted: ScriptedServer | undefined;
  const work = clientWorkDir(async () => {
    await s?.close();
    await scripted?.stop();
  });

  it("sets the permission bits of files and directories on myftpd", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const home = s.homeOf(USER.name);
    await writeFile(join(home, "a.txt"), "a");
    await writeFile(join(home, "b c.txt"), "b");
    await mkdir(join(home, "d"));
    for (const n of ["a.txt", "b c.txt", "d"]) await chmod(join(home, n), 0o644);
    await chmod(join(home, "d"), 0o755);
    const r = await runMyftp([s.url(USER.name, USER.password, "/")], { cwd: work.path, stdin: 'chmod 600 a.txt "b c.txt"\nchmod 0750 d\n' });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(await modeOf(join(home, "a.txt"))).toBe(0o600);
    expect(await modeOf(join(home, "b c.txt"))).toBe(0o600);
    expect(await modeOf(join(home, "d"))).toBe(0o750);
  });

  it("refuses a mode that is not octal before sending, and reports the server's refusals per path", async () => {
    s ??= await startServer([{ ...USER, quota: null }]);
    const home = s.homeOf(USER.name);
    await writeFile(join(home, "keep.txt"), "k");
    await chmod(join(home, "keep.txt"), 0o644);
    const r = await runMyftp([s.url(USER.name, USER.password, "/")], {
      cwd: work.path,
      stdin: "chmod u+x keep.txt\nchmod 644\nchmod 4755 keep.txt\nchmod 600 nope.txt keep.txt\n",
    });
    expect(r.stderr.split("\n")).toEqual([
      "myftp: chmod: invalid mode u+x: 1 to 4 octal digits expected, as in 644 or 0750",
      "myftp: usage: chmod MODE PATH...",
      "myftp: chmod keep.txt: the server refused: Only permission bits (0777) may be changed: setuid, setgid and sticky bits are refused (550)",
      "myftp: chmod: 1 of 2 failed; first: chmod nope.txt: the server refused: No such file or directory (550)",
      "",
    ]);
    // Each failure is noted as it happens when there are several paths.
    expect(r.stdout).toContain("chmod nope.txt: the server refused: No such file or directory (550)");
    // The first failed command decides: a usage error.
    expect(r.code).toBe(2);
    // The path after the failed one was still done.
    expect(await modeOf(join(home, "keep.txt"))).toBe(0o600);
  });

  it("says so where the server has no SITE CHMOD", async () => {
    scripted = await startScripted({ files: { "f.bin": 10 } });
    const r = await runMyftp([scripted.url()], { cwd: work.path, stdin: "chmod 644 f.bin\n" });
    expect(r.stderr).toBe("myftp: chmod f.bin: the server has no SITE CHMOD (502 Command not implemented)\n");
    expect(r.code).toBe(5);
    expect(scripted.commands()).toContain("SITE CHMOD 644 f.bin");
  });

  it("has help text", async () => {
    const r = await runMyftp([], { cwd: work.path, stdin: "help chmod\n" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("chmod MODE PATH...\n  Set the permission bits of remote files or directories (SITE CHMOD); MODE is octal, as in 644 or 0750.\n");
  });
});
