// Tab completion of names with spaces and non-ASCII letters, as typed on a terminal: a directory completed once can
// be run as it stands, and Tab again lists and completes what lies below it.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, spawnPty } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

describe("Tab completion of directories whose names need quotes", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("completes into the directory and below it, and every completed line runs", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const home = s.homeOf(USER.name);
    await mkdir(join(home, "my dir", "sub"), { recursive: true });
    await writeFile(join(home, "my dir", "file one.txt"), "one");
    await mkdir(join(home, "ünï dir"));
    await writeFile(join(home, "ünï dir", "naïve.txt"), "x");
    const pty = spawnPty([s.url(USER.name, USER.password, "/")], { cwd: work.path, env: { HOME: work.path } });
    await pty.expect(/myftp:\/> /);
    let mark = pty.output().length;
    // Tab, then Tab twice more: the directory, then the list of what it holds; the line still runs.
    pty.send("ls my");
    await pty.expect(/ls my/, { from: mark });
    pty.send("\t");
    await pty.expect(/ls "my dir\/"/, { from: mark });
    // (Keys sent apart, as typed: a burst of keys is taken as pasted text.)
    pty.send("\t");
    await new Promise((r) => setTimeout(r, 300));
    pty.send("\t");
    await pty.expect(/"my dir\/file one\.txt" \s+"my dir\/sub\/"/, { from: mark });
    pty.send("\r");
    await pty.expect(/- +3 .* file one\.txt\r?\n/, { from: mark });
    // Completing below the directory: the file, in quotes.
    mark = pty.output().length;
    pty.send("ls my");
    await pty.expect(/ls my/, { from: mark });
    pty.send("\t");
    await pty.expect(/ls "my dir\/"/, { from: mark });
    pty.send("f");
    await pty.expect(/ls "my dir\/"\S*f/, { from: mark });
    pty.send("\t");
    await pty.expect(/ls "my dir\/file one\.txt" /, { from: mark });
    pty.send("\r");
    await pty.expect(/- +3 .* file one\.txt\r?\n/, { from: mark });
    mark = pty.output().length;
    pty.send("ls ün");
    await pty.expect(/ls ün/, { from: mark });
    pty.send("\t");
    await pty.expect(/ls "ünï dir\/"/, { from: mark });
    pty.send("\t");
    await pty.expect(/ls "ünï dir\/naïve\.txt" /, { from: mark });
    pty.send("\r");
    await pty.expect(/- +1 .* naïve\.txt\r?\n/, { from: mark });
    pty.send("quit\r");
    expect(await pty.exit()).toBe(0);
    expect(pty.output()).not.toMatch(/unbalanced|refused/);
  });
});
