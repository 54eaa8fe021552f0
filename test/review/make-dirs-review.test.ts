// makeDirsSync looks for the directory that cannot be made the way the recursive mkdir they stand in for does:
// along the path as given, which the kernel resolves (a link, then ".." from where it leads). Looking along the
// path with ".." taken out by hand named another directory, which was then made where nobody asked for one, while
// the command still failed with ENOENT: `myftp mirror URL out/link/../copy`, `link` leading to a read-only file
// system, left an `out/copy` behind and said "no such file or directory".
// The read-only case needs root (a tmpfs mounted, then remounted read-only) and skips itself where that fails.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeDirsSync } from "../../src/core/dirs.js";
import { MYFTP_BIN, startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { useTmpfs } from "../helpers/tmpfs.js";
import { runProcess } from "../helpers/util.js";

const ro = useTmpfs("1m", "dirs-review");

let servers: RunningServer[] = [];
let dirs: string[] = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function scratch(): string {
  const d = tempDir("myftp-dirs-review-");
  dirs.push(d);
  return d;
}

/** out/ holding `link`, a link to `target`. Not path.join for what goes through it: that takes ".." out by hand. */
function outWithLink(target: string): string {
  const out = join(scratch(), "out");
  mkdirSync(out);
  symlinkSync(target, join(out, "link"));
  return out;
}

describe("a directory to make past a link and then ..", () => {
  it("past a dangling link: ENOENT, and nothing made", () => {
    const out = outWithLink(join(scratch(), "gone", "deeper"));
    expect(() => makeDirsSync(`${out}/link/../copy/sub`, 0o750)).toThrow(expect.objectContaining({ code: "ENOENT" }));
    expect(readdirSync(out)).toEqual(["link"]);
  });

  it("myftp mirror into a read-only file system that way says so and makes nothing", { timeout: 60_000 }, async (ctx) => {
    if (!ro.mounted) ctx.skip();
    const s = await startServer([{ name: "alice", password: "pw" }], { transferProcesses: 0 });
    servers.push(s);
    mkdirSync(join(s.homeOf("alice"), "site"));
    writeFileSync(join(s.homeOf("alice"), "site", "a.txt"), "a\n");
    mkdirSync(join(ro.path, "sub"), { recursive: true });
    const out = outWithLink(join(ro.path, "sub"));
    const remount = spawnSync("mount", ["-o", "remount,ro", ro.path], { encoding: "utf8", timeout: 10_000 });
    if (remount.status !== 0) ctx.skip();
    try {
      expect(() => makeDirsSync(`${out}/link/../h/alice`, 0o750)).toThrow(expect.objectContaining({ code: "EROFS" }));
      expect(readdirSync(out)).toEqual(["link"]);
      const m = await runProcess(process.execPath, [MYFTP_BIN, "mirror", s.url("alice", "pw", "/site"), `${out}/link/../copy`]);
      expect(m.code, m.stderr).toBe(8);
      expect(m.stderr).toMatch(/read-only file system/i);
      expect(readdirSync(out)).toEqual(["link"]);
      expect(existsSync(join(ro.path, "copy"))).toBe(false);
    } finally {
      spawnSync("mount", ["-o", "remount,rw", ro.path], { timeout: 10_000 });
    }
  });
});
