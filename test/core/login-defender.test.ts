// The login defender's tables stay bounded whatever the peers send: many addresses, many names, long names.

import { describe, expect, it } from "vitest";
import { LoginDefender, MAX_DEFENDER_ENTRIES } from "../../src/core/login-defender.js";

const OPTS = { maxFailures: 5, banMs: 900_000, baseDelayMs: 1000, maxDelayMs: 8000 };

describe("the login defender's tables", () => {
  it("hold at most MAX_DEFENDER_ENTRIES scores and bans, however many addresses and names fail", () => {
    let now = 1_000_000;
    const d = new LoginDefender(OPTS, () => undefined, () => now);
    // 2.5 times the bound: every address and every name new, none expired (all within one ban period).
    const n = Math.floor(MAX_DEFENDER_ENTRIES * 2.5);
    for (let i = 0; i < n; i++) {
      d.failure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `user-${i}`);
      now += 1;
    }
    const sizes = d.sizes;
    expect(sizes.addresses).toBeLessThanOrEqual(MAX_DEFENDER_ENTRIES);
    expect(sizes.users).toBeLessThanOrEqual(MAX_DEFENDER_ENTRIES);
    expect(sizes.addresses).toBeGreaterThan(MAX_DEFENDER_ENTRIES * 0.8);
    // Bans too: as many addresses again, each failing until banned.
    for (let i = 0; i < n; i++) {
      const address = `fd00::${i.toString(16)}`;
      for (let f = 0; f < OPTS.maxFailures; f++) d.failure(address, "root");
      now += 1;
    }
    expect(d.sizes.bans).toBeLessThanOrEqual(MAX_DEFENDER_ENTRIES);
    expect(d.sizes.bans).toBeGreaterThan(MAX_DEFENDER_ENTRIES * 0.8);
    // The latest ones are the ones kept.
    expect(d.bannedFor(`fd00::${(n - 1).toString(16)}`)).toBeGreaterThan(0);
    expect(d.bannedFor("fd00::0")).toBe(0);
  });

  it("keeps scoring an address that goes on failing while others fill the table", () => {
    let now = 1_000_000;
    const d = new LoginDefender(OPTS, () => undefined, () => now);
    let banned = false;
    // One address fails now and then among a flood of others: its score is the most recently set, so it stays.
    for (let i = 0; i < MAX_DEFENDER_ENTRIES * 2 && !banned; i++) {
      if (i % (MAX_DEFENDER_ENTRIES / 4) === 0) {
        d.failure("192.0.2.7", "alice");
        banned = d.bannedFor("192.0.2.7") > 0;
      }
      d.failure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, "x");
      now += 1;
    }
    // Five failures, spread over more than the table holds, still ban it.
    expect(banned).toBe(true);
  });

  it("scores a user name by its first 128 characters, so long names cannot make entries of any size", () => {
    const now = 1_000_000;
    const d = new LoginDefender(OPTS, () => undefined, () => now);
    const long = "a".repeat(4000);
    // Different addresses, so only the name's score can make the second failure wait longer.
    expect(d.failure("192.0.2.1", `${long}1`)).toBe(1000);
    expect(d.failure("192.0.2.2", `${long}2`)).toBe(2000);
    expect(d.sizes.users).toBe(1);
    // Names that differ within their first 128 characters are scored apart.
    expect(d.failure("192.0.2.3", `b${long}`)).toBe(1000);
    expect(d.sizes.users).toBe(2);
  });
});
