// Login defender: failed logins are scored per client address and per user name. Each failure is answered after
// a delay that grows with the score; an address whose score passes the threshold is banned for a while. A
// successful login clears the address's score and is never delayed. Scores fade: a failure counts for one ban
// period, so an occasional typo never adds up to a ban.

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

  private bump(map: Map<string, Score>, key: string): Score {
    const t = this.now();
    let s = map.get(key);
    if (!s || s.expiresAt <= t) s = { failures: 0, expiresAt: 0 };
    s.failures++;
    s.expiresAt = t + this.opts.banMs;
    map.set(key, s);
    if (map.size > 100_000) this.sweep(map, t);
    return s;
  }

  private sweep(map: Map<string, Score>, t: number): void {
    for (const [k, s] of map) if (s.expiresAt <= t) map.delete(k);
  }

  /** Records a failure; returns how long to wait before answering it. */
  failure(address: string, user: string): number {
    const score = this.bump(this.byAddress, address);
    score.perUser ??= new Map();
    score.perUser.set(user, (score.perUser.get(user) ?? 0) + 1);
    const a = score.failures;
    const u = this.bump(this.byUser, user).failures;
    const worst = Math.max(a, u);
    const delayMs = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** (worst - 1));
    this.onEvent({ event: "login-failed", address, user, failures: a, delayMs });
    if (a >= this.opts.maxFailures) {
      const untilMs = this.now() + this.opts.banMs;
      // Expired bans are only dropped when their address comes back; sweep them before the map grows without bound.
      if (this.bans.size > 100_000) for (const [k, until] of this.bans) if (until <= this.now()) this.bans.delete(k);
      this.bans.set(address, untilMs);
      this.byAddress.delete(address);
      this.onEvent({ event: "address-banned", address, untilMs });
    }
    return delayMs;
  }

  /**
   * A successful login as `user` takes back the address's failures for that name; those for other names stay (the
   * user name's own score fades on its own).
   */
  success(address: string, user: string): void {
    const s = this.byAddress.get(address);
    if (!s) return;
    s.failures -= s.perUser?.get(user) ?? 0;
    s.perUser?.delete(user);
    if (s.failures <= 0) this.byAddress.delete(address);
  }
}
