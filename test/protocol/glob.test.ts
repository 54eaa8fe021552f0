// Name patterns for LIST and NLST: "*", "?", "[...]" and backslash escapes, matched against one name.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileNamePattern } from "../../src/protocol/glob.js";

const m = (pattern: string, name: string) => compileNamePattern(pattern).matches(name);

describe("compileNamePattern", () => {
  it("* matches any run, including none", () => {
    expect(m("*.txt", "a.txt")).toBe(true);
    expect(m("*.txt", ".txt")).toBe(true);
    expect(m("*.txt", "a.txt.gz")).toBe(false);
    expect(m("a*b*c", "aXXbYYc")).toBe(true);
    expect(m("a*b*c", "aXXbYY")).toBe(false);
    expect(m("**", "")).toBe(true);
    expect(m("*a*a*a*", "aaa")).toBe(true);
    expect(m("*a*a*a*", "aa")).toBe(false);
  });

  it("? matches exactly one character, a UTF-8 one too", () => {
    expect(m("a?c", "abc")).toBe(true);
    expect(m("a?c", "ac")).toBe(false);
    expect(m("a?c", "a测c")).toBe(true);
    expect(m("a?c", "a\u{1F600}c")).toBe(true);
  });

  it("[...] matches one character of a set, a range, or not of it", () => {
    expect(m("f[0-9].txt", "f7.txt")).toBe(true);
    expect(m("f[0-9].txt", "fx.txt")).toBe(false);
    expect(m("f[!0-9].txt", "fx.txt")).toBe(true);
    expect(m("f[^0-9].txt", "f1.txt")).toBe(false);
    expect(m("[abc]", "b")).toBe(true);
    expect(m("[]a]", "]")).toBe(true);
    expect(m("[!]]", "]")).toBe(false);
    expect(m("[a-]", "-")).toBe(true);
  });

  it("takes a [ without ] and an escaped wildcard literally", () => {
    expect(m("[ab", "[ab")).toBe(true);
    expect(compileNamePattern("[ab").isGlob).toBe(false);
    expect(m("\\*.txt", "*.txt")).toBe(true);
    expect(m("\\*.txt", "a.txt")).toBe(false);
    // An escaped wildcard is still a pattern (for a name that holds the character); other escapes are not.
    expect(compileNamePattern("\\*\\?").isGlob).toBe(true);
    expect(compileNamePattern("\\a\\b").isGlob).toBe(false);
    expect(compileNamePattern("plain name.txt").isGlob).toBe(false);
    expect(compileNamePattern("a*").isGlob).toBe(true);
    expect(compileNamePattern("[ab]").isGlob).toBe(true);
  });

  it("a pattern without wildcards matches only itself", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }).filter((s) => !/[*?[\\]/.test(s)), fc.string({ maxLength: 20 }), (p, other) => {
        expect(m(p, p)).toBe(true);
        expect(m(p, other)).toBe(other === p);
      }),
    );
  });

  it("agrees with a reference regular expression for * and ?", () => {
    const pat = fc.array(fc.constantFrom("a", "b", "*", "?"), { maxLength: 8 }).map((a) => a.join(""));
    const name = fc.array(fc.constantFrom("a", "b"), { maxLength: 10 }).map((a) => a.join(""));
    fc.assert(
      fc.property(pat, name, (p, n) => {
        const re = new RegExp("^" + p.replace(/\*/g, ".*").replace(/\?/g, ".") + "$", "s");
        expect(m(p, n)).toBe(re.test(n));
      }),
      { numRuns: 2000 },
    );
  });

  it("stays fast on a pattern built to backtrack", () => {
    const t = Date.now();
    expect(m("*a".repeat(50) + "b", "a".repeat(255))).toBe(false);
    expect(Date.now() - t).toBeLessThan(500);
  });
});
