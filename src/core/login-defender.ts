// Login defender: failed logins are scored per client address and per user name. Each failure is answered after
// a delay that grows with the score; an address whose score passes the threshold is banned for a while. A
// successful login is never delayed, and takes back the address's failures for that user name (typos before the
// right password), not those for other names. Scores fade: a failure counts for one ban period, so an occasional
// typo never adds up to a ban.

export interface DefenderOptions {
  /** Failures from one address before it is banned. */
  maxFailures: number;
  banMs: number;
  /** Delay after the first failure; doubles with each further one, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

interface Score {
  failures: number;
  /** When the score resets if no further failure comes. */
  expiresAt: number;
  /** An address's failures per user name (at most maxFailures names: the address is banned then). */
  perUser?: Map<string, number>;
}

export type DefenderEvent =
  | { event: "login-failed"; address: string; user: string; failures: number; delayMs: number }
  | { event: "address-banned"; address: string; untilMs: number };

/**
 * Entries each table (address scores, user-name scores, bans) keeps at most: past it the expired ones go, then the
 * ones least recently failed, down to nine tenths. Peers with many addresses trying many names cannot grow them
 * without bound; what they can do is make old scores be forgotten early.
 */
export const MAX_DEFENDER_ENTRIES = 100_000;
/** A user name is scored by its first this many characters: no account has a longer name (at most 64). */
const NAME_KEY_CHARS = 128;

export class LoginDefender {
  private readonly byAddress = new Map<string, Score>();
  private readonly byUser = new Map<string, Score>();
  private readonly bans = new Map<string, number>();

  constructor(
    private readonly opts: DefenderOptions,
    private readonly onEvent: (e: DefenderEvent) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds left on the address's ban, 0 when not banned. */
  bannedFor(address: string): number {
    const until = this.bans.get(address);
    if (until === undefined) return 0;
    const left = until - this.now();
    if (left <= 0) {
      this.bans.delete(address);
      return 0;
    }
    return left;
  }

  /** How many entries each table holds now. */
  get sizes(): { addresses: number; users: number; bans: number } {
    return { addresses: this.byAddress.size, users: this.byUser.size, bans: this.bans.size };
  }

  private bump(map: Map<string, Score>, key: string): Score {
    const t = this.now();
    let s = map.get(key);
    if (!s || s.expiresAt <= t) s = { failures: 0, expiresAt: 0 };
    s.failures++;
    s.expiresAt = t + this.opts.banMs;
    map.set(key, s);
    if (map.size > MAX_DEFENDER_ENTRIES) trim(map, t, (v) => v.expiresAt);
    return s;
  }

  /** Records a failure; returns how long to wait before answering it. */
  failure(address: string, userName: string): number {
    const user = userName.slice(0, NAME_KEY_CHARS);
    const score = this.bump(this.byAddress, address);
    score.perUser ??= new Map();
    score.perUser.set(user, (score.perUser.get(user) ?? 0) + 1);
    const a = score.failures;
    const u = this.bump(this.byUser, user).failures;
    const worst = Math.max(a, u);
    const delayMs = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (worst - 1));
    this.onEvent({ event: "login-failed", address, user: userName, failures: a, delayMs });
    if (a >= this.opts.maxFailures) {
      const untilMs = this.now() + this.opts.banMs;
      this.bans.set(address, untilMs);
      // Expired bans are otherwise dropped only when their address comes back.
      if (this.bans.size > MAX_DEFENDER_ENTRIES) trim(this.bans, this.now(), (until) => until);
      this.byAddress.delete(address);
      this.onEvent({ event: "address-banned", address, untilMs });
    }
    return delayMs;
  }

  /**
   * A successful login as `user` takes back the address's failures for that name; those for other names stay (the
   * user name's own score fades on its own).
   */
  success(address: string, userName: string): void {
    const user = userName.slice(0, NAME_KEY_CHARS);
    const s = this.byAddress.get(address);
    if (!s) return;
    s.failures -= s.perUser?.get(user) ?? 0;
    s.perUser?.delete(user);
    if (s.failures <= 0) this.byAddress.delete(address);
  }
}

/**
 * Drops a table's expired entries, then, while it holds more than nine tenths of MAX_DEFENDER_ENTRIES, the ones that
 * expire first (the least recently failed or banned). Runs only once the table is full, so at most once per tenth of
 * MAX_DEFENDER_ENTRIES new entries.
 */
function trim<V>(map: Map<string, V>, t: number, expiresAt: (v: V) => number): void {
  for (const [k, v] of map) if (expiresAt(v) <= t) map.delete(k);
  const keep = Math.floor(MAX_DEFENDER_ENTRIES * 0.9);
  if (map.size <= keep) return;
  const times = Float64Array.from(map.values(), expiresAt).sort();
  // The latest expiry among those to drop; entries at it that are not needed to get down to `keep` stay.
  const cut = times[map.size - keep - 1]!;
  for (const [k, v] of map) {
    if (map.size <= keep) break;
    if (expiresAt(v) <= cut) map.delete(k);
  }
}
