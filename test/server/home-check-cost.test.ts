// The check that the home is still there (a home removed or replaced by a file answers "Your home directory is no
// longer available") costs no look of its own at the home on the common paths: a new file's upload, a listing of the
// home, a new directory, an overwrite. Each would otherwise add a stat(2) to every such command.
import * as realFs from "node:fs";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";

let stats = 0;

vi.mock("node:fs", async (importOriginal) => {
  const orig = await importOriginal<typeof import("node:fs")>();
  const statSync = ((...args: unknown[]) => {
    stats++;
    return (orig.statSync as (...a: unknown[]) => unknown)(...args);
  }) as typeof orig.statSync;
  return { ...orig, statSync, default: { ...orig, statSync } };
});

const { LocalStorage } = await import("../../src/storage/local.js");

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe("the home check on common paths", () => {
  it("adds no stat of the home to uploads, listings of the home and new directories", async () => {
    const home = mkdtempSync(join(tmpdir(), "myftp-homecheck-"));
    dirs.push(home);
    writeFileSync(join(home, "old.bin"), "old");
    const storage = await LocalStorage.open(home);

    stats = 0;
    const made = await storage.openWrite("/new.bin");
    await made.handle.close();
    expect(stats).toBe(0);

    // A listing looks at the directory it lists (before and while it reads it): the home no more than another.
    realFs.mkdirSync(join(home, "sub"));
    writeFileSync(join(home, "sub", "x.bin"), "x");
    stats = 0;
    expect((await storage.list("/sub")).map((e) => e.name)).toEqual(["x.bin"]);
    const subStats = stats;
    stats = 0;
    const names = (await storage.list("/")).map((e) => e.name).sort();
    expect(names).toEqual(["new.bin", "old.bin", "sub"]);
    expect(stats).toBe(subStats);

    stats = 0;
    await storage.mkdir("/d");
    expect(stats).toBe(0);
    expect(realFs.statSync(join(home, "d")).isDirectory()).toBe(true);

    stats = 0;
    const over = await storage.openWrite("/old.bin");
    await over.handle.close();
    expect(stats).toBe(0);
  });
});
