// Ctrl-C at `myftpd user add`'s password prompt gives the command up as a shell reports SIGINT: exit 130, no user.
// Both passwords typed ahead (or pasted) in one go answer both prompts, where the second was lost and the command
// waited at "Repeat password:" for ever; so does a repeat typed ahead after a password ended with Ctrl-D.
import { existsSync, rmSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { spawnPty } from "../client/cli-helpers.js";
import { MYFTPD_BIN, runMyftpd, tempDir } from "../helpers/myftpd.js";

const data = tempDir("myftp-prompt-");
afterAll(() => rmSync(data, { recursive: true, force: true }));

describe("the password prompt", () => {
  it("Ctrl-C exits 130 and adds nobody", async () => {
    const pty = spawnPty(["user", "add", "bob", "--data", data], { bin: MYFTPD_BIN });
    await pty.expect(/Password: /);
    pty.send("sec\u0003");
    expect(await pty.exit()).toBe(130);
    expect(pty.output()).toMatch(/cancelled/);
    const list = await runMyftpd(["user", "list", "--data", data]);
    expect(list.stdout).not.toMatch(/bob/);
    expect(existsSync(path.join(data, "home", "bob"))).toBe(false);
  });

  it("takes a repeat typed ahead with the password as the answer to the second prompt", async () => {
    const pty = spawnPty(["user", "add", "carol", "--data", data], { bin: MYFTPD_BIN });
    await pty.expect(/Password: /);
    pty.send("s3cret\rs3cret\r");
    expect(await pty.exit()).toBe(0);
    expect(pty.output()).toMatch(/added user carol/);
    const list = await runMyftpd(["user", "list", "--data", data]);
    expect(list.stdout).toMatch(/carol/);
  });

  it("takes a repeat typed ahead after a password ended with Ctrl-D as the answer to the second prompt", async () => {
    const pty = spawnPty(["user", "add", "dave", "--data", data], { bin: MYFTPD_BIN });
    await pty.expect(/Password: /);
    pty.send("s3cret\u0004s3cret\u0004");
    // Were the repeat lost, this Ctrl-D on an empty line would answer the second prompt and cancel the command.
    await pty.expect(/Repeat password: /);
    pty.send("\u0004");
    expect(await pty.exit()).toBe(0);
    expect(pty.output()).toMatch(/added user dave/);
    const list = await runMyftpd(["user", "list", "--data", data]);
    expect(list.stdout).toMatch(/dave/);
  });
});
