// Shell-style name patterns for LIST and NLST arguments ("NLST *.txt", as the classic Unix ftp's mget sends):
// "*" any run of characters, "?" one character, "[abc]", "[a-z]", "[!abc]" or "[^abc]" one character of a set,
// and a backslash makes the next character literal. A "[" without its "]" is literal. A pattern is matched against
// one name (one path segment), character by character (Unicode code points, so "?" is one UTF-8 character).

type Token =
  | { kind: "char"; c: string }
  | { kind: "any" }
  | { kind: "star" }
  | { kind: "set"; negate: boolean; items: (string | [string, string])[] };

export interface NamePattern {
  /**
   * Whether the pattern holds a wildcard, or a wildcard character made literal ("\*.txt" matches "*.txt"); a text
   * without either is a plain name, not a pattern.
   */
  readonly isGlob: boolean;
  matches(name: string): boolean;
}

function tokenize(pattern: string): { tokens: Token[]; escapedWildcard: boolean } {
  const chars = Array.from(pattern);
  const out: Token[] = [];
  let escapedWildcard = false;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === "\\" && i + 1 < chars.length) {
      const lit = chars[++i]!;
      if (lit === "*" || lit === "?" || lit === "[") escapedWildcard = true;
      out.push({ kind: "char", c: lit });
    } else if (c === "*") {
      // Runs of stars match the same as one.
      if (out[out.length - 1]?.kind !== "star") out.push({ kind: "star" });
    } else if (c === "?") {
      out.push({ kind: "any" });
    } else if (c === "[") {
      const set = parseSet(chars, i);
      if (set) {
        out.push(set.token);
        i = set.end;
      } else {
        out.push({ kind: "char", c });
      }
    } else {
      out.push({ kind: "char", c });
    }
  }
  return { tokens: out, escapedWildcard };
}

/** Parses "[...]" starting at chars[start] === "["; null when it has no closing "]". */
function parseSet(chars: string[], start: number): { token: Token; end: number } | null {
  let i = start + 1;
  let negate = false;
  if (chars[i] === "!" || chars[i] === "^") {
    negate = true;
    i++;
  }
  const items: (string | [string, string])[] = [];
  // A "]" right after "[" or "[!" is a member, not the end.
  let first = true;
  for (; i < chars.length; i++) {
    let c = chars[i]!;
    if (c === "]" && !first) return { token: { kind: "set", negate, items }, end: i };
    first = false;
    if (c === "\\" && i + 1 < chars.length) c = chars[++i]!;
    if (chars[i + 1] === "-" && i + 2 < chars.length && chars[i + 2] !== "]") {
      let hi = chars[i + 2]!;
      i += 2;
      if (hi === "\\" && i + 1 < chars.length) hi = chars[++i]!;
      items.push([c, hi]);
    } else {
      items.push(c);
    }
  }
  return null;
}

function inSet(t: Extract<Token, { kind: "set" }>, c: string): boolean {
  const cp = c.codePointAt(0)!;
  const hit = t.items.some((it) => (typeof it === "string" ? it === c : cp >= it[0].codePointAt(0)! && cp <= it[1].codePointAt(0)!));
  return hit !== t.negate;
}

function matchOne(t: Token, c: string): boolean {
  switch (t.kind) {
    case "char":
      return t.c === c;
    case "any":
      return true;
    case "set":
      return inSet(t, c);
    case "star":
      return false;
  }
}

export function compileNamePattern(pattern: string): NamePattern {
  const { tokens, escapedWildcard } = tokenize(pattern);
  return {
    isGlob: escapedWildcard || tokens.some((t) => t.kind !== "char"),
    matches(name: string): boolean {
      const s = Array.from(name);
      // Linear-space matching with one backtrack point per star (the last one seen is enough for single stars).
      let ti = 0;
      let si = 0;
      let starT = -1;
      let starS = 0;
      while (si < s.length) {
        const t = tokens[ti];
        if (t?.kind === "star") {
          starT = ti++;
          starS = si;
        } else if (t !== undefined && matchOne(t, s[si]!)) {
          ti++;
          si++;
        } else if (starT >= 0) {
          ti = starT + 1;
          si = ++starS;
        } else {
          return false;
        }
      }
      while (tokens[ti]?.kind === "star") ti++;
      return ti === tokens.length;
    },
  };
}
