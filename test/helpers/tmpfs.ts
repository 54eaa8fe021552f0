// A small tmpfs mounted for one test file (root only): mounted before its tests, unmounted and removed after them.
// Where it cannot be mounted, `mounted` stays false and the tests that need it skip themselves.

import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { afterAll, beforeAll } from "vitest";
import { tempDir } from "./myftpd.js";

export interface Tmpfs {
  readonly path: string;
  readonly mounted: boolean;
}

/** Registers the mount and unmount of a tmpfs of `size` (e.g. "1m") for the calling test file. */
export function useTmpfs(size: string, what: string): Tmpfs {
  const state = { path: tempDir(`myftp-${what}-`), mounted: false };
  beforeAll(() => {
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", state.path], { encoding: "utf8", timeout: 10_000 });
    state.mounted = r.status === 0;
    if (!state.mounted) console.warn(`${what} tests skipped: cannot mount a tmpfs (${(r.stderr || r.error?.message || "").trim()})`);
  });
  afterAll(() => {
    if (state.mounted) spawnSync("umount", [state.path], { timeout: 10_000 });
    rmSync(state.path, { recursive: true, force: true });
  });
  return state;
}
