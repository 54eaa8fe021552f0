// Reply formatting (RFC 959 §4.2). A single-line reply is "CODE text". A multi-line reply opens with "CODE-",
// ends with "CODE text", and every line between that could be mistaken for an end line starts with a space.

export function formatReply(code: number, text: string | readonly string[]): string {
  const lines = (typeof text === "string" ? [text] : [...text]).flatMap((t) => t.split(/\r\n|\r|\n/));
  if (lines.length === 0) lines.push("");
  if (lines.length === 1) return `${code} ${lines[0]}\r\n`;
  const last = lines.length - 1;
  let out = `${code}-${lines[0]}\r\n`;
  for (let i = 1; i < last; i++) {
    const l = lines[i]!;
    out += (/^\d{3}/.test(l) ? ` ${l}` : l) + "\r\n";
  }
  out += `${code} ${lines[last]}\r\n`;
  return out;
}

/**
 * A multi-line reply whose inner lines all begin with a space, as FEAT (RFC 2389 §3.2) and the MLST fact line
 * (RFC 3659 §7.2) require. The first and last lines are given separately.
 */
export function formatIndentedReply(code: number, first: string, body: readonly string[], last: string): string {
  let out = `${code}-${first}\r\n`;
  for (const l of body) out += ` ${l}\r\n`;
  out += `${code} ${last}\r\n`;
  return out;
}

/** Quotes a path for a 257 reply (RFC 959 Appendix II): embedded double quotes are doubled. */
export function quotePath(path: string): string {
  return `"${path.replace(/"/g, '""')}"`;
}
