// A directory to make on a read-only file system: `serve`, `user add` (a new data directory or home), `cert` and
// `myftp mirror` say "read-only file system" with their exit code, where they printed Node's "ENOENT: no such file
// or directory" (its recursive mkdir reports EROFS so), which sent the admin looking for a missing parent.
// Needs root (a tmpfs mounted, then remounted read-only); skips itself where that fails.

import { spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeDirsSync } from "../../src/core/dirs.js";
import { MYFTP_BIN, runMyftpd, startServer, type RunningServer } from "../helpers/myftpd.js";
import { useTmpfs } from "../helpers/tmpfs.js";
import { runProcess } from "../helpers/util.js";

const fs_ = useTmpfs("1m", "readonly-admin");

let servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
});

/** Runs `fn` with the tmpfs read-only; false when it cannot be remounted so. */
async function readOnly(fn: () => Promise<void>): Promise<boolean> {
  const ro = spawnSync("mount", ["-o", "remount,ro", fs_.path], { encoding: "utf8", timeout: 10_000 });
  if (ro.status !== 0) return false;
  try {
    await fn();
  } finally {
    spawnSync("mount", ["-o", "remount,rw", fs_.path], { timeout: 10_000 });
  }
  return true;
}

describe("a directory to make on a read-only file system", () => {
  it("is refused as read-only by serve, user add, cert and myftp mirror, not as a missing file", { timeout: 60_000 }, async (ctx) => {
    if (!fs_.mounted) ctx.skip();
    const data = path.join(fs_.path, "data");
    const s = await startServer([{ name: "alice", password: "pw" }], { transferProcesses: 0 });
    servers.push(s);
    mkdirSync(path.join(s.homeOf("alice"), "site"));
    writeFileSync(path.join(s.homeOf("alice"), "site", "a.txt"), "a\n");
    const existing = path.join(fs_.path, "existing");
    mkdirSync(existing);
    const ok = await readOnly(async () => {
      const cases: [string, string[], string | undefined, number][] = [
        ["serve", ["serve", "--port", "0", "--host", "127.0.0.1", "--data", data], undefined, 1],
        ["user add (data)", ["user", "add", "bob", "--password-stdin", "--data", data], "pw\n", 1],
        ["cert (data)", ["cert", "--host", "localhost", "--data", data], undefined, 1],
        ["cert (tls/)", ["cert", "--host", "localhost", "--data", existing], undefined, 1],
      ];
      for (const [what, args, input, code] of cases) {
        const r = await runMyftpd(args, input);
        expect(r.code, `${what}: ${r.stderr}`).toBe(code);
        expect(r.stderr, what).toMatch(/read-only file system/i);
        expect(r.stderr, what).not.toMatch(/ENOENT|no such file/i);
      }
      const m = await runProcess(process.execPath, [MYFTP_BIN, "mirror", s.url("alice", "pw", "/site"), path.join(fs_.path, "site")]);
      expect(m.code, m.stderr).toBe(8);
      expect(m.stderr).toMatch(/read-only file system/i);
      expect(() => makeDirsSync(path.join(fs_.path, "h", "alice"), 0o750)).toThrow(expect.objectContaining({ code: "EROFS" }));
    });
    if (!ok) ctx.skip();
  });

  it("still reports a missing parent that cannot be made (a dangling link on the way) as ENOENT", () => {
    const top = path.join(fs_.path, "links");
    mkdirSync(top, { recursive: true });
    symlinkSync(path.join(top, "gone"), path.join(top, "dangling"));
    expect(() => makeDirsSync(path.join(top, "dangling", "home"), 0o750)).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});
