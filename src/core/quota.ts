// Per-user disk quota: one live usage counter per user, shared by every session of that user.
//
// Writers reserve bytes before they write them, so however many uploads run at once the counter never passes the
// limit. The counter is persisted in the user store; while any upload of the user runs it is marked dirty there, so
// a crash in the middle forces a rescan of the home on the next load instead of trusting a stale figure.
//
// Uploads racing near the limit: each upload of the user has a place in the order they started (an UploadTicket)
// and counts the bytes it holds reserved and not yet settled (kept by its end, or given back). When a reservation
// does not fit, the upload does not fail at once if a younger upload of the user (one that started after it) still
// holds reserved bytes that, given back, would make it fit: it waits (reading its data connection on, with
// backpressure) until the reservation fits, or until no younger upload holds such bytes any more, or for at most
// RESERVE_WAIT_MS, and fails only then. The youngest upload holding bytes never waits, so of two uploads with room for
// one, the younger fails at once and gives its bytes back, and the older takes them and goes on: exactly one
// succeeds, and no upload waits for one that waits for it. Waiting takes nothing from the quota, so usage never
// passes the limit, not even for a moment; a wait that is cancelled (ABOR, a broken connection, the end of the
// session or of the server) reserves nothing.

import { MyftpError } from "./errors.js";

export interface UsageStore {
  /** `wait: false`: fail at once where another process holds the store locked, rather than stall the server. */
  setUsage(name: string, usedBytes: number | null, dirty: boolean, opts?: { wait?: boolean }): Promise<void>;
  /** `home`: the user's home as written in the store, where the store keeps one. */
  get(name: string): Promise<{ usedBytes: number | null; usageDirty: boolean; home?: string } | undefined>;
}

export interface LedgerSource {
  name: string;
  /** The home whose bytes the figure counts, with its links resolved (one directory, one ledger). */
  home: string;
  /** The home as the store gave it for this login, before its links were resolved. */
  storedHome?: string;
  quotaBytes: number | null;
  usedBytes: number | null;
  usageDirty: boolean;
  /** Counts the bytes in the home (used when no trustworthy figure is stored). */
  scan: () => Promise<number>;
  /** Counts the bytes in the home while sessions may be working in it (see adoptOutsideChange). */
  recount?: () => Promise<number>;
}

/** Where a ledger reports that the usage could not be saved (a read-only store), and that it is saved again. */
export interface UsageLog {
  error(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
}

/** How soon a figure that could not be saved is tried again. */
export const STORE_RETRY_MS = 1000;
/** How long flushLocked waits for a store another process holds locked (as SQLite's busy timeout did), and how often it looks. */
export const LOCK_WAIT_MS = 5000;
const LOCK_POLL_MS = 25;

/** A write refused because another connection holds the store locked (SQLite's SQLITE_BUSY and its kinds). */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

/** Longest wait of an upload whose reservation did not fit while younger uploads of the user held bytes (see above). */
export const RESERVE_WAIT_MS = 5000;

/** One upload of the user, from its start to its end (see startUpload). */
export class UploadTicket {
  /** Bytes this upload reserved and has not yet kept (by its end) or given back. */
  held = 0;
  ended = false;
  constructor(
    /** Its place in the order the user's uploads started: a larger number started later. */
    readonly order: number,
  ) {}
}

/** An upload waiting for its reservation (see reserveFor). */
interface Waiter {
  ticket: UploadTicket;
  n: number;
  /** Called (synchronously) once the bytes are reserved, before the wait's promise resolves. */
  granted: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
  signal: AbortSignal;
  onAbort: () => void;
}

function quotaExceeded(): MyftpError {
  return new MyftpError("quota-exceeded", "Quota exceeded");
}

export class QuotaLedger {
  private writers = 0;
  /** The uploads running, in the order they started. */
  private readonly uploads = new Set<UploadTicket>();
  private nextOrder = 0;
  /** Uploads waiting for room, oldest first. */
  private readonly waiters: Waiter[] = [];
  private readonly writing = new Set<string>();
  private persisting: Promise<void> = Promise.resolve();

  /** What this ledger last wrote to (or read from) the store. */
  private lastStored: { used: number; dirty: boolean } | null = null;
  /** An outside figure arrived (see adoptOutsideChange): count the home once no upload is writing. */
  private recountPending = false;
  /** Moves of the counter (uploads begun, bytes reserved or given back): a count taken across one is not used. */
  private changes = 0;
  /**
   * The account this ledger counted for changed its home, or is gone: the figure stored under its name now belongs
   * to the new home (counted by a new ledger), so this one writes nothing more there.
   */
  private retired = false;

  constructor(
    readonly name: string,
    private usedBytes: number,
    public limit: number | null,
    private readonly store: UsageStore,
    stored?: { used: number; dirty: boolean },
    private readonly recount?: () => Promise<number>,
    private readonly log?: UsageLog,
  ) {
    this.lastStored = stored ?? null;
  }

  /** The usage could not be saved at the last attempt: logged once, when the streak of failures starts. */
  private storeFailing = false;
  /** The last attempt failed because another process held the store locked (one that ends soon, as a rule). */
  private storeBusy = false;
  /** The next attempt to save a figure that could not be saved (a locked or full store). */
  private retryTimer: NodeJS.Timeout | null = null;
  /** No more attempts (the server is shutting down). */
  private stopped = false;
  /**
   * Set while nothing holds this ledger and it is kept only to save its figure (see QuotaManager.release): `idle()`
   * tells whether nothing holds it still, `done()` lets it go.
   */
  private keeper: { idle(): boolean; done(): void } | null = null;

  /** The home as the store gave it at the latest login that holds or held this ledger (see adoptOutsideChange). */
  storedHome: string | undefined;

  /** Kept, with nothing holding it, only until its figure is saved (or is no longer the user's to save). */
  keepUntilSaved(keeper: { idle(): boolean; done(): void }): void {
    this.keeper = keeper;
    if (!this.storeFailing) this.letGo();
  }

  private letGo(): void {
    const k = this.keeper;
    this.keeper = null;
    k?.done();
  }

  /** Whether the figure in memory is not yet in the store (the last attempt to save it failed). */
  get unsaved(): boolean {
    return this.storeFailing;
  }

  /**
   * A figure that could not be saved must not stay unsaved until the user happens to write again: the store would
   * keep the old figure, marked clean, and the next start would trust it. Tried again until it is saved.
   */
  private scheduleRetry(): void {
    if (this.retryTimer || this.retired || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.retired && !this.stopped) void this.persist();
    }, STORE_RETRY_MS);
    this.retryTimer.unref();
  }

  private cancelRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /**
   * Saves the figure a last time if it is unsaved, then stops trying (for a shutdown, before the store closes); false
   * when it stays unsaved. `wait`: wait out another process's lock (as SQLite's busy timeout allows), which a shutdown
   * can afford: failing at once would leave the store's older figure, marked clean, for the next start to trust.
   */
  async stop(wait = true): Promise<boolean> {
    await this.flush();
    if (this.storeFailing && !this.retired) await this.persist(wait);
    this.stopped = true;
    this.cancelRetry();
    return !this.storeFailing || this.retired;
  }

  /**
   * Uploads go on when the usage cannot be saved (the counter in memory still enforces the quota), but the operator
   * must hear of it: a server restarted then would start from a stale figure. Once per streak, not per write.
   */
  private storeFailed(err: unknown): void {
    if (this.storeFailing) return;
    this.storeFailing = true;
    this.log?.error(
      { event: "usage-not-saved", user: this.name, reason: (err as Error)?.message ?? String(err), code: (err as { code?: unknown })?.code },
      "cannot save this user's usage in the user store; uploads go on, counted in memory only, until it can be written again",
    );
  }

  private storeWorked(): void {
    if (!this.storeFailing) return;
    this.storeFailing = false;
    this.log?.info({ event: "usage-saved-again", user: this.name }, "the user's usage is saved in the user store again");
  }

  get used(): number {
    return this.usedBytes;
  }

  /** Uploads waiting for room a younger upload of the user holds (see reserveFor). */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Bytes that may still be written; Infinity when unlimited. */
  get available(): number {
    return this.limit === null ? Infinity : Math.max(0, this.limit - this.usedBytes);
  }

  /** Takes n bytes from the quota, or returns false (taking nothing) when they do not fit. */
  tryReserve(n: number): boolean {
    if (n <= 0) return true;
    if (this.limit !== null && this.usedBytes + n > this.limit) return false;
    this.usedBytes += n;
    this.changes++;
    return true;
  }

  reserve(n: number): void {
    if (!this.tryReserve(n)) throw quotaExceeded();
  }

  /**
   * Gives n bytes back (a delete, a shrink, a refused upload); `ticket`: the upload whose reserved bytes they are (its
   * held bytes drop by as much). Uploads waiting for room try again at once.
   */
  release(n: number, ticket?: UploadTicket): void {
    if (n <= 0) return;
    if (ticket) ticket.held = Math.max(0, ticket.held - n);
    this.changes++;
    this.usedBytes = Math.max(0, this.usedBytes - n);
    this.persist();
    this.wakeWaiters();
  }

  /** Marks the start of an upload (see beginWrite) and gives it its place in the order of the user's uploads. */
  startUpload(): UploadTicket {
    const ticket = new UploadTicket(this.nextOrder++);
    this.uploads.add(ticket);
    this.beginWrite();
    return ticket;
  }

  /**
   * Marks the end of an upload, once its bytes are settled (kept or given back): it holds nothing more, and uploads
   * that waited for it try again.
   */
  endUpload(ticket: UploadTicket): void {
    if (ticket.ended) return;
    ticket.ended = true;
    ticket.held = 0;
    this.uploads.delete(ticket);
    for (const w of this.waiters.filter((w) => w.ticket === ticket)) this.settleWaiter(w, quotaExceeded());
    this.endWrite();
    this.wakeWaiters();
  }

  /**
   * Whether an upload refused `n` bytes may wait for them: uploads of the user that started after it hold reserved
   * bytes which, given back, would make room for them. The youngest upload holding bytes never may.
   */
  mayWait(ticket: UploadTicket, n: number): boolean {
    if (this.limit === null || ticket.ended) return false;
    let younger = 0;
    for (const u of this.uploads) if (u.order > ticket.order) younger += u.held;
    return younger > 0 && this.available + younger >= n;
  }

  /** Reserves n bytes for an upload if they fit now; false (taking nothing) when they do not. */
  tryReserveFor(ticket: UploadTicket, n: number): boolean {
    if (!this.tryReserve(n)) return false;
    if (n > 0) ticket.held += n;
    return true;
  }

  /**
   * Reserves n bytes for an upload and calls `granted` as it does. Returns nothing when they fit at once; throws
   * quota-exceeded when they do not and waiting is of no use (see mayWait); otherwise returns a promise that resolves
   * once they are reserved (`granted` called first), or rejects with quota-exceeded when they still do not fit after
   * the younger uploads gave back what they held, or after RESERVE_WAIT_MS. `signal` cancels the wait: nothing is
   * reserved then, and the promise rejects.
   */
  reserveFor(ticket: UploadTicket, n: number, granted: () => void, signal: AbortSignal): void | Promise<void> {
    if (this.tryReserveFor(ticket, n)) {
      granted();
      return;
    }
    if (signal.aborted || !this.mayWait(ticket, n)) throw quotaExceeded();
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        ticket,
        n,
        granted,
        resolve,
        reject,
        signal,
        onAbort: () => this.settleWaiter(w, new Error("the wait for quota was cancelled")),
        timer: setTimeout(() => {
          // One last try: a figure that moved without a release (an admin's rescan) may have made room.
          if (this.tryReserve(n)) this.grantWaiter(w);
          else this.settleWaiter(w, quotaExceeded());
        }, RESERVE_WAIT_MS),
      };
      w.timer.unref();
      signal.addEventListener("abort", w.onAbort, { once: true });
      // Oldest first: room given back goes to the upload that started first.
      const at = this.waiters.findIndex((o) => o.ticket.order > ticket.order);
      if (at < 0) this.waiters.push(w);
      else this.waiters.splice(at, 0, w);
    });
  }

  /** Takes a waiter out of the queue and rejects its wait (with nothing reserved). */
  private settleWaiter(w: Waiter, err: unknown): void {
    if (!this.dropWaiter(w)) return;
    w.reject(err);
  }

  /** The waiter's bytes are reserved already: it holds them, is told, and leaves the queue. */
  private grantWaiter(w: Waiter): void {
    if (!this.dropWaiter(w)) return;
    if (w.n > 0) w.ticket.held += w.n;
    w.granted();
    w.resolve();
  }

  private dropWaiter(w: Waiter): boolean {
    const i = this.waiters.indexOf(w);
    if (i < 0) return false;
    this.waiters.splice(i, 1);
    clearTimeout(w.timer);
    w.signal.removeEventListener("abort", w.onAbort);
    return true;
  }

  /** Room was given back, or an upload ended: each waiter, oldest first, takes its bytes if they fit, or gives up. */
  private wakeWaiters(): void {
    for (const w of [...this.waiters]) {
      if (!this.waiters.includes(w)) continue;
      if (this.tryReserve(w.n)) this.grantWaiter(w);
      else if (!this.mayWait(w.ticket, w.n)) this.settleWaiter(w, quotaExceeded());
    }
  }

  /**
   * Claims a path (the storage's claim key: the disk path with links resolved) for one upload. Two writers of one file
   * would each count bytes the other also counts (or gives back), so a second upload, delete or rename of a path being
   * written must wait.
   */
  claimPath(p: string): boolean {
    if (this.writing.has(p)) return false;
    this.writing.add(p);
    return true;
  }

  releasePath(p: string): void {
    this.writing.delete(p);
  }

  /** True while an upload writes this path, or anything below it when it is a directory; `except` is a claim not to count. */
  isWriting(p: string, except?: string): boolean {
    if (p !== except && this.writing.has(p)) return true;
    const below = p.endsWith("/") ? p : `${p}/`;
    for (const w of this.writing) if (w.startsWith(below)) return true;
    return false;
  }

  /**
   * A change to the tree that moves no bytes in or out of the home (a rename, a new or removed directory): a count of
   * the home taken across it may have seen a file twice or not at all, so it is not used.
   */
  noteChange(): void {
    this.changes++;
  }

  /** Marks the start of an upload: the stored figure is flagged dirty until every upload has ended. */
  beginWrite(): void {
    this.writers++;
    this.changes++;
    if (this.writers === 1) this.persist();
  }

  endWrite(): void {
    this.writers = Math.max(0, this.writers - 1);
    this.persist();
  }

  /** Replaces the counter with a fresh count of the home (admin rescan). */
  reset(used: number): void {
    this.changes++;
    this.usedBytes = used;
    this.persist();
  }

  /**
   * An admin rescan (`myftpd user rescan`, another process) stores a fresh figure while this ledger is live. The
   * difference between that figure and the one this ledger last wrote is the drift it found: apply it, instead of
   * overwriting the fix with the stale count at the next write. If an upload wrote meanwhile, that figure may hold some
   * of its bytes, which this ledger counts already; so where it can, the ledger counts the home itself instead, once
   * no upload is writing.
   */
  private async adoptOutsideChange(): Promise<void> {
    const last = this.lastStored;
    if (this.retired || (!last && !this.keeper)) return;
    const row = await this.store.get(this.name);
    const moved = row?.home !== undefined && this.storedHome !== undefined && row.home !== this.storedHome;
    if ((!row || row.usedBytes === null || moved) && this.keeper?.idle()) {
      // Kept only to save its figure, and meanwhile the user is gone, or an admin gave the user another home (which
      // clears the figure; a rescan may since have counted the new one): the figure in memory counts a home that may
      // no longer be the user's. Nothing is written; the next login counts the user's home, or trusts that rescan.
      this.retire();
      this.letGo();
      return;
    }
    if (!row || row.usedBytes === null) return;
    if (!last || (row.usedBytes === last.used && row.usageDirty === last.dirty)) return;
    if (this.recount) this.recountPending = true;
    else this.usedBytes = Math.max(0, this.usedBytes + row.usedBytes - last.used);
    this.lastStored = { used: row.usedBytes, dirty: row.usageDirty };
  }

  /** Counts the home when an outside figure asked for it and no upload is writing; true when it did. */
  private async recountIfPending(): Promise<boolean> {
    if (!this.recountPending || this.writers > 0 || !this.recount) return false;
    const before = this.changes;
    const counted = await this.recount();
    // Anything that moved the counter meanwhile (an upload, even one that began and ended during the count, a delete)
    // may or may not be in the count: drop it and count again when things are still.
    if (this.writers > 0 || this.changes !== before) return false;
    this.usedBytes = counted;
    this.recountPending = false;
    return true;
  }

  /** Stops writing to the store for good (see `retired`). Uploads still running go on counting in memory. */
  retire(): void {
    this.retired = true;
    this.cancelRetry();
  }

  private async writeStore(wait = false): Promise<void> {
    if (this.retired) return;
    const used = this.usedBytes;
    // While a recount is due, the figure written is the old one, not yet corrected: marked dirty, so that a crash
    // before the count lands makes the next start count the home instead of trusting it.
    const dirty = this.writers > 0 || this.recountPending;
    try {
      await this.store.setUsage(this.name, used, dirty, { wait });
    } catch (err) {
      this.storeBusy = isBusy(err);
      this.storeFailed(err);
      this.scheduleRetry();
      throw err;
    }
    this.storeBusy = false;
    this.storeWorked();
    this.lastStored = { used, dirty };
    if (this.keeper?.idle()) this.letGo();
  }

  /** Picks up a figure stored by someone else since this ledger last wrote (see adoptOutsideChange). */
  refresh(): Promise<void> {
    this.persisting = this.persisting
      .then(async () => {
        await this.adoptOutsideChange();
        if (await this.recountIfPending()) await this.writeStore();
      })
      .catch(() => undefined);
    return this.persisting;
  }

  /**
   * Writes the counter to the store; writes are chained so the last one wins. `wait`: wait for a store another process
   * holds locked (see UsageStore.setUsage), for a last save at shutdown only.
   */
  persist(wait = false): Promise<void> {
    this.persisting = this.persisting
      .then(async () => {
        await this.adoptOutsideChange();
        await this.recountIfPending();
        await this.writeStore(wait);
      })
      .catch(() => undefined);
    return this.persisting;
  }

  flush(): Promise<void> {
    return this.persisting;
  }

  /**
   * flush(), and where the store was locked by another process, the figure saved again until it is, for up to
   * LOCK_WAIT_MS, without holding the server's thread: for a figure that must be in the store before the files change
   * (an upload or a delete marks it dirty first, so that a crash in between makes the next start count the home rather
   * than trust a figure the files no longer match). A store that cannot be written for another reason is not waited for.
   */
  async flushLocked(): Promise<void> {
    await this.flush();
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let i = 0; this.storeFailing && this.storeBusy && !this.retired && !this.stopped && i < LOCK_WAIT_MS / LOCK_POLL_MS; i++) {
      if (Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
      await this.persist();
    }
  }
}

/** A loaded (or loading) ledger and who holds it. */
interface Entry {
  ledger: Promise<QuotaLedger>;
  /** The home it counts, links resolved. */
  home: string;
  /** Sessions and uploads holding the ledger, counted from the moment they ask for it. */
  holders: number;
}

/**
 * Hands out one ledger per user name and home, and drops it when nothing holds it. A login that finds the live
 * ledger counting another home (the user was given another home, or deleted and added again with another one) retires
 * it and gets a new one for its own home.
 */
export class QuotaManager {
  private readonly ledgers = new Map<string, Entry>();
  /** Each loaded ledger's entry, also after a newer entry took its name. */
  private readonly entries = new WeakMap<QuotaLedger, Entry>();

  constructor(
    private readonly store: UsageStore,
    private readonly log?: UsageLog,
  ) {}

  /** The user's ledger, loaded (and counted if needed) on first use. Call release() when the session ends. */
  async acquire(src: LedgerSource): Promise<QuotaLedger> {
    let entry = this.ledgers.get(src.name);
    if (entry && entry.home !== src.home) {
      // The live ledger counts another home: it writes no more, and this login gets one of its own home.
      void entry.ledger.then((l) => l.retire(), () => undefined);
      entry = undefined;
    }
    if (!entry) {
      const e: Entry = { ledger: this.load(src), home: src.home, holders: 0 };
      // Registered before any caller awaits the ledger, so it is known by its entry when they get it.
      e.ledger.then(
        (l) => this.entries.set(l, e),
        () => {
          if (this.ledgers.get(src.name) === e) this.ledgers.delete(src.name);
        },
      );
      this.ledgers.set(src.name, e);
      entry = e;
    }
    // Counted before the first await, so a release meanwhile cannot drop the entry under this caller.
    entry.holders++;
    try {
      const ledger = await entry.ledger;
      ledger.limit = src.quotaBytes;
      if (src.storedHome !== undefined) ledger.storedHome = src.storedHome;
      await ledger.refresh();
      return ledger;
    } catch (err) {
      entry.holders--;
      throw err;
    }
  }

  private async load(src: LedgerSource): Promise<QuotaLedger> {
    let used = src.usedBytes;
    const trusted = used !== null && !src.usageDirty;
    if (!trusted) used = await src.scan();
    const stored = trusted ? { used: used!, dirty: false } : undefined;
    const ledger = new QuotaLedger(src.name, used!, src.quotaBytes, this.store, stored, src.recount, this.log);
    if (!trusted) await ledger.persist();
    return ledger;
  }

  /**
   * Takes a ledger out of service: it writes no more figures to the store, and if it is still the user's live one,
   * the next login loads a new one. For the ledger of a home that is no longer the user's, or of a user that is
   * gone; a ledger a login already made for the new home is another one, and stays.
   */
  retire(ledger: QuotaLedger): void {
    ledger.retire();
    const entry = this.entries.get(ledger);
    if (entry && this.ledgers.get(ledger.name) === entry) this.ledgers.delete(ledger.name);
  }

  /** One more holder of a ledger already acquired (an upload that may outlive its session). */
  retain(ledger: QuotaLedger): void {
    const entry = this.entries.get(ledger);
    if (entry) entry.holders++;
  }

  release(ledger: QuotaLedger): void {
    const entry = this.entries.get(ledger);
    if (!entry) return;
    entry.holders--;
    if (entry.holders > 0) return;
    void ledger.flush().then(() => {
      // Only forget it if nobody asked for it again meanwhile, and not while its figure is unsaved: it keeps trying to
      // save it, and a login meanwhile must go on from it, not from the older figure in the store. Once saved (or no
      // longer the user's to save), it is forgotten then.
      if (entry.holders > 0 || this.ledgers.get(ledger.name) !== entry) return;
      ledger.keepUntilSaved({
        idle: () => entry.holders <= 0,
        done: () => {
          if (entry.holders <= 0 && this.ledgers.get(ledger.name) === entry) this.ledgers.delete(ledger.name);
        },
      });
    });
  }

  /** The live ledger of a user when one is loaded. */
  async peek(name: string): Promise<QuotaLedger | undefined> {
    return this.ledgers.get(name)?.ledger;
  }

  async flushAll(): Promise<void> {
    await Promise.all([...this.ledgers.values()].map(async (e) => (await e.ledger.catch(() => null))?.flush()));
  }

  /** Saves what is unsaved a last time and stops every ledger's retries (the server is shutting down). */
  async stopAll(): Promise<void> {
    // One after the other: a wait for the store's lock blocks the thread. Once one has waited in vain, the rest do not
    // wait each in turn (a store locked for good would hold the shutdown for the busy timeout once per user).
    let wait = true;
    for (const e of [...this.ledgers.values()]) {
      const ledger = await e.ledger.catch(() => null);
      if (ledger && !(await ledger.stop(wait))) wait = false;
    }
  }
}
