// Session admission: at most maxActive sessions run; further arrivals wait in a bounded FIFO queue for a slot.
// A waiter is granted its slot the moment one frees, in arrival order; a waiter that times out or leaves is
// removed. Knows nothing of sockets or FTP.

export interface AdmissionOptions {
  maxActive: number;
  maxQueue: number;
  queueTimeoutMs: number;
}

export interface Waiter {
  /** Removes the waiter from the queue (it left before its turn). Does nothing once granted. */
  cancel(): void;
}

export type AdmitResult = { kind: "granted" } | { kind: "queued"; waiter: Waiter; position: number } | { kind: "full" };

interface Entry {
  granted: () => void;
  timedOut: () => void;
  timer: NodeJS.Timeout | null;
  done: boolean;
}

export class Admission {
  private active = 0;
  private readonly queue: Entry[] = [];
  private head = 0;
  private waitingCount = 0;

  constructor(private readonly opts: AdmissionOptions) {}

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waitingCount;
  }

  /**
   * Asks for a slot. "granted": the caller holds a slot now and must call release() once. "queued": granted() is
   * called later (the caller then holds a slot), or timedOut() when the wait passes its limit. "full": no room.
   */
  admit(granted: () => void, timedOut: () => void): AdmitResult {
    if (this.active < this.opts.maxActive && this.waiting === 0) {
      this.active++;
      return { kind: "granted" };
    }
    if (this.waiting >= this.opts.maxQueue) return { kind: "full" };
    const entry: Entry = { granted, timedOut, timer: null, done: false };
    entry.timer = setTimeout(() => {
      if (entry.done) return;
      entry.done = true;
      this.waitingCount--;
      this.compact();
      timedOut();
    }, this.opts.queueTimeoutMs);
    entry.timer.unref();
    this.queue.push(entry);
    this.waitingCount++;
    const position = this.waiting;
    return {
      kind: "queued",
      position,
      waiter: {
        cancel: () => {
          if (entry.done) return;
          entry.done = true;
          this.waitingCount--;
          if (entry.timer) clearTimeout(entry.timer);
          this.compact();
        },
      },
    };
  }

  /** Frees a slot and hands it to the longest waiter still waiting. */
  release(): void {
    this.active = Math.max(0, this.active - 1);
    this.grantWaiting();
  }

  private grantWaiting(): void {
    while (this.active < this.opts.maxActive && this.head < this.queue.length) {
      const entry = this.queue[this.head++]!;
      if (entry.done) continue;
      entry.done = true;
      this.waitingCount--;
      if (entry.timer) clearTimeout(entry.timer);
      this.active++;
      entry.granted();
    }
    this.compact();
  }

  /** Drops finished entries from the front so the array does not grow without bound. */
  private compact(): void {
    while (this.head < this.queue.length && this.queue[this.head]!.done) this.head++;
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
