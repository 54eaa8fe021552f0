// Ctrl-C at a password prompt gives the login up: in the shell, what is typed next is a command again (never sent as
// the password), and a one-shot command exits 130 as for any Ctrl-C.
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

describe("Ctrl-C at the password prompt", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("in the shell, gives up the open; the next line typed is a command, not the password", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const pty = spawnPty([], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/myftp> /);
    let mark = pty.output().length;
    pty.send(`open ${`ftp://alice@127.0.0.1:${s.port}/`}\r`);
    await pty.expect(/Password for alice@127\.0\.0\.1: /, { from: mark });
    pty.send("typo\x03");
    await pty.expect(/myftp: open: password prompt interrupted\r?\n/, { from: mark });
    await pty.expect(/myftp> (\x1b\[\d+G)?$/, { from: mark });
    // The right password, typed now, is taken as a command line: no login happens.
    mark = pty.output().length;
    pty.send("pw\r");
    await pty.expect(/unknown command: pw/, { from: mark });
    pty.send("pwd\r");
    await pty.expect(/pwd: not connected/, { from: mark });
    pty.send("\x04");
    expect(await pty.exit()).toBe(1);
    expect(pty.output()).not.toContain("connected to ftp://");
    expect(pty.output()).not.toContain("typo");
  });

  it("in a one-shot command, exits 130", async () => {
    const pty = spawnPty(["ls", `ftp://alice@127.0.0.1:${s.port}/`], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/Password for alice@127\.0\.0\.1: /);
    pty.send("p\x03");
    expect(await pty.exit()).toBe(130);
    expect(pty.output()).toContain("myftp: password prompt interrupted");
  });
});
