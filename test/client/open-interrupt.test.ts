// Ctrl-C during the shell's `open` to a server that takes the connection and never answers gives that open up at
// once (instead of waiting out --timeout), and the connection already open stays as it was.
import { createServer, type Server, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

describe("Ctrl-C during open", () => {
  let s: RunningServer;
  let silent: Server | undefined;
  const held: Socket[] = [];
  const work = clientWorkDir(async () => {
    for (const c of held) c.destroy();
    await new Promise<void>((r) => (silent ? silent.close(() => r()) : r()));
    await s?.close();
  });

  it("gives up the open and keeps the current connection", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    silent = createServer((c) => void held.push(c));
    await new Promise<void>((r) => silent!.listen(0, "127.0.0.1", () => r()));
    const silentPort = (silent.address() as { port: number }).port;
    const pty = spawnPty(["--timeout", "60", s.url(USER.name, USER.password, "/")], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/myftp:\/> /);
    const mark = pty.output().length;
    pty.send(`open ftp://bob:x@127.0.0.1:${silentPort}/\r`);
    await new Promise((r) => setTimeout(r, 700));
    expect(held.length).toBe(1);
    const at = Date.now();
    pty.send("\x03");
    await pty.expect(/myftp: open: interrupted\r?\n/, { from: mark, timeoutMs: 10_000 });
    expect(Date.now() - at).toBeLessThan(5000);
    pty.send("pwd\r");
    await pty.expect(/pwd\r?\r?\n\/\r?\n/, { from: mark });
    pty.send("quit\r");
    expect(await pty.exit()).toBe(1);
    expect(pty.output().slice(mark)).not.toContain("reconnecting");
  });
});

describe("an open given up before it began", () => {
  it("rejects at once, without connecting", async () => {
    const { FtpSession } = await import("../../src/client/session.js");
    let connections = 0;
    const quiet = createServer((c) => {
      connections++;
      c.on("error", () => undefined);
    });
    await new Promise<void>((r) => quiet.listen(0, "127.0.0.1", r));
    const port = (quiet.address() as { port: number }).port;
    try {
      const target = { host: "127.0.0.1", port, user: "u", password: "p", path: "", isDir: true, secure: false } as never;
      await expect(FtpSession.open(target, { user: "u", password: "p" } as never, { timeoutMs: 3000 }, AbortSignal.abort())).rejects.toThrow(/interrupted/);
      expect(connections).toBe(0);
    } finally {
      await new Promise<void>((r) => quiet.close(() => r()));
    }
  });
});
