// Helpers for the review tests: holding libuv's thread pool so that the server's queued file-system work waits at a
// known point, and an outside directory next to a home.
//
// The tests run the server in their own process (startServer), so the thread pool is shared with it. Opening a FIFO
// for reading blocks a pool thread until a writer opens it; with every thread held that way, whatever the server hands
// to the pool (an unlink, a readdir, a worker's open) stays queued until release(), while everything the server does
// inline on the event loop (realpath, stat, rename) goes on. That makes "the client changes the tree while the
// server's call is still queued" an ordered sequence instead of a race.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { withTimeout } from "../helpers/util.js";

export interface HeldPool {
  /** Lets the held threads go and waits until each has given its FIFO back. */
  release(): Promise<void>;
}

/** Blocks every thread of the pool (UV_THREADPOOL_SIZE, default 4) on a FIFO open in `dir`. */
export function holdThreadPool(dir: string): HeldPool {
  const n = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos: string[] = [];
  const opened: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `hold-${process.pid}-${i}`);
    execFileSync("mkfifo", [f]);
    fifos.push(f);
    opened.push(
      new Promise<void>((resolve) =>
        fs.open(f, "r", (err, fd) => {
          if (!err) fs.closeSync(fd);
          resolve();
        }),
      ),
    );
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      // A reader is already waiting in open(), so these opens return at once and wake it.
      for (const f of fifos) fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      await withTimeout(Promise.all(opened), 5000, "thread pool did not come back");
      for (const f of fifos) fs.rmSync(f, { force: true });
    },
  };
}

/** Requests of the file system now pending in this process (queued or running on the pool). */
export function pendingFsRequests(): number {
  return process.getActiveResourcesInfo().filter((r) => r.startsWith("FSReq")).length;
}
