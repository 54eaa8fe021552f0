// A put the server refuses names the remote file it was writing when that is not simply the local file's name (a
// directory that is not there, another name), so the message says which file the refusal is about.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, runMyftp } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

describe("put refused by the server", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("names the remote target", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    await writeFile(join(work.path, "a.txt"), "a");
    const intoMissing = await runMyftp(["put", "a.txt", s.url(USER.name, USER.password, "/no-dir/")], { cwd: work.path });
    expect(intoMissing.code).toBe(5);
    expect(intoMissing.stderr).toMatch(/^myftp: put a\.txt to no-dir\/a\.txt: the server refused: .*\(550\)\n$/);
    const shell = await runMyftp([s.url(USER.name, USER.password, "/")], { cwd: work.path, stdin: "put a.txt no-dir/b.txt\nput a.txt\n" });
    expect(shell.code).toBe(5);
    expect(shell.stderr).toMatch(/^myftp: put a\.txt to no-dir\/b\.txt: the server refused: .*\(550\)\n$/);
    expect(shell.stdout).toMatch(/put a\.txt: 1 B .*verified/);
    // A local failure names the local file only, as before.
    const missing = await runMyftp(["put", "nothing.txt", s.url(USER.name, USER.password, "/no-dir/")], { cwd: work.path });
    expect(missing.stderr).toBe("myftp: put nothing.txt: no such local file: nothing.txt\n");
    expect(missing.code).toBe(8);
  });
});
