// A fixed-size pool of worker threads fed by a FIFO task queue. Workers start on first use; a worker that dies
// fails only its own task and is replaced. A task whose signal aborts while it still waits leaves the queue, so
// work for a client that has gone never takes a worker.

import { Worker } from "node:worker_threads";

interface Task<I, O> {
  input: I;
  resolve: (out: O) => void;
  reject: (err: Error) => void;
  /** Set when the task was withdrawn before a worker took it. */
  cancelled: boolean;
}

interface Slot<I, O> {
  worker: Worker;
  task: Task<I, O> | null;
}

/** The error of a task withdrawn before it ran (an errno-style code, so callers treat it as an I/O outcome). */
function withdrawn(): Error {
  return Object.assign(new Error("task withdrawn"), { code: "ECANCELED" });
}

type Reply<O> = { ok: true; value: O } | { ok: false; error: string; code?: string };

export class WorkerPool<I, O> {
  private readonly slots: Slot<I, O>[] = [];
  private readonly queue: Task<I, O>[] = [];
  private qhead = 0;
  private waiting = 0;
  private closed = false;

  constructor(
    private readonly script: URL,
    readonly size: number,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new Error("worker pool size must be a positive integer");
  }

  /** Tasks waiting for a worker. */
  get queued(): number {
    return this.waiting;
  }

  /** Tasks running now. */
  get busy(): number {
    return this.slots.filter((s) => s.task !== null).length;
  }

  run(input: I, signal?: AbortSignal): Promise<O> {
    if (this.closed) return Promise.reject(new Error("worker pool is closed"));
    if (signal?.aborted) return Promise.reject(withdrawn());
    return new Promise<O>((resolve, reject) => {
      const task: Task<I, O> = { input, resolve, reject, cancelled: false };
      const onAbort = () => {
        if (!this.queue.includes(task, this.qhead)) return; // a worker has it already: let it finish
        task.cancelled = true;
        this.waiting--;
        reject(withdrawn());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      task.resolve = (out) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(out);
      };
      task.reject = (err) => {
        signal?.removeEventListener("abort", onAbort);
        reject(err);
      };
      this.queue.push(task);
      this.waiting++;
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queued > 0) {
      let slot = this.slots.find((s) => s.task === null);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn();
      }
      let task = this.queue[this.qhead++]!;
      while (task.cancelled) task = this.queue[this.qhead++]!;
      this.waiting--;
      if (this.qhead > 256 && this.qhead * 2 > this.queue.length) {
        this.queue.splice(0, this.qhead);
        this.qhead = 0;
      }
      slot.task = task;
      slot.worker.postMessage(task.input);
    }
  }

  private spawn(): Slot<I, O> {
    const worker = new Worker(this.script);
    worker.unref();
    const slot: Slot<I, O> = { worker, task: null };
    worker.on("message", (msg: Reply<O>) => {
      const task = slot.task;
      slot.task = null;
      if (task) {
        if (msg.ok) task.resolve(msg.value);
        else task.reject(Object.assign(new Error(msg.error), msg.code ? { code: msg.code } : {}));
      }
      this.dispatch();
    });
    const fail = (err: Error) => {
      const i = this.slots.indexOf(slot);
      if (i === -1) return;
      this.slots.splice(i, 1);
      slot.task?.reject(err);
      slot.task = null;
      if (!this.closed) this.dispatch();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`worker exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }

  async close(): Promise<void> {
    this.closed = true;
    const pending = this.queue.splice(this.qhead).filter((t) => !t.cancelled);
    this.qhead = 0;
    this.queue.length = 0;
    this.waiting = 0;
    for (const t of pending) t.reject(new Error("worker pool is closed"));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}

/** The URL of a compiled worker script next to this module (tests that run the TypeScript sources use dist/). */
export function workerScript(name: string): URL {
  const here = import.meta.url;
  return here.endsWith(".ts") ? new URL(`../../dist/workers/${name}.js`, here) : new URL(`./${name}.js`, here);
}
