// The login defender (issue 4): failures scored per address and per user name, each failure answered later than
// the one before, a ban past the threshold refused at connect with 421, ban expiry, successes never slowed, and
// every step logged as an event. Timings are asserted only as orderings and lower bounds that the design
// guarantees (a delay can come late, never early).

import { afterEach, describe, expect, it } from "vitest";
import { LoginDefender } from "../../src/core/login-defender.js";
import { holdUserLookups, startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { captureLog } from "./log-capture.js";

const USERS = [
  { name: "alice", password: "secret" },
  { name: "bob", password: "hunter2" },
];

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function server(opts: Parameters<typeof startServer>[1]) {
  const log = captureLog("info");
  const s = await startServer(USERS, { logger: log.logger, ...opts });
  servers.push(s);
  return { s, log };
}

/** USER then PASS; returns the PASS reply and how long it took. */
async function attempt(c: RawFtp, user: string, password: string) {
  const u = await c.cmd(`USER ${user}`);
  if (u.code !== 331) return { code: u.code, ms: 0, text: u.text };
  const t0 = performance.now();
  const r = await c.cmd(`PASS ${password}`, 20_000);
  return { code: r.code, ms: performance.now() - t0, text: r.text };
}

describe("login defender", () => {
  it("answers each failure later than the one before, and a success at once", async () => {
    const base = 200;
    const { s, log } = await server({ loginFailureDelayMs: base, maxLoginFailures: 10, banMs: 60_000 });
    const c = await RawFtp.connect(s.port);
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await attempt(c, "alice", `wrong-${i}`);
      expect(r.code).toBe(530);
      delays.push(r.ms);
    }
    // base, 2*base, 4*base: each at least its share, and strictly growing.
    delays.forEach((d, i) => expect(d).toBeGreaterThanOrEqual(base * 2 ** i - 5));
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThan(delays[i - 1]!);
    // A fourth failure would now wait 8*base; the right password is answered well before that.
    const ok = await attempt(c, "alice", "secret");
    expect(ok.code).toBe(230);
    expect(ok.ms).toBeLessThan(base * 8);
    const failed = log.events("login-failed").filter((e) => "delayMs" in e);
    expect(failed.map((e) => e.delayMs)).toEqual([base, base * 2, base * 4]);
    expect(failed.every((e) => e.address === "127.0.0.1" && e.user === "alice")).toBe(true);
    await c.close();
  });

  it("scores the user name across addresses: a fresh address guessing a hammered name is slowed too", async () => {
    const base = 100;
    const { s } = await server({ loginFailureDelayMs: base, maxLoginFailures: 10, banMs: 60_000 });
    const a = await RawFtp.connect(s.port);
    for (let i = 0; i < 3; i++) expect((await attempt(a, "bob", `x${i}`)).code).toBe(530);
    await a.close();
    // 127.0.0.2 has no failures of its own, but "bob" has three: this failure counts as his fourth.
    const b = await RawFtp.connect(s.port, { localAddress: "127.0.0.2" });
    const r = await attempt(b, "bob", "nope");
    expect(r.code).toBe(530);
    expect(r.ms).toBeGreaterThanOrEqual(base * 8 - 5);
    // While another user from that address is answered with the base delay only.
    const other = await attempt(b, "alice", "nope");
    expect(other.ms).toBeLessThan(r.ms);
    await b.close();
  });

  it("bans the address past the threshold: 421 at connect, other addresses unaffected, and the ban expires", async () => {
    const banMs = 2500;
    const { s, log } = await server({ loginFailureDelayMs: 20, maxLoginFailures: 3, banMs });
    const c = await RawFtp.connect(s.port);
    expect((await attempt(c, "alice", "a")).code).toBe(530);
    expect((await attempt(c, "alice", "b")).code).toBe(530);
    const third = await attempt(c, "nobody", "c");
    // The failure that crosses the threshold ends the session.
    expect(third.code).toBe(421);
    await c.closed;
    const bannedAt = Date.now();

    const refused = await RawFtp.open(s.port);
    const greeting = await refused.read();
    expect(greeting.code).toBe(421);
    expect(greeting.text).toMatch(/try again in \d+ seconds/);
    await refused.closed;

    // Another address is served normally, with the right password.
    const other = await RawFtp.connect(s.port, { localAddress: "127.0.0.2" });
    expect((await attempt(other, "alice", "secret")).code).toBe(230);
    await other.close();

    expect(log.events("address-banned")).toHaveLength(1);
    expect(log.events("address-banned")[0]!.address).toBe("127.0.0.1");
    expect(log.events("refused-banned").length).toBeGreaterThanOrEqual(1);

    await new Promise((r) => setTimeout(r, Math.max(0, bannedAt + banMs + 200 - Date.now())));
    const back = await RawFtp.connect(s.port);
    expect((await attempt(back, "alice", "secret")).code).toBe(230);
    await back.close();
  });

  it("gives connections already open from a banned address no further guesses, right or wrong", async () => {
    const { s } = await server({ loginFailureDelayMs: 20, maxLoginFailures: 2, banMs: 60_000 });
    const spare = await RawFtp.connect(s.port);
    const c = await RawFtp.connect(s.port);
    expect((await attempt(c, "alice", "a")).code).toBe(530);
    expect((await attempt(c, "alice", "b")).code).toBe(421);
    // The spare connection was open before the ban; even the right password is refused now.
    const r = await attempt(spare, "alice", "secret");
    expect(r.code).toBe(421);
    await spare.closed;
  });

  it("refuses a right password whose check was under way when guesses on other connections banned the address", async () => {
    const { s, log } = await server({ loginFailureDelayMs: 20, maxLoginFailures: 2, banMs: 60_000 });
    // The right password's check is held at the user store until the other connections' guesses have banned the
    // address: what a burst of guesses on many connections at once does.
    const lookups = holdUserLookups(s, true);
    const right = await RawFtp.connect(s.port);
    const guessers = [await RawFtp.connect(s.port), await RawFtp.connect(s.port)];
    expect((await right.cmd("USER alice")).code).toBe(331);
    const answer = right.cmd("PASS secret", 20_000);
    for (let i = 0; i < 50 && !lookups.held(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(lookups.held()).toBe(true);
    const guesses = await Promise.all(guessers.map((g, i) => attempt(g, "alice", `wrong-${i}`)));
    expect(guesses.map((g) => g.code)).toContain(421);
    expect(log.events("address-banned")).toHaveLength(1);
    lookups.release();
    const r = await answer;
    expect(r.code).toBe(421);
    await right.closed;
    expect(log.events("login").filter((e) => e.user === "alice")).toHaveLength(0);
  });

  it("a failed login held back longer than the idle timeout still gets its 530, and the session goes on", async () => {
    // Delays of 600 then 1200 ms against an idle timeout of 900 ms: the second is answered, not cut as idle.
    const { s } = await server({ loginFailureDelayMs: 600, maxLoginFailures: 10, banMs: 60_000, idleTimeoutMs: 900 });
    const c = await RawFtp.connect(s.port);
    expect((await attempt(c, "bob", "x")).code).toBe(530);
    const second = await attempt(c, "bob", "y");
    expect(second.code).toBe(530);
    expect(second.ms).toBeGreaterThanOrEqual(1000);
    // The idle time counts from the reply: the session is still there right after it.
    expect((await c.cmd("NOOP")).code).toBe(200);
    await c.close();
  });

  it("a login to one's own account between guesses at another does not reset the address's count", async () => {
    // bob knows his own password and guesses alice's: two guesses, his own login, two guesses... With the third
    // failure the address is banned, whatever logins succeeded in between.
    const { s, log } = await server({ loginFailureDelayMs: 20, maxLoginFailures: 3, banMs: 60_000 });
    const codes: number[] = [];
    for (let round = 0; round < 3 && !codes.includes(421); round++) {
      const c = await RawFtp.connect(s.port);
      for (let i = 0; i < 2 && !codes.includes(421); i++) codes.push((await attempt(c, "alice", `guess-${round}-${i}`)).code);
      if (!codes.includes(421)) expect((await attempt(c, "bob", "hunter2")).code).toBe(230);
      await c.close();
    }
    expect(codes).toEqual([530, 530, 421]);
    expect(log.events("address-banned")).toHaveLength(1);
    const refused = await RawFtp.open(s.port);
    expect((await refused.read()).code).toBe(421);
    await refused.closed;
  });

  it("a right password takes back the address's typos for that name only", async () => {
    const { s, log } = await server({ loginFailureDelayMs: 20, maxLoginFailures: 3, banMs: 60_000 });
    const c = await RawFtp.connect(s.port);
    // Two typos for alice, then her password: those two no longer count against the address...
    expect((await attempt(c, "alice", "typo-1")).code).toBe(530);
    expect((await attempt(c, "alice", "typo-2")).code).toBe(530);
    expect((await attempt(c, "alice", "secret")).code).toBe(230);
    await c.close();
    const d = await RawFtp.connect(s.port);
    expect((await attempt(d, "alice", "typo-3")).code).toBe(530);
    expect((await attempt(d, "alice", "typo-4")).code).toBe(530);
    expect(log.events("address-banned")).toHaveLength(0);
    expect((await attempt(d, "alice", "secret")).code).toBe(230);
    await d.close();
  });

  it("never slows a successful login, even from an address with failures", async () => {
    const base = 400;
    const { s } = await server({ loginFailureDelayMs: base, maxLoginFailures: 10, banMs: 60_000 });
    const bad = await RawFtp.connect(s.port);
    expect((await attempt(bad, "bob", "x")).code).toBe(530);
    expect((await attempt(bad, "bob", "y")).code).toBe(530);
    await bad.close();
    const good = await RawFtp.connect(s.port);
    const r = await attempt(good, "bob", "hunter2");
    expect(r.code).toBe(230);
    // The next failure would be held back 4*base; a success has no such delay at all.
    expect(r.ms).toBeLessThan(base * 4);
    await good.close();
  });
});

describe("--ban-seconds 0", () => {
  it("bans nobody and lets each failure fade at once: every failure waits the first delay", () => {
    let t = 1_000_000;
    const d = new LoginDefender({ maxFailures: 3, banMs: 0, baseDelayMs: 1000, maxDelayMs: 8000 }, () => undefined, () => t);
    for (let i = 0; i < 10; i++) {
      expect(d.failure("10.0.0.1", "alice")).toBe(1000);
      expect(d.bannedFor("10.0.0.1")).toBe(0);
      t += i % 2; // failures in the same millisecond and in later ones alike
    }
  });
});
