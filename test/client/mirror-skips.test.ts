// mirror copies files and directories only: a link or a FIFO in the source is named and counted as skipped.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, runMyftp } from "./cli-helpers.js";

describe("mirror --reverse with entries that are not files", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("names the link and the FIFO it skips and counts them in the summary", async () => {
    s = await startServer([{ name: "alice", password: "pw", quota: null }]);
    const src = join(work.path, "site");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), "a\n");
    writeFileSync(join(src, "sub", "b.txt"), "b\n");
    symlinkSync("a.txt", join(src, "link.txt"));
    execFileSync("mkfifo", [join(src, "sub", "pipe")]);
    const r = await runMyftp(["mirror", "--reverse", src, s.url("alice", "pw", "/site")], { cwd: work.path });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^mirror --reverse: skipped link\.txt \(a link\)$/m);
    expect(r.stdout).toMatch(/^mirror --reverse: skipped sub\/pipe \(not a file or directory\)$/m);
    expect(r.stdout).toMatch(/^mirror --reverse: 2 transferred .*, 0 unchanged, 2 skipped$/m);
    expect(existsSync(join(s.homeOf("alice"), "site", "sub", "b.txt"))).toBe(true);
    expect(existsSync(join(s.homeOf("alice"), "site", "link.txt"))).toBe(false);
  });
});
