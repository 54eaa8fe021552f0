// The shell as a person uses it, in a pseudo-terminal: password typed without echo, prompt, tab
// completion of commands and remote names, history, Ctrl-C to stop a transfer, Ctrl-D to leave.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startPyftpd, type PeerServer } from "../helpers/peers.js";
import { FtpSession } from "../../src/client/session.js";
import { createCompleter, localLister, remoteLister } from "../../src/client/shell.js";
import { parseFtpUrl } from "../../src/client/url.js";
import { sha256File } from "../helpers/util.js";
import { assertBuilt, killAll, makeFile, sizeOf, spawnPty, tempDir, waitFor } from "./cli-helpers.js";

const MiB = 1024 * 1024;

describe("the interactive shell", () => {
  let srv: PeerServer;
  let work: { path: string; remove(): Promise<void> };
  const user = () => srv.users[0]!;
  const bareUrl = () => `ftp://${user().name}@${srv.host}:${srv.port}/`;

  beforeAll(async () => {
    assertBuilt();
    srv = await startPyftpd();
    work = await tempDir();
    await writeFile(join(srv.home, "hello.txt"), "hello\n");
    await writeFile(join(srv.home, "help-me.txt"), "help\n");
    await makeFile(join(srv.home, "slow.bin"), 8 * MiB);
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await srv?.stop();
    await work?.remove();
  });

  it("asks for the password without echo, completes commands and names, keeps history", async () => {
    const pty = spawnPty([bareUrl()], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(new RegExp(`Password for ${user().name}@127\\.0\\.0\\.1: `));
    pty.send(`${user().password}\r`);
    await pty.expect(/myftp:\/> /);
    expect(pty.output()).not.toContain(user().password);
    // Typed keys arrive one read at a time, as from a keyboard (a Tab inside pasted text is text).
    const type = async (text: string) => {
      const from = pty.output().length;
      pty.send(text);
      await pty.expect(new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").split("").join("")), { from });
    };
    let mark = pty.output().length;
    await type("hel");
    pty.send("\t");
    await pty.expect(/help /, { from: mark });
    pty.send("\r");
    await pty.expect(/quit +Close the connection and leave\./, { from: mark });
    await pty.expect(/myftp:\/> /, { from: mark });
    mark = pty.output().length;
    await type("get hel");
    // Two names share the prefix: completion stops at "hel" and a second Tab lists both.
    pty.send("\t");
    await new Promise((r) => setTimeout(r, 100));
    pty.send("\t");
    await pty.expect(/hello\.txt\s+help-me\.txt/, { from: mark });
    // Completing "hello" adds ".txt": without it the server would have no such file.
    await type("lo");
    pty.send("\t");
    await new Promise((r) => setTimeout(r, 100));
    pty.send("\r");
    await pty.expect(/get hello\.txt: 6 B in .*, size verified/, { from: mark });
    expect(await readFile(join(work.path, "hello.txt"), "utf8")).toBe("hello\n");
    pty.send("quit\r");
    expect(await pty.exit()).toBe(0);
    const history = await readFile(join(work.path, ".myftp_history"), "utf8");
    expect(history.split("\n").filter(Boolean)).toEqual(["help", "get hello.txt", "quit"]);
  });

  it("opens a connection from the prompt, asking for the password there", async () => {
    const pty = spawnPty([], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/myftp> /);
    pty.send("ls\r");
    await pty.expect(/not connected \(use: open ftp:\/\/user@host\[:port\]\)/);
    pty.send(`open ${bareUrl()}\r`);
    await pty.expect(/Password for .*: /);
    const before = pty.output().length;
    pty.send(`${user().password}\r`);
    await pty.expect(/connected to ftp:\/\//, { from: before });
    expect(pty.output().slice(before)).not.toContain(user().password);
    pty.send("pwd\r");
    await pty.expect(/^\/\r?$/m, { from: before });
    // Ctrl-D at an empty prompt leaves; the failed ls makes the exit code non-zero.
    pty.send("\x04");
    expect(await pty.exit()).toBe(2);
  });

  it("stops a running transfer on Ctrl-C, stays in the shell, and resumes on the next get", async () => {
    const pty = spawnPty(["--limit-rate", "4M", srv.url(undefined, "")], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/myftp:\/> /);
    const dst = join(work.path, "slow.bin");
    pty.send("get slow.bin\r");
    expect(await waitFor(async () => (await sizeOf(dst)) >= 256 * 1024)).toBe(true);
    pty.send("\x03");
    await pty.expect(/myftp: get slow\.bin: interrupted/);
    const partial = await sizeOf(dst);
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(8 * MiB);
    const mark = pty.output().length;
    await pty.expect(/myftp:\/> /, { from: mark - 20 });
    pty.send("get slow.bin\r");
    await pty.expect(/the connection was closed; reconnecting/, { from: mark });
    await pty.expect(/get slow\.bin: 8\.00 MiB in .*resumed at .*size verified/, { from: mark, timeoutMs: 20_000 });
    expect(await sha256File(dst)).toBe(await sha256File(join(srv.home, "slow.bin")));
    pty.send("bye\r");
    expect(await pty.exit()).toBe(1);
  });

  it("completes remote paths in subdirectories and local paths for local arguments", async () => {
    const session = await FtpSession.open(parseFtpUrl(srv.url(undefined, "")), { user: user().name, password: user().password });
    try {
      const { mkdir } = await import("node:fs/promises");
      await mkdir(join(srv.home, "docs", "deep"), { recursive: true });
      await writeFile(join(srv.home, "docs", "report.pdf"), "pdf");
      await writeFile(join(srv.home, "docs", "my notes.txt"), "notes");
      let busy = false;
      const c = createCompleter(remoteLister(() => session, () => busy), localLister);
      expect(await c.complete("mk")).toEqual([["mkdir "], "mk"]);
      expect(await c.complete("get do")).toEqual([["docs/"], "do"]);
      expect(await c.complete("get docs/")).toEqual([["docs/deep/", '"docs/my notes.txt" ', "docs/report.pdf "], "docs/"]);
      expect(await c.complete("get docs/re")).toEqual([["docs/report.pdf "], "docs/re"]);
      expect(await c.complete('get "docs/my')).toEqual([['"docs/my notes.txt" '], '"docs/my']);
      expect(await c.complete("help qu")).toEqual([["quit", "quota"], "qu"]);
      // While a command runs the control connection is taken: no remote completion then.
      busy = true;
      expect(await c.complete("get docs/r")).toEqual([[], "docs/r"]);
      await writeFile(join(work.path, "local-only.dat"), "x");
      const cwd = process.cwd();
      process.chdir(work.path);
      try {
        const [hits] = await c.complete("put local-o");
        expect(hits).toEqual(["local-only.dat "]);
      } finally {
        process.chdir(cwd);
      }
    } finally {
      session.close();
    }
  });
});
