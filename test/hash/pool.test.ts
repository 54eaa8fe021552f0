// Issue 3, the worker pool behind HASH: a fixed number of real worker threads fed by a FIFO queue; a worker that
// dies fails only its own task and is replaced; close() rejects what is still queued.

import { afterEach, describe, expect, it } from "vitest";
import { WorkerPool } from "../../src/workers/pool.js";

// A real worker thread, as an ES module in a data: URL. It answers like the hash worker does.
const SCRIPT = `
import { parentPort, threadId } from "node:worker_threads";
parentPort.on("message", (m) => {
  if (m.op === "exit") process.exit(3);
  if (m.op === "throw") setTimeout(() => { throw new Error("boom"); }, 0);
  if (m.op === "fail") parentPort.postMessage({ ok: false, error: "refused " + m.value, code: "ENOENT" });
  if (m.op === "echo") setTimeout(() => parentPort.postMessage({ ok: true, value: { value: m.value, thread: threadId } }), m.ms ?? 0);
});
`;
const WORKER = new URL(`data:text/javascript,${encodeURIComponent(SCRIPT)}`);

type In = { op: string; value?: number; ms?: number };
type Out = { value: number; thread: number };

let pools: WorkerPool<In, Out>[] = [];
afterEach(async () => {
  for (const p of pools) await p.close();
  pools = [];
});

function pool(size: number): WorkerPool<In, Out> {
  const p = new WorkerPool<In, Out>(WORKER, size);
  pools.push(p);
  return p;
}

describe("WorkerPool", () => {
  it("refuses a size that is not a positive integer", () => {
    expect(() => new WorkerPool(WORKER, 0)).toThrow();
    expect(() => new WorkerPool(WORKER, 1.5)).toThrow();
  });

  it("never runs more tasks than it has workers, and queues the rest in order", async () => {
    const p = pool(2);
    const finished: number[] = [];
    const tasks = Array.from({ length: 8 }, (_, i) =>
      p.run({ op: "echo", value: i, ms: 30 }).then((r) => {
        finished.push(r.value);
        return r;
      }),
    );
    expect(p.busy).toBe(2);
    expect(p.queued).toBe(6);
    let maxBusy = 0;
    const sampler = setInterval(() => (maxBusy = Math.max(maxBusy, p.busy)), 2);
    const results = await Promise.all(tasks);
    clearInterval(sampler);
    expect(results.map((r) => r.value)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(results.map((r) => r.thread)).size).toBe(2);
    expect(maxBusy).toBeLessThanOrEqual(2);
    expect(p.busy).toBe(0);
    expect(p.queued).toBe(0);
  });

  it("with one worker, tasks finish in the order they were queued", async () => {
    const p = pool(1);
    const finished: number[] = [];
    await Promise.all(
      [5, 1, 4, 2, 3].map((v) => p.run({ op: "echo", value: v, ms: v * 3 }).then((r) => finished.push(r.value))),
    );
    expect(finished).toEqual([5, 1, 4, 2, 3]);
  });

  it("an error answer rejects only that task, with its code", async () => {
    const p = pool(1);
    const bad = p.run({ op: "fail", value: 7 });
    const good = p.run({ op: "echo", value: 8 });
    await expect(bad).rejects.toMatchObject({ message: "refused 7", code: "ENOENT" });
    expect((await good).value).toBe(8);
  });

  it("a worker that exits or throws fails only its task and is replaced; queued tasks still run", async () => {
    const p = pool(1);
    const first = await p.run({ op: "echo", value: 1 });
    const dies = p.run({ op: "exit" });
    const after = [p.run({ op: "echo", value: 2 }), p.run({ op: "echo", value: 3 })];
    await expect(dies).rejects.toThrow(/exited with code 3/);
    const rest = await Promise.all(after);
    expect(rest.map((r) => r.value)).toEqual([2, 3]);
    expect(rest[0]!.thread).not.toBe(first.thread);
    const throws = p.run({ op: "throw" });
    const next = p.run({ op: "echo", value: 4 });
    await expect(throws).rejects.toThrow(/boom/);
    expect((await next).value).toBe(4);
  });

  it("close() rejects queued tasks and refuses new ones", async () => {
    const p = new WorkerPool<In, Out>(WORKER, 1);
    const running = p.run({ op: "echo", value: 1, ms: 200 });
    const waiting = p.run({ op: "echo", value: 2 });
    const runningOutcome = running.then(
      () => "done",
      () => "rejected",
    );
    const waitingRefused = expect(waiting).rejects.toThrow(/closed/);
    await p.close();
    await waitingRefused;
    // The task that was running settles either way; it never hangs.
    expect(["done", "rejected"]).toContain(await runningOutcome);
    await expect(p.run({ op: "echo", value: 3 })).rejects.toThrow(/closed/);
  });

  it("takes the tasks of different keys in turn, each key's in order", async () => {
    const p = pool(1);
    const finished: string[] = [];
    const run = (key: string, value: number) =>
      p.run({ op: "echo", value, ms: 20 }, undefined, key).then(() => void finished.push(`${key}${value}`));
    // alice queues four before bob's one: bob's comes after one more of hers, not after all of them.
    const all = [run("alice", 0), run("alice", 1), run("alice", 2), run("alice", 3), run("bob", 0), run("carol", 0)];
    expect(p.busy).toBe(1);
    expect(p.queued).toBe(5);
    await Promise.all(all);
    expect(finished).toEqual(["alice0", "alice1", "bob0", "carol0", "alice2", "alice3"]);
    expect(p.queued).toBe(0);
  });

  it("a keyed task withdrawn while it waits gives its turn up, and the others run in turn", async () => {
    const p = pool(1);
    const finished: string[] = [];
    const run = (key: string, value: number, signal?: AbortSignal) =>
      p.run({ op: "echo", value, ms: 20 }, signal, key).then(() => void finished.push(`${key}${value}`));
    const gone = new AbortController();
    const first = run("alice", 0);
    const withdrawn = run("bob", 0, gone.signal);
    const carol = run("carol", 0);
    // bob's only task leaves, and with it his turn (ahead of carol's): his next task queues behind hers.
    gone.abort();
    await expect(withdrawn).rejects.toMatchObject({ code: "ECANCELED" });
    const rest = [carol, run("bob", 1)];
    expect(p.queued).toBe(2);
    await Promise.all([first, ...rest]);
    expect(finished).toEqual(["alice0", "carol0", "bob1"]);
    // close() rejects keyed tasks still queued.
    const blocker = run("alice", 1);
    const queued = [run("bob", 2), run("carol", 1)];
    const closing = p.close();
    for (const q of queued) await expect(q).rejects.toThrow(/closed/);
    await closing;
    await blocker.catch(() => undefined);
  });
});
