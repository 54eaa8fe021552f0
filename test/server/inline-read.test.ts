// A small file is read in one go on the event loop (readNow), not on the thread pool. A read that takes longer than
// 50 ms, or a second read over 2 ms within a second, turns inline reads off, so a slow device cannot keep stalling
// every session; one read of a few ms alone (a descheduled thread on a busy machine) does not. The slow reads here are
// real: reads from a named pipe whose writer, a worker thread, waits a set time before it writes.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { OpenFile, resetInlineReads } from "../../src/storage/local.js";
import { sleep } from "../helpers/util.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "myftp-inline-"));
const smallPath = path.join(dir, "small.bin");
const small = randomBytes(16 * 1024);
fs.writeFileSync(smallPath, small);
let fifos = 0;

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => resetInlineReads());

function openFile(p: string): OpenFile {
  return new OpenFile(fs.openSync(p, "r"));
}

// Opens the pipe for writing, waits for the reader's go (so a pipe can be made ahead of its read), then `delayMs`,
// then writes "slow".
const WRITER = `
const { workerData } = require("node:worker_threads");
const fs = require("node:fs");
const fd = fs.openSync(workerData.fifo, "w");
const go = new Int32Array(workerData.go);
Atomics.wait(go, 0, 0, 10000);
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.delayMs);
fs.writeSync(fd, "slow");
fs.closeSync(fd);
`;

interface SlowPipe {
  pipe: OpenFile;
  go: Int32Array;
  done: Promise<unknown>;
}

/** A pipe, open for reading, whose 4 bytes come `delayMs` after its read starts. */
function slowPipe(delayMs: number): SlowPipe {
  const fifo = path.join(dir, `slow${fifos++}`);
  execFileSync("mkfifo", [fifo]);
  const go = new SharedArrayBuffer(4);
  const writer = new Worker(WRITER, { eval: true, workerData: { fifo, delayMs, go } });
  const done = new Promise((resolve, reject) => {
    writer.once("exit", resolve);
    writer.once("error", reject);
  });
  return { pipe: openFile(fifo), go: new Int32Array(go), done }; // opening waits until the writer has the pipe open
}

/** Reads the pipe inline and returns how long the read took. */
async function readSlow(p: SlowPipe): Promise<number> {
  const buf = Buffer.alloc(4);
  const t0 = performance.now();
  Atomics.store(p.go, 0, 1);
  Atomics.notify(p.go, 0);
  expect(p.pipe.readNow(buf, 0, 4, -1)).toBe(4);
  const ms = performance.now() - t0;
  expect(buf.toString()).toBe("slow");
  await p.pipe.close();
  await p.done;
  return ms;
}

/** Whether a small file is read inline now (checking what it read when it is). */
function readsInline(): boolean {
  const f = openFile(smallPath);
  const out = Buffer.alloc(small.length);
  const n = f.readNow(out, 0, out.length, 0);
  if (n !== null) expect(out.equals(small)).toBe(true);
  void f.close();
  return n !== null;
}

describe("inline reads of small files", () => {
  it("reads a small file at once, and leaves a read over 64 KiB to the thread pool", async () => {
    const f = openFile(smallPath);
    const buf = Buffer.alloc(small.length);
    expect(f.readNow(buf, 0, buf.length, 0)).toBe(small.length);
    expect(buf.equals(small)).toBe(true);
    expect(f.readNow(Buffer.alloc(65 * 1024), 0, 65 * 1024, 0)).toBeNull();
    await f.close();
    expect(() => f.readNow(buf, 0, 10, 0)).toThrow(/closed/);
  });

  it("keeps inline reads after slow reads more than a second apart", async () => {
    expect(await readSlow(slowPipe(10))).toBeGreaterThan(2);
    expect(readsInline()).toBe(true);
    await sleep(1100);
    expect(await readSlow(slowPipe(10))).toBeGreaterThan(2);
    expect(readsInline()).toBe(true);
  });

  it("turns inline reads off after a second slow read within a second, and read() still serves them", async () => {
    const first = slowPipe(10);
    const second = slowPipe(10);
    expect(await readSlow(first)).toBeGreaterThan(2);
    expect(readsInline()).toBe(true);
    expect(await readSlow(second)).toBeGreaterThan(2);
    expect(readsInline()).toBe(false);

    const f = openFile(smallPath);
    const out = Buffer.alloc(small.length);
    expect((await f.read(out, 0, out.length, 0)).bytesRead).toBe(small.length);
    expect(out.equals(small)).toBe(true);
    await f.close();
  });

  it("turns inline reads off after one read over 50 ms", async () => {
    expect(await readSlow(slowPipe(120))).toBeGreaterThan(50);
    expect(readsInline()).toBe(false);
  });
});
