// A fixed-size pool of worker threads fed by a task queue. Workers start on first use; a worker that dies fails only
// its own task and is replaced. A task whose signal aborts while it still waits leaves the queue, so work for a
// client that has gone never takes a worker.
//
// Tasks may name whose they are (a key, e.g. the user): each key has its own FIFO queue, and a free worker takes the
// next task of the keys in turn, so one user's many tasks cannot keep another's waiting behind them all. Tasks
// without a key share one queue, FIFO.

import { Worker } from "node:worker_threads";

interface Task<I, O> {
  input: I;
  key: string;
  resolve: (out: O) => void;
  reject: (err: Error) => void;
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
  /** The tasks waiting for a worker, per key, each in arrival order. */
  private readonly queues = new Map<string, Task<I, O>[]>();
  /** The keys with tasks waiting, in the order they get their next turn. */
  private readonly turns: string[] = [];
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

  /** Runs a task; `key` says whose it is (see the top of this file). */
  run(input: I, signal?: AbortSignal, key = ""): Promise<O> {
    if (this.closed) return Promise.reject(new Error("worker pool is closed"));
    if (signal?.aborted) return Promise.reject(withdrawn());
    return new Promise<O>((resolve, reject) => {
      const task: Task<I, O> = { input, key, resolve, reject };
      const onAbort = () => {
        if (!this.unqueue(task)) return; // a worker has it already: let it finish
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
      const q = this.queues.get(key);
      if (q) q.push(task);
      else {
        this.queues.set(key, [task]);
        this.turns.push(key);
      }
      this.waiting++;
      this.dispatch();
    });
  }

  /** Takes a waiting task out of its queue; false when it is not waiting (a worker has it, or it ended). */
  private unqueue(task: Task<I, O>): boolean {
    const q = this.queues.get(task.key);
    const i = q ? q.indexOf(task) : -1;
    if (i < 0) return false;
    q!.splice(i, 1);
    this.waiting--;
    if (q!.length === 0) {
      this.queues.delete(task.key);
      this.turns.splice(this.turns.indexOf(task.key), 1);
    }
    return true;
  }

  /** The next task to run: the first of the key whose turn it is; that key then goes to the back of the turns. */
  private next(): Task<I, O> {
    const key = this.turns.shift()!;
    const q = this.queues.get(key)!;
    const task = q.shift()!;
    this.waiting--;
    if (q.length > 0) this.turns.push(key);
    else this.queues.delete(key);
    return task;
  }

  private dispatch(): void {
    while (this.waiting > 0) {
      let slot = this.slots.find((s) => s.task === null);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn();
      }
      const task = this.next();
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
    const pending = [...this.queues.values()].flat();
    this.queues.clear();
    this.turns.length = 0;
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
