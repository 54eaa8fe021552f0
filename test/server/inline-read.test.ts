// A small file is read in one go on the event loop (readNow), not on the thread pool. A second such read within a
// second that takes longer than 2 ms turns inline reads off, so a slow device cannot keep stalling every session,
// while one descheduled read on a busy machine does not: here the slow reads are real, from a named pipe whose writer
// waits before it writes.

import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { OpenFile } from "../../src/storage/local.js";
import { sleep } from "../helpers/util.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "myftp-inline-"));
const smallPath = path.join(dir, "small.bin");
const small = randomBytes(16 * 1024);
fs.writeFileSync(smallPath, small);

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function openFile(p: string): OpenFile {
  return new OpenFile(fs.openSync(p, "r"));
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

  /** One read of 4 bytes from a named pipe whose writer waits 100 ms before writing them. */
  async function slowRead(name: string): Promise<void> {
    const fifo = path.join(dir, name);
    execFileSync("mkfifo", [fifo]);
    // The writer opens the pipe at once (so opening it here returns) but writes only 100 ms later.
    const writer = spawn("sh", ["-c", 'exec 3>"$1"; sleep 0.1; printf slow >&3', "sh", fifo], { stdio: "ignore" });
    const exited = new Promise((resolve) => writer.once("exit", resolve));
    const pipe = openFile(fifo);
    const buf = Buffer.alloc(4);
    const t0 = performance.now();
    expect(pipe.readNow(buf, 0, 4, -1)).toBe(4);
    expect(performance.now() - t0).toBeGreaterThan(2);
    expect(buf.toString()).toBe("slow");
    await pipe.close();
    await exited;
  }

  function readSmallNow(): number | null {
    const f = openFile(smallPath);
    const out = Buffer.alloc(small.length);
    const n = f.readNow(out, 0, out.length, 0);
    if (n !== null) expect(out.equals(small)).toBe(true);
    void f.close();
    return n;
  }

  it("keeps inline reads after one slow read, turns them off after a second within a second, and read() still serves them", async () => {
    // Any slow read earlier in this worker falls out of the one-second window first.
    await sleep(1100);
    await slowRead("slow1");
    expect(readSmallNow()).toBe(small.length);
    await slowRead("slow2");
    expect(readSmallNow()).toBeNull();

    const f = openFile(smallPath);
    const out = Buffer.alloc(small.length);
    expect((await f.read(out, 0, out.length, 0)).bytesRead).toBe(small.length);
    expect(out.equals(small)).toBe(true);
    await f.close();
  });
});
