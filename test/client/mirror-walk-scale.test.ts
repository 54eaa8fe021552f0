// mirror's walk of a local tree looks for each file's .myftp-segments record among its directory's entries. It must
// do so with one look-up per file, not by going over every entry of the directory again for each file: a directory of
// 100,000 files would otherwise take 5·10⁹ comparisons (minutes) before anything is transferred.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";

/** How often the walk read an entry's name. */
let nameReads = 0;

vi.mock("node:fs/promises", async (importOriginal) => {
  const orig = await importOriginal<typeof import("node:fs/promises")>();
  const readdir = (async (...args: Parameters<typeof orig.readdir>) => {
    const entries = (await (orig.readdir as (...a: unknown[]) => Promise<unknown[]>)(...args)) as object[];
    return entries.map(
      (e) =>
        new Proxy(e, {
          get(target, prop) {
            if (prop === "name") nameReads++;
            const v = Reflect.get(target, prop, target);
            return typeof v === "function" ? v.bind(target) : v;
          },
        }),
    );
  }) as typeof orig.readdir;
  return { ...orig, readdir, default: { ...orig, readdir } };
});

const { walkLocal } = await import("../../src/client/mirror.js");

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe("mirror's local walk", () => {
  it("reads each entry's name a bounded number of times, however many files share the directory", async () => {
    const root = mkdtempSync(join(tmpdir(), "myftp-walk-"));
    dirs.push(root);
    const n = 2000;
    for (let i = 0; i < n; i++) writeFileSync(join(root, `f${i}.bin`), "");
    // A record that is not a valid one: the file beside it is taken as it is.
    writeFileSync(join(root, `f0.bin.myftp-segments`), "not a record");
    nameReads = 0;
    const tree = await walkLocal(root);
    expect(tree.files.size).toBe(n);
    expect(tree.files.get("f0.bin")?.unfinished).toBeUndefined();
    expect(nameReads).toBeLessThan(20 * n);
  });
});
