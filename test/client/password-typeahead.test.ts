// The password prompt before the shell starts (`myftp ftp://user@host/`) reads the terminal itself, without echo.
// What is typed after the password's line end, in the same read, is the shell's input: it runs as commands, in order,
// none lost. A CR whose LF comes in the next read (a terminal sending CR LF) ends one line, not two.
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

/** How many times `text` occurs in `s`. */
const count = (s: string, text: string) => s.split(text).length - 1;

describe("the password prompt before the shell", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });
  const url = () => `ftp://alice@127.0.0.1:${s.port}/`;

  it("hands commands typed ahead with the password to the shell, in order", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const pty = spawnPty([url()], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/Password for alice@127\.0\.0\.1: /);
    // One read: the password, Enter, then two commands.
    pty.send("pw\rmkdir typed-ahead\rcd typed-ahead\r");
    await pty.expect(/myftp:\/typed-ahead> /);
    pty.send("\x04");
    expect(await pty.exit()).toBe(0);
    expect(pty.output()).not.toContain("pw\r");
    expect(pty.output()).not.toMatch(/unknown command/);
  });

  it("takes a CR and the LF of the next read as one line end, not as a second, empty line", async () => {
    const pty = spawnPty([url()], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/Password for alice@127\.0\.0\.1: /);
    // A terminal sending CR LF, its LF in a later read: here once the shell reads (a stimulus, not a measure).
    pty.send("pw\r");
    await pty.expect(/myftp:\/> /);
    const mark = pty.output().length;
    pty.send("\nmkdir crlf\rcd crlf\r");
    await pty.expect(/myftp:\/crlf> /, { from: mark });
    // The shell shows its prompt again after each line: once (after mkdir), not also after an empty line.
    expect(count(pty.output().slice(mark), "myftp:/> ")).toBe(1);
    pty.send("\x04");
    expect(await pty.exit()).toBe(0);
  });

  it("still takes Backspace and DEL back, and Ctrl-D on an empty line gives the login up", async () => {
    let pty = spawnPty(["ls", url()], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/Password for alice@127\.0\.0\.1: /);
    pty.send("pxx\x7f\bw\r");
    expect(await pty.exit()).toBe(0);
    expect(pty.output()).not.toMatch(/pxx|login/);
    pty = spawnPty(["ls", url()], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/Password for alice@127\.0\.0\.1: /);
    pty.send("\x04");
    expect(await pty.exit()).toBe(4);
    expect(pty.output()).toContain("no password given");
  });
});
