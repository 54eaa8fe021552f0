// mirror --delete removes the target's directories that the source no longer has, deepest first, naming each
// ("deleted DIR/") and counting it as deleted, in both directions. A directory that still holds something not deleted
// (a link, a file that failed to delete, an entry the listing does not show) stays; nothing goes when the source
// could not be listed or the mirror was interrupted.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { clientWorkDir, collect, makeFile, runMyftp, spawnMyftp, waitFor } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

/** Makes each file (with its directories) and each directory (names ending in "/") under root. */
async function makeTree(root: string, entries: readonly string[]): Promise<void> {
  for (const e of entries) {
    if (e.endsWith("/")) await mkdir(join(root, e), { recursive: true });
    else {
      await mkdir(join(root, e, ".."), { recursive: true });
      await writeFile(join(root, e), `${e}\n`);
    }
  }
}

/** Every entry under dir, "/"-separated, sorted. */
async function entriesIn(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map((p) => String(p).split("\\").join("/")).sort();
}

function deletedCount(stdout: string, verb: string): number {
  const m = new RegExp(`^${verb}: \\d+ transferred .*, \\d+ unchanged, (\\d+) deleted`, "m").exec(stdout);
  return m ? Number(m[1]) : 0;
}

/**
 * Makes `file` impossible to delete for this process (a directory that cannot be written, or as root an immutable
 * file); returns the undo, or undefined where neither works.
 */
async function undeletable(file: string): Promise<(() => Promise<void>) | undefined> {
  if (process.getuid?.() !== 0) {
    await chmod(join(file, ".."), 0o555);
    return () => chmod(join(file, ".."), 0o755);
  }
  try {
    execFileSync("chattr", ["+i", file], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  return async () => void execFileSync("chattr", ["-i", file], { stdio: "ignore" });
}

describe("mirror --delete and directories", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });
  let n = 0;
  /** A fresh directory under the work directory. */
  async function fresh(name: string): Promise<string> {
    const dir = join(work.path, `${name}-${++n}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  it("remote to local: removes the directories the source does not have, deepest first, and keeps the ones left holding something", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const home = s.homeOf(USER.name);
    await makeTree(join(home, "tree"), ["keep.txt", "sub/s.txt", "emptysub/"]);
    const local = await fresh("down");
    await makeTree(local, [
      "keep.txt",
      "sub/s.txt",
      "old/x.txt",
      "old/deeper/y.txt",
      "old/deeper/empty/",
      "gone/",
      "withlink/inner/",
      // A download's record of its ranges, which the walk leaves out: its directory is not empty.
      "partial/f.bin.myftp-segments",
    ]);
    await symlink("../keep.txt", join(local, "withlink", "l"));
    const r = await runMyftp(["mirror", "--delete", s.url(USER.name, USER.password, "/tree"), local]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = r.stdout;
    for (const d of ["old/x.txt", "old/deeper/y.txt", "old/deeper/empty/", "old/deeper/", "old/", "gone/", "withlink/inner/"])
      expect(out).toMatch(new RegExp(`^mirror: deleted ${d.replace(/\./g, "\\.")}$`, "m"));
    // Deepest first, and files before the directories that held them.
    const at = (line: string) => out.indexOf(`${line}\n`);
    expect(at("mirror: deleted old/deeper/y.txt")).toBeLessThan(at("mirror: deleted old/deeper/empty/"));
    expect(at("mirror: deleted old/deeper/empty/")).toBeLessThan(at("mirror: deleted old/deeper/"));
    expect(at("mirror: deleted old/deeper/")).toBeLessThan(at("mirror: deleted old/"));
    expect(out).toMatch(/^mirror: kept withlink\/ \(not empty\)$/m);
    expect(out).toMatch(/^mirror: kept partial\/ \(not empty\)$/m);
    expect(out).not.toMatch(/deleted (sub|emptysub|withlink|partial)\/$/m);
    expect(deletedCount(out, "mirror")).toBe(2 + 5);
    expect(await entriesIn(local)).toEqual(
      ["emptysub", "keep.txt", "partial", "partial/f.bin.myftp-segments", "sub", "sub/s.txt", "withlink", "withlink/l"].sort(),
    );
    // A second run has nothing more to delete.
    const r2 = await runMyftp(["mirror", "--delete", s.url(USER.name, USER.password, "/tree"), local]);
    expect(r2.code).toBe(0);
    expect(r2.stdout).not.toContain("deleted");
    expect(r2.stdout).toMatch(/^mirror: 0 transferred .*, 2 unchanged$/m);
  });

  it("local to remote: removes the directories with RMD, and one the server finds not empty is named as failed and kept with its parents", async () => {
    const home = s.homeOf(USER.name);
    const src = await fresh("up-src");
    await makeTree(src, ["keep.txt", "sub/s.txt"]);
    await makeTree(join(home, "site"), [
      "keep.txt",
      "sub/s.txt",
      "old/x.txt",
      "old/deeper/y.txt",
      "old/deeper/empty/",
      "gone/",
      // Another session's upload in progress: a temporary name the listing never shows, so part/inner/ looks empty.
      "part/inner/.myftp-upload-abc.f.bin",
    ]);
    const r = await runMyftp(["mirror", "--reverse", "--delete", src, s.url(USER.name, USER.password, "/site")]);
    const out = r.stdout;
    for (const d of ["old/x.txt", "old/deeper/y.txt", "old/deeper/empty/", "old/deeper/", "old/", "gone/"])
      expect(out).toMatch(new RegExp(`^mirror --reverse: deleted ${d.replace(/\./g, "\\.")}$`, "m"));
    const at = (line: string) => out.indexOf(`${line}\n`);
    expect(at("mirror --reverse: deleted old/deeper/empty/")).toBeLessThan(at("mirror --reverse: deleted old/deeper/"));
    expect(at("mirror --reverse: deleted old/deeper/")).toBeLessThan(at("mirror --reverse: deleted old/"));
    // myftpd answers RMD of a directory that is not empty with 550; that directory and the one above it stay.
    expect(out).toMatch(/^mirror --reverse: could not delete part\/inner\/: the server refused: Directory not empty \(550\)$/m);
    expect(out).toMatch(/^mirror --reverse: kept part\/ \(not empty\)$/m);
    expect(out).toMatch(/^mirror --reverse: 0 transferred .*, 2 unchanged, 6 deleted, 1 failed$/m);
    expect(r.stderr).toMatch(/^myftp: mirror --reverse: 1 failed; first: the server refused: Directory not empty \(550\)\n$/);
    expect(r.code).toBe(5);
    expect(await entriesIn(join(home, "site"))).toEqual(
      ["keep.txt", "part", "part/inner", "part/inner/.myftp-upload-abc.f.bin", "sub", "sub/s.txt"].sort(),
    );
  });

  it("local to remote: a file that fails to delete (being uploaded) keeps its directory; the others still go", async () => {
    const home = s.homeOf(USER.name);
    const src = await fresh("busy-src");
    await makeTree(src, ["keep.txt"]);
    await makeTree(join(home, "busy"), ["keep.txt", "old/", "gone/x.txt"]);
    const c = await RawFtp.login(s.port, USER.name, USER.password, { type: "I" });
    try {
      const data = await c.epsv();
      expect((await c.cmd("STOR busy/old/up.bin")).code).toBe(150);
      data.write("first bytes");
      expect(await waitFor(async () => existsSync(join(home, "busy", "old", "up.bin")))).toBe(true);
      const r = await runMyftp(["mirror", "-R", "--delete", src, s.url(USER.name, USER.password, "/busy")]);
      expect(r.stdout).toMatch(/^mirror --reverse: could not delete old\/up\.bin: the server refused: .*being uploaded.*\(450\)$/m);
      expect(r.stdout).toMatch(/^mirror --reverse: kept old\/ \(not empty\)$/m);
      expect(r.stdout).toMatch(/^mirror --reverse: deleted gone\/x\.txt$/m);
      expect(r.stdout).toMatch(/^mirror --reverse: deleted gone\/$/m);
      expect(r.stdout).toMatch(/^mirror --reverse: 0 transferred .*, 1 unchanged, 2 deleted, 1 failed$/m);
      expect(r.code).toBe(5);
      expect(existsSync(join(home, "busy", "old", "up.bin"))).toBe(true);
      expect(existsSync(join(home, "busy", "gone"))).toBe(false);
      await new Promise<void>((resolve) => data.end("last bytes", () => resolve()));
      expect((await c.read()).code).toBe(226);
      data.destroy();
    } finally {
      await c.close();
    }
  });

  it("remote to local: a file that fails to delete keeps its directory and the ones above it", async (ctx) => {
    const home = s.homeOf(USER.name);
    await makeTree(join(home, "tree2"), ["keep.txt"]);
    const local = await fresh("stuck");
    await makeTree(local, ["keep.txt", "old/deeper/y.txt", "old/z.txt", "gone/"]);
    const undo = await undeletable(join(local, "old", "deeper", "y.txt"));
    if (!undo) ctx.skip();
    try {
      const r = await runMyftp(["mirror", "--delete", s.url(USER.name, USER.password, "/tree2"), local]);
      expect(r.stdout).toMatch(/^mirror: could not delete old\/deeper\/y\.txt: .+$/m);
      expect(r.stdout).toMatch(/^mirror: kept old\/deeper\/ \(not empty\)$/m);
      expect(r.stdout).toMatch(/^mirror: kept old\/ \(not empty\)$/m);
      expect(r.stdout).toMatch(/^mirror: deleted old\/z\.txt$/m);
      expect(r.stdout).toMatch(/^mirror: deleted gone\/$/m);
      expect(r.stdout).toMatch(/, 2 deleted, 1 failed$/m);
      expect(r.stderr).toMatch(/^myftp: mirror: 1 failed; first: /);
      expect(r.code).not.toBe(0);
      expect(await entriesIn(local)).toEqual(["keep.txt", "old", "old/deeper", "old/deeper/y.txt"]);
    } finally {
      await undo!();
    }
  });

  it("deletes no directory when the source cannot be listed, and does once it can", async () => {
    const home = s.homeOf(USER.name);
    // Remote to local, from a directory that is missing, then there.
    const local = await fresh("nosrc");
    await makeTree(local, ["extra/", "extra2/f.txt"]);
    const url = s.url(USER.name, USER.password, "/later");
    const r = await runMyftp(["mirror", "--delete", url, local]);
    expect(r.code).toBe(5);
    expect(r.stdout).not.toContain("deleted");
    expect(await entriesIn(local)).toEqual(["extra", "extra2", "extra2/f.txt"]);
    await mkdir(join(home, "later"));
    const r2 = await runMyftp(["mirror", "--delete", url, local]);
    expect(r2.code).toBe(0);
    expect(r2.stdout).toMatch(/^mirror: 0 transferred .*, 0 unchanged, 3 deleted$/m);
    expect(await entriesIn(local)).toEqual([]);
    // Local to remote, from a local directory that is missing, then there.
    await makeTree(join(home, "uptarget"), ["extra/", "extra2/f.txt"]);
    const missing = join(work.path, "no-such-dir");
    const r3 = await runMyftp(["mirror", "-R", "--delete", missing, s.url(USER.name, USER.password, "/uptarget")]);
    expect(r3.code).not.toBe(0);
    expect(r3.stdout).not.toContain("deleted");
    expect(await entriesIn(join(home, "uptarget"))).toEqual(["extra", "extra2", "extra2/f.txt"]);
    await mkdir(missing);
    const r4 = await runMyftp(["mirror", "-R", "--delete", missing, s.url(USER.name, USER.password, "/uptarget")]);
    expect(r4.code).toBe(0);
    expect(r4.stdout).toMatch(/^mirror --reverse: 0 transferred .*, 0 unchanged, 3 deleted$/m);
    expect(await entriesIn(join(home, "uptarget"))).toEqual([]);
  });

  it("deletes no directory when interrupted with Ctrl-C, and does on the next run", async () => {
    const home = s.homeOf(USER.name);
    await mkdir(join(home, "slow"));
    await makeFile(join(home, "slow", "big.bin"), 4 * 1024 * 1024);
    const local = await fresh("ctrl-c");
    await makeTree(local, ["olddir/", "olddir2/f.txt"]);
    const url = s.url(USER.name, USER.password, "/slow");
    const child = spawnMyftp(["--limit-rate", "200k", "mirror", "--delete", url, local]);
    const done = collect(child);
    // Ctrl-C once the download has started.
    expect(await waitFor(async () => (await readdir(local)).some((e) => e.startsWith("big.bin")))).toBe(true);
    child.kill("SIGINT");
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.stdout).not.toContain("deleted");
    expect((await entriesIn(local)).filter((e) => !e.startsWith("big.bin"))).toEqual(["olddir", "olddir2", "olddir2/f.txt"]);
    const r2 = await runMyftp(["mirror", "--delete", url, local]);
    expect(r2.code).toBe(0);
    expect(r2.stdout).toMatch(/^mirror: deleted olddir\/$/m);
    expect(r2.stdout).toMatch(/^mirror: deleted olddir2\/$/m);
    expect((await entriesIn(local)).filter((e) => !e.startsWith("big.bin"))).toEqual([]);
  });
});
