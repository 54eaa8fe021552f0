// A REST inside a file copies the file's start to a temporary file on the thread pool. A directory of the home swapped
// for a link to the outside while that copy waits for the pool (a local process can rename directories in a home and
// plant links there) must not make the copy read a file outside the home, nor create one there.
//
// The pool is held busy by reads of FIFOs that no one writes yet, so the copy is sure to run after the swap.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LocalStorage } from "../../src/storage/local.js";
import { tempDir } from "../helpers/myftpd.js";

const POOL = Number(process.env.UV_THREADPOOL_SIZE ?? 4);

let base: string;
let home: string;
let outside: string;

beforeEach(() => {
  base = tempDir("myftp-swapcopy-");
  home = path.join(base, "home");
  outside = path.join(base, "outside");
  mkdirSync(path.join(home, "d"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(home, "d", "f.bin"), Buffer.alloc(100_000, "i"));
  writeFileSync(path.join(outside, "f.bin"), Buffer.alloc(100_000, "S"));
});
afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Occupies every thread of libuv's pool until the returned function is called. */
function holdPool(): () => Promise<void> {
  const fifos: string[] = [];
  const opens: Promise<fs.promises.FileHandle>[] = [];
  for (let i = 0; i < POOL; i++) {
    const fifo = path.join(base, `fifo${i}`);
    execFileSync("mkfifo", [fifo]);
    fifos.push(fifo);
    opens.push(fs.promises.open(fifo, "r")); // blocks a pool thread until a writer comes
  }
  return async () => {
    const writers = fifos.map((f) => fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    for (const h of await Promise.all(opens)) await h.close();
    for (const w of writers) fs.closeSync(w);
  };
}

describe("a directory swapped for a link to the outside during the copy of a REST upload", () => {
  it("copies the home's file, and nothing is read or made outside", async () => {
    const storage = await LocalStorage.open(home);
    // Let the pool threads reach the FIFOs before the copy is queued behind them.
    const release = holdPool();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const opening = storage.openTemp("/d/f.bin", 50_000).then(
      (r) => r,
      (err: unknown) => err as Error,
    );
    // Right after the checks on the event loop, before the pool runs the copy.
    renameSync(path.join(home, "d"), path.join(home, "d-away"));
    symlinkSync(outside, path.join(home, "d"));
    await release();
    const result = await opening;
    // Outside: exactly what was there.
    expect(readdirSync(outside)).toEqual(["f.bin"]);
    expect(readFileSync(path.join(outside, "f.bin")).equals(Buffer.alloc(100_000, "S"))).toBe(true);
    if (!(result instanceof Error)) {
      // Went through: the temporary file holds the start of the home's file, and it is in the home.
      await result.handle.close();
      expect(fs.realpathSync(result.tempPath).startsWith(fs.realpathSync(home) + path.sep)).toBe(true);
      expect(readFileSync(result.tempPath).equals(Buffer.alloc(50_000, "i"))).toBe(true);
    }
    // Whatever the copy made in the home holds only the home's bytes.
    for (const n of readdirSync(path.join(home, "d-away"))) {
      expect(readFileSync(path.join(home, "d-away", n)).includes("S")).toBe(false);
    }
  });
});
