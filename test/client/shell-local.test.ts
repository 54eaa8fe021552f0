// The shell's local side and its memory: lcd names what it could not change to and knows ~, and the history keeps no
// passwords and is readable by its owner only.
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort } from "../helpers/util.js";
import { clientWorkDir, runMyftp, spawnPty } from "./cli-helpers.js";

const work = clientWorkDir();

describe("myftp's local side", () => {
  it("names the directory lcd could not change to, and takes ~ and ~/DIR for the home", async () => {
    const home = join(work.path, "home");
    await mkdir(join(home, "sub"), { recursive: true });
    const elsewhere = join(work.path, "elsewhere");
    await mkdir(elsewhere);
    await writeFile(join(work.path, "plain.txt"), "x");
    const missing = join(work.path, "no-such-dir");
    const r = await runMyftp([], {
      cwd: elsewhere,
      env: { HOME: home },
      stdin: `lcd ${missing}\nlcd ${join(work.path, "plain.txt")}\nlpwd\nlcd ~/sub\nlpwd\nlcd ~\nlpwd\nlcd ${elsewhere}\nlcd\nlpwd\n`,
    });
    expect(r.stderr).toBe(`myftp: lcd: no such local directory: ${missing}\nmyftp: lcd: not a directory: ${join(work.path, "plain.txt")}\n`);
    expect(r.code).toBe(8);
    const printed = r.stdout.split("\n").filter((l) => l.startsWith("/"));
    expect(printed).toEqual([elsewhere, join(home, "sub"), home, home]);
  });
});

describe("the shell's history", () => {
  it("keeps no passwords, in the file or for the arrow keys, and is readable by its owner only", async () => {
    const home = join(work.path, "h1");
    await mkdir(home);
    const file = join(home, ".myftp_history");
    // Left by an older myftp: readable by all, with a password in it.
    await writeFile(file, "ls\nopen ftp://bob:oldpw@files.example/\n");
    await chmod(file, 0o644);
    const port = await freePort();
    const pty = spawnPty([], { cwd: work.path, env: { HOME: home } });
    await pty.expect(/myftp> /);
    let mark = pty.output().length;
    pty.send(`open ftp://alice:topsecret@127.0.0.1:${port}/\r`);
    await pty.expect(/connection refused/, { from: mark });
    await pty.expect(/myftp> /, { from: mark + 10 });
    // Up: the line comes back without its password.
    mark = pty.output().length;
    const typed = mark;
    pty.send("\x1b[A");
    await pty.expect(new RegExp(`open ftp://alice@127\\.0\\.0\\.1:${port}/`), { from: mark });
    // Run it: asked for the password, typed at a hidden prompt, which the history must not keep either.
    pty.send("\r");
    await pty.expect(/Password for alice@127\.0\.0\.1: /, { from: mark });
    pty.send("hiddenpw\r");
    await pty.expect(/connection refused/, { from: mark });
    await pty.expect(/myftp> (\x1b\[\d+G)?$/, { from: mark });
    mark = pty.output().length;
    pty.send("\x1b[A");
    await pty.expect(new RegExp(`open ftp://alice@127\\.0\\.0\\.1:${port}/`), { from: mark });
    pty.send("\x1b[A");
    await pty.expect(/open ftp:\/\/bob@files\.example\//, { from: mark });
    pty.send("\x15quit\r");
    expect(await pty.exit()).toBe(3);
    const out = pty.output();
    // Shown only where it was typed.
    expect(out.slice(typed)).not.toContain("topsecret");
    expect(out).not.toContain("hiddenpw");
    expect(out).not.toContain("oldpw");
    const text = await readFile(file, "utf8");
    expect(text.split("\n").filter(Boolean)).toEqual([
      "ls",
      "open ftp://bob@files.example/",
      `open ftp://alice@127.0.0.1:${port}/`,
      `open ftp://alice@127.0.0.1:${port}/`,
      "quit",
    ]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("creates the history file readable by its owner only", async () => {
    const home = join(work.path, "h2");
    await mkdir(home);
    const pty = spawnPty([], { cwd: work.path, env: { HOME: home } });
    await pty.expect(/myftp> /);
    pty.send("lpwd\r");
    await pty.expect(new RegExp(`${work.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\r?\\n`));
    pty.send("quit\r");
    expect(await pty.exit()).toBe(0);
    const file = join(home, ".myftp_history");
    expect(await readFile(file, "utf8")).toBe("lpwd\nquit\n");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("keeps no password with spaces typed in quotes or after backslashes", async () => {
    const home = join(work.path, "h3");
    await mkdir(home);
    const port = await freePort();
    const pty = spawnPty([], { cwd: work.path, env: { HOME: home } });
    await pty.expect(/myftp> /);
    let mark = pty.output().length;
    pty.send(`open "ftp://alice:my secret@127.0.0.1:${port}/"\r`);
    await pty.expect(/myftp> (\x1b\[\d+G)?$/, { from: mark + 10 });
    mark = pty.output().length;
    pty.send(`open ftp://alice:other\\ secret@127.0.0.1:${port}/\r`);
    await pty.expect(/myftp> (\x1b\[\d+G)?$/, { from: mark + 10 });
    pty.send("\x1b[A");
    await pty.expect(new RegExp(`open ftp://alice@127\\.0\\.0\\.1:${port}/`), { from: mark + 10 });
    pty.send("\x15quit\r");
    await pty.exit();
    const text = await readFile(join(home, ".myftp_history"), "utf8");
    expect(text).not.toContain("secret");
    expect(text.split("\n").filter(Boolean)).toEqual([`open ftp://alice@127.0.0.1:${port}/`, `open ftp://alice@127.0.0.1:${port}/`, "quit"]);
  });
});
