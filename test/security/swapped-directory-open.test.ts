// A directory of the home swapped for a link to the outside between the check of a path and the open of its file (a
// local process can rename directories in a home and plant links there; a tight loop of swaps hits that window within
// a few hundred RETRs). The file opened must be refused when it lies outside: nothing outside is read, written or
// created. The swap is made deterministic here by doing it right after the resolver's realpath of the path.
import * as fs from "node:fs";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import fsModule from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LocalStorage } from "../../src/storage/local.js";
import { tempDir } from "../helpers/myftpd.js";

let base: string;
let home: string;
let outside: string;
const realpathNative = fs.realpathSync.native;
const fsDefault = fsModule as { openSync: typeof fs.openSync };
const openSync = fsDefault.openSync;

beforeEach(() => {
  base = tempDir("myftp-swapopen-");
  home = path.join(base, "home");
  outside = path.join(base, "outside");
  mkdirSync(path.join(home, "d"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(home, "d", "f.txt"), "inside\n");
  writeFileSync(path.join(outside, "f.txt"), "SECRET outside\n");
});
afterEach(() => {
  fs.realpathSync.native = realpathNative;
  if (fsDefault.openSync !== openSync) {
    fsDefault.openSync = openSync;
    syncBuiltinESMExports();
  }
  rmSync(base, { recursive: true, force: true });
});

/** Swaps `d` for a link to the outside right after the `nth` realpath of `when` (a disk path) returns. */
function swapAfterRealpathOf(when: string, nth = 1): void {
  let done = false;
  let seen = 0;
  fs.realpathSync.native = ((p: fs.PathLike, ...rest: unknown[]) => {
    const r = (realpathNative as (p: fs.PathLike, ...rest: unknown[]) => string)(p, ...rest);
    if (!done && p === when && ++seen === nth) {
      done = true;
      renameSync(path.join(home, "d"), path.join(home, "d-away"));
      symlinkSync(outside, path.join(home, "d"));
    }
    return r;
  }) as typeof fs.realpathSync.native;
}

/** Swaps `d` for a link to the outside right before the first openSync of `when` (a disk path). */
function swapBeforeOpenOf(when: string): void {
  let done = false;
  fsDefault.openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
    if (!done && p === when) {
      done = true;
      renameSync(path.join(home, "d"), path.join(home, "d-away"));
      symlinkSync(outside, path.join(home, "d"));
    }
    return (openSync as (p: fs.PathLike, ...rest: unknown[]) => number)(p, ...rest);
  }) as typeof fs.openSync;
  syncBuiltinESMExports();
}

function expectOutsideUntouched(): void {
  expect(readdirSync(outside)).toEqual(["f.txt"]);
  expect(readFileSync(path.join(outside, "f.txt"), "utf8")).toBe("SECRET outside\n");
}

describe("a directory swapped for a link to the outside between the check and the open", () => {
  it("a read (RETR, HASH) is refused rather than reading the outside file", async () => {
    const storage = await LocalStorage.open(home);
    // A read opens the path as it is first: the swap comes right before that open.
    swapBeforeOpenOf(path.join(storage.root, "d", "f.txt"));
    await expect(storage.openRead("/d/f.txt")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched();
  });

  it("a read through a link, resolved in full, is refused rather than reading the outside file", async () => {
    const storage = await LocalStorage.open(home);
    // A link as the last name is not opened as it is: the path is resolved first, and the swap comes right after.
    symlinkSync("d/f.txt", path.join(home, "link.txt"));
    swapAfterRealpathOf(path.join(storage.root, "link.txt"));
    await expect(storage.openRead("/link.txt")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched();
  });

  it("a write to an existing file is refused rather than opening the outside one", async () => {
    const storage = await LocalStorage.open(home);
    swapAfterRealpathOf(path.join(storage.root, "d", "f.txt"));
    await expect(storage.openWrite("/d/f.txt")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched();
  });

  it("a new file is not left created outside", async () => {
    const storage = await LocalStorage.open(home);
    // The first realpath of d is the check that new.txt is missing for a reason inside the home; the last one
    // resolves the directory the file is created in.
    swapAfterRealpathOf(path.join(storage.root, "d"), 2);
    await expect(storage.openWrite("/d/new.txt")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched();
  });
});
