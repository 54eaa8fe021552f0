// A fixed-size pool of worker threads fed by a FIFO task queue. Workers start on first use; a worker that dies
// fails only its own task and is replaced.

import { Worker } from "node:worker_threads";

interface Task<I, O> {
  input: I;
  resolve: (out: O) => void;
  reject: (err: Error) => void;
}

interface Slot<I, O> {
  worker: Worker;
  task: Task<I, O> | null;
}

type Reply<O> = { ok: true; value: O } | { ok: false; error: string; code?: string };

export class WorkerPool<I, O> {
  private readonly slots: Slot<I, O>[] = [];
  private readonly queue: Task<I, O>[] = [];
  private qhead = 0;
  private closed = false;

  constructor(
    private readonly script: URL,
    readonly size: number,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new Error("worker pool size must be a positive integer");
  }

  /** Tasks waiting for a worker. */
  get queued(): number {
    return this.queue.length - this.qhead;
  }

  /** Tasks running now. */
  get busy(): number {
    return this.slots.filter((s) => s.task !== null).length;
  }

  run(input: I): Promise<O> {
    if (this.closed) return Promise.reject(new Error("worker pool is closed"));
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
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
      const task = this.queue[this.qhead++]!;
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
    const pending = this.queue.splice(this.qhead);
    this.qhead = 0;
    this.queue.length = 0;
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
