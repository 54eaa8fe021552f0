// Shell-style patterns for mget/mput: "*", "?", "[abc]", "[!abc]", "[a-z]", backslash escapes.

export function hasGlob(pattern: string): boolean {
  return /(^|[^\\])[*?[]/.test(pattern);
}

/** Compile a pattern for one path segment; "*" and "?" do not match "/". */
export function globToRegExp(pattern: string): RegExp {
  let re = "^";
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === "\\" && i + 1 < chars.length) {
      re += escape(chars[++i]!);
    } else if (c === "*") {
      re += "[^/]*";
    } else if (c === "?") {
      re += "[^/]";
    } else if (c === "[") {
      const close = chars.indexOf("]", i + 2);
      if (close === -1) {
        re += "\\[";
        continue;
      }
      let body = chars.slice(i + 1, close);
      let negate = false;
      if (body[0] === "!" || body[0] === "^") {
        negate = true;
        body = body.slice(1);
      }
      re += `[${negate ? "^" : ""}${body.map((b) => (b === "-" ? "-" : b === "\\" || b === "]" || b === "^" ? `\\${b}` : b)).join("")}]`;
      i = close;
    } else {
      re += escape(c);
    }
  }
  return new RegExp(`${re}$`, "u");
}

function escape(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

/** Split "dir/sub/*.txt" into the directory part ("dir/sub", "" for none) and the last segment. */
export function splitPattern(pattern: string): { dir: string; base: string } {
  const slash = pattern.lastIndexOf("/");
  if (slash === -1) return { dir: "", base: pattern };
  return { dir: slash === 0 ? "/" : pattern.slice(0, slash), base: pattern.slice(slash + 1) };
}

/**
 * The names that match `pattern`, sorted. As in a shell (and in the server's LIST and NLST), a name starting with "."
 * matches only a pattern that starts with one: `rm *` leaves `.htaccess` alone.
 */
export function matchNames(names: readonly string[], pattern: string): string[] {
  const re = globToRegExp(pattern);
  const dotted = pattern.startsWith(".");
  return names.filter((n) => (dotted || !n.startsWith(".")) && re.test(n)).sort();
}
