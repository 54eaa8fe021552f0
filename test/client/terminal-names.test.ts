// Names the server sends are shown on a terminal with their control characters as "?" (an escape sequence in a file
// name must not act on the terminal), and passed whole into a pipe, where a script reads them.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, runMyftp, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

describe("control characters in remote names", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("show as ? on a terminal and stay whole in a pipe", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const name = "evil\x1b[2J\x07name.txt";
    await writeFile(join(s.homeOf(USER.name), name), "x");
    const pty = spawnPty(["ls", s.url(USER.name, USER.password, "/")], { cwd: work.path, env: { HOME: work.path } });
    expect(await pty.exit()).toBe(0);
    expect(pty.output()).toContain("evil?[2J?name.txt");
    expect(pty.output()).not.toContain("\x1b[2J");
    const shell = spawnPty([s.url(USER.name, USER.password, "/")], { cwd: work.path, env: { HOME: work.path } });
    await shell.expect(/myftp:\/> /);
    shell.send("ls\r");
    await shell.expect(/evil\?\[2J\?name\.txt/);
    shell.send("quit\r");
    await shell.exit();
    expect(shell.output()).not.toContain("\x1b[2J");
    const piped = await runMyftp(["ls", s.url(USER.name, USER.password, "/")], { cwd: work.path });
    expect(piped.code).toBe(0);
    expect(piped.stdout).toContain(name);
  });

  it("show as ? in the shell's prompt, and Tab never puts such a name on the line", async () => {
    const dir = "d\x1b[31mRED";
    await mkdir(join(s.homeOf(USER.name), dir));
    await mkdir(join(s.homeOf(USER.name), dir, "e\x1b[31mA"));
    const shell = spawnPty([s.url(USER.name, USER.password, `/${encodeURIComponent(dir)}/`)], { cwd: work.path, env: { HOME: work.path } });
    await shell.expect(/myftp:\/d\?\[31mRED> /);
    shell.send("cd e\t\t");
    await new Promise((r) => setTimeout(r, 500));
    shell.send("\x15quit\r");
    await shell.exit();
    expect(shell.output()).not.toContain("\x1b[31m");
  });
});
