// An overwrite's temporary file for a REST inside the file carries a mark (its modification time) until the upload
// writes to it; an upload that ended without a byte has the mark replaced by the current time as it is put in place.
// That must act on the temporary file itself: a local process that swaps the temporary name for a link between the
// server's look at it and the change of its time must not have the server (running as root) change the times of
// whatever the link leads to, outside the home.
import * as realFs from "node:fs";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";

/** When set, the next look at a marked temporary file swaps it for a link to this file (once). */
let swapTo: string | null = null;

vi.mock("node:fs", async (importOriginal) => {
  const orig = await importOriginal<typeof import("node:fs")>();
  const lstatSync = ((p: realFs.PathLike, o?: unknown) => {
    const st = (orig.lstatSync as (p: realFs.PathLike, o?: unknown) => realFs.Stats)(p, o);
    if (swapTo && st && st.mtimeMs === 0 && String(p).includes(".myftp-upload-")) {
      const to = swapTo;
      swapTo = null;
      orig.renameSync(p, `${String(p)}.moved`);
      orig.symlinkSync(to, p);
    }
    return st;
  }) as typeof orig.lstatSync;
  return { ...orig, lstatSync, default: { ...orig, lstatSync } };
});

const { LocalStorage } = await import("../../src/storage/local.js");

let dirs: string[] = [];
afterEach(() => {
  swapTo = null;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe("the mark of a REST-inside overwrite's temporary file", () => {
  it("is replaced on the temporary file itself, never through a link swapped in", async () => {
    const base = mkdtempSync(join(tmpdir(), "myftp-mark-"));
    dirs.push(base);
    const home = join(base, "home");
    mkdirSync(home);
    const outside = join(base, "outside.txt");
    writeFileSync(outside, "not the user's");
    const old = new Date("2000-01-01T00:00:00Z");
    realFs.utimesSync(outside, old, old);
    writeFileSync(join(home, "f.bin"), "0123456789");

    const storage = await LocalStorage.open(home);
    const t = await storage.openTemp("/f.bin", 5);
    await t.handle.close();
    swapTo = outside;
    await storage.commitTemp(t.tempPath, "/f.bin").catch(() => undefined);
    expect(swapTo).toBeNull(); // the swap happened
    expect(realFs.statSync(outside).mtimeMs).toBe(old.getTime());
  });
});
