// A directory of the home swapped for a link to the outside between the check of a path and the command's action on
// the entry (a local process can rename directories in a home and plant links there). Deletes, renames, new
// directories, removed directories, new times and listings act through the directory that was checked, pinned by a
// descriptor, and new modes through a descriptor of the entry the kernel places inside the home: nothing outside is
// removed, moved, made, changed or listed. The swap is made deterministic by doing it right after the resolver's
// realpath of the entry's directory (or of the entry).
import * as fs from "node:fs";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import * as path from "node:path";
import fsModule from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LocalStorage } from "../../src/storage/local.js";
import { tempDir } from "../helpers/myftpd.js";

let base: string;
let home: string;
let outside: string;
const realpathNative = fs.realpathSync.native;

/** The same tree inside (under d/) and outside: sub/x.txt and sub/dir/. */
function tree(root: string, text: string): void {
  mkdirSync(path.join(root, "sub", "dir"), { recursive: true });
  writeFileSync(path.join(root, "sub", "x.txt"), text);
}

beforeEach(() => {
  base = tempDir("myftp-swapentries-");
  home = path.join(base, "home");
  outside = path.join(base, "outside");
  tree(path.join(home, "d"), "inside\n");
  tree(outside, "SECRET outside\n");
});
afterEach(() => {
  fs.realpathSync.native = realpathNative;
  rmSync(base, { recursive: true, force: true });
});

/** Swaps home/d for a link to the outside right after the first realpath of `when` (a disk path) returns. */
function swapAfterRealpathOf(when: string): void {
  let done = false;
  fs.realpathSync.native = ((p: fs.PathLike, ...rest: unknown[]) => {
    const r = (realpathNative as (p: fs.PathLike, ...rest: unknown[]) => string)(p, ...rest);
    if (!done && p === when) {
      done = true;
      renameSync(path.join(home, "d"), path.join(home, "d-away"));
      symlinkSync(outside, path.join(home, "d"));
    }
    return r;
  }) as typeof fs.realpathSync.native;
}

/** Renames the entry `entry` (a disk path) away and puts a link to `target` in its place, right after its realpath. */
function linkInAfterRealpathOf(entry: string, target: string): void {
  let done = false;
  fs.realpathSync.native = ((p: fs.PathLike, ...rest: unknown[]) => {
    const r = (realpathNative as (p: fs.PathLike, ...rest: unknown[]) => string)(p, ...rest);
    if (!done && p === entry) {
      done = true;
      renameSync(entry, `${entry}.away`);
      symlinkSync(target, entry);
    }
    return r;
  }) as typeof fs.realpathSync.native;
}

const outsideMtime = () => statSync(path.join(outside, "sub", "x.txt")).mtimeMs;

function expectOutsideUntouched(mtime: number): void {
  expect(readdirSync(path.join(outside, "sub")).sort()).toEqual(["dir", "x.txt"]);
  expect(readdirSync(path.join(outside, "sub", "dir"))).toEqual([]);
  expect(readFileSync(path.join(outside, "sub", "x.txt"), "utf8")).toBe("SECRET outside\n");
  expect(outsideMtime()).toBe(mtime);
}

describe("a directory swapped for a link to the outside between the check and the action", () => {
  let storage: LocalStorage;
  let mtime: number;
  let sub: string;
  beforeEach(async () => {
    storage = await LocalStorage.open(home);
    sub = path.join(storage.root, "d", "sub");
    mtime = outsideMtime();
  });

  it("DELE removes nothing outside", async () => {
    swapAfterRealpathOf(sub);
    await expect(storage.unlink("/d/sub/x.txt")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched(mtime);
  });

  it("RMD removes no directory outside", async () => {
    swapAfterRealpathOf(sub);
    await expect(storage.rmdir("/d/sub/dir")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched(mtime);
  });

  it("MKD makes no directory outside", async () => {
    swapAfterRealpathOf(sub);
    await expect(storage.mkdir("/d/sub/new")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched(mtime);
  });

  it("RNFR/RNTO moves nothing out of the outside, nor into it", async () => {
    writeFileSync(path.join(storage.root, "top.txt"), "top\n");
    swapAfterRealpathOf(sub);
    await expect(storage.rename("/d/sub/x.txt", "/stolen.txt")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched(mtime);
    fs.realpathSync.native = realpathNative;
    rmSync(path.join(home, "d"));
    renameSync(path.join(home, "d-away"), path.join(home, "d"));
    swapAfterRealpathOf(sub);
    await expect(storage.rename("/top.txt", "/d/sub/x.txt")).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched(mtime);
    expect(readFileSync(path.join(storage.root, "top.txt"), "utf8")).toBe("top\n");
  });

  it("MFMT changes no time outside", async () => {
    swapAfterRealpathOf(path.join(sub, "x.txt"));
    await expect(storage.setMtime("/d/sub/x.txt", Date.UTC(2001, 0, 1))).rejects.toMatchObject({ code: "outside-home" });
    expectOutsideUntouched(mtime);
  });

  it("SITE CHMOD changes no mode outside", async () => {
    const x = path.join(outside, "sub", "x.txt");
    fs.chmodSync(x, 0o644);
    swapAfterRealpathOf(path.join(sub, "x.txt"));
    await expect(storage.chmod("/d/sub/x.txt", 0o777)).rejects.toMatchObject({ code: "outside-home" });
    expect(statSync(x).mode & 0o7777).toBe(0o644);
    expectOutsideUntouched(mtime);
  });

  it("SITE CHMOD of a file swapped for a link to the outside (its last name) changes no mode outside", async () => {
    const x = path.join(outside, "sub", "x.txt");
    fs.chmodSync(x, 0o644);
    const inside = path.join(sub, "x.txt");
    linkInAfterRealpathOf(inside, x);
    await expect(storage.chmod("/d/sub/x.txt", 0o777)).rejects.toMatchObject({ code: "busy" });
    expect(statSync(x).mode & 0o7777).toBe(0o644);
    expectOutsideUntouched(mtime);
  });

  it("SITE CHMOD where the kernel cannot say where a file is (not Linux): a link swapped in as the last name is refused", async () => {
    const platform = Object.getOwnPropertyDescriptor(process, "platform")!;
    Object.defineProperty(process, "platform", { ...platform, value: "darwin" });
    try {
      await storage.chmod("/d/sub/x.txt", 0o600);
      expect(statSync(path.join(sub, "x.txt")).mode & 0o7777).toBe(0o600);
      const x = path.join(outside, "sub", "x.txt");
      fs.chmodSync(x, 0o644);
      const inside = path.join(sub, "x.txt");
      linkInAfterRealpathOf(inside, x);
      await expect(storage.chmod("/d/sub/x.txt", 0o777)).rejects.toMatchObject({ code: "busy" });
      expect(statSync(x).mode & 0o7777).toBe(0o644);
    } finally {
      Object.defineProperty(process, "platform", platform);
    }
  });

  it("SIZE, MDTM and MLST tell nothing of an outside file", async () => {
    swapAfterRealpathOf(path.join(sub, "x.txt"));
    await expect(storage.stat("/d/sub/x.txt")).rejects.toMatchObject({ code: "outside-home" });
    // The home itself is looked at directly.
    expect((await storage.stat("/")).type).toBe("dir");
  });

  it("LIST lists nothing outside", async () => {
    writeFileSync(path.join(outside, "sub", "secret-name.txt"), "");
    swapAfterRealpathOf(sub);
    await expect(storage.list("/d/sub")).rejects.toMatchObject({ code: "outside-home" });
  });

  it("a swap of the entry's own directory (its last part now a link) acts on nothing outside", async () => {
    writeFileSync(path.join(outside, "x.txt"), "SECRET outside\n");
    writeFileSync(path.join(home, "d", "x.txt"), "inside\n");
    swapAfterRealpathOf(path.join(storage.root, "d"));
    await expect(storage.unlink("/d/x.txt")).rejects.toMatchObject({ code: "busy" });
    expect(readFileSync(path.join(outside, "x.txt"), "utf8")).toBe("SECRET outside\n");
    expectOutsideUntouched(mtime);
  });
});

describe("a refused new file removed after its directory was swapped", () => {
  it("removes nothing outside, even when the swap comes right after the check of the name", async () => {
    const storage = await LocalStorage.open(home);
    const w = await storage.openWrite("/d/sub/new.txt");
    await w.handle.close();
    writeFileSync(path.join(outside, "sub", "new.txt"), "SECRET outside\n");
    // The swap lands right after the first lstat of the file's path (the identity check before the removal).
    // The module's own object (ES imports of it see a copy, refreshed by syncBuiltinESMExports).
    const fsDefault = fsModule as { lstatSync: typeof fs.lstatSync };
    const lstatNative = fsDefault.lstatSync;
    const target = path.join(storage.root, "d", "sub", "new.txt");
    let swapped = false;
    fsDefault.lstatSync = ((p: fs.PathLike, ...rest: unknown[]) => {
      const r = (lstatNative as (p: fs.PathLike, ...rest: unknown[]) => fs.Stats)(p, ...rest);
      if (!swapped && p === target) {
        swapped = true;
        renameSync(path.join(home, "d"), path.join(home, "d-away"));
        symlinkSync(outside, path.join(home, "d"));
      }
      return r;
    }) as typeof fs.lstatSync;
    syncBuiltinESMExports();
    try {
      await storage.removeOpened(w.diskPath, w.ident);
    } finally {
      fsDefault.lstatSync = lstatNative;
      syncBuiltinESMExports();
    }
    expect(readFileSync(path.join(outside, "sub", "new.txt"), "utf8")).toBe("SECRET outside\n");
  });
});
