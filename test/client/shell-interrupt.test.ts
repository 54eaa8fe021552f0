// Ctrl-C in the shell stops the whole command it comes during: the rest of an mget's files and of a mirror's are
// not started (the connection is not opened again for them), and a mirror --delete then deletes nothing.
import { existsSync } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, makeFile, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

describe("Ctrl-C in the shell during a command over several files", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("stops mget and mirror as a whole", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const home = s.homeOf(USER.name);
    for (const n of ["f1.bin", "f2.bin", "f3.bin"]) await makeFile(join(home, n), 2 * 1024 * 1024);
    await mkdir(join(home, "tree"));
    for (const n of ["a.bin", "b.bin", "c.bin", "d.bin"]) await makeFile(join(home, "tree", n), 1024 * 1024);
    const local = join(work.path, "here");
    await mkdir(join(local, "copy"), { recursive: true });
    await writeFile(join(local, "copy", "keep.txt"), "not on the server");
    const pty = spawnPty(["--limit-rate", "400k", s.url(USER.name, USER.password, "/")], { cwd: local, env: { HOME: work.path } });
    await pty.expect(/myftp:\/> /);
    let mark = pty.output().length;
    pty.send("mget f*.bin\r");
    await new Promise((r) => setTimeout(r, 1000));
    pty.send("\x03");
    await pty.expect(/myftp: mget: interrupted at f1\.bin \(1 of 3\); the rest not done\r?\n/, { from: mark });
    await pty.expect(/myftp:\/> (\x1b\[\d+G)?$/, { from: mark });
    // Nothing more arrives after the prompt is back.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await readdir(local)).sort()).toEqual(["copy", "f1.bin"]);
    mark = pty.output().length;
    pty.send("mirror --parallel 2 --delete tree copy\r");
    await new Promise((r) => setTimeout(r, 1000));
    pty.send("\x03");
    await pty.expect(/myftp: mirror: interrupted after \d of 4 files\r?\n/, { from: mark });
    await pty.expect(/myftp:\/> (\x1b\[\d+G)?$/, { from: mark });
    await new Promise((r) => setTimeout(r, 1500));
    const copied = await readdir(join(local, "copy"));
    expect(copied).toContain("keep.txt");
    expect(copied.length).toBeLessThanOrEqual(3);
    pty.send("quit\r");
    expect(await pty.exit()).toBe(1);
    expect(existsSync(join(local, "f2.bin"))).toBe(false);
  });
});
