// Parses one control line into a verb and its argument (RFC 959 §5.3.1: verb, one space, argument).
// The argument is kept verbatim: file names may begin or end with spaces. RFC 2640 makes the line UTF-8.

export interface ParsedCommand {
  /** Upper-cased verb, e.g. "RETR". */
  verb: string;
  /** Everything after the first space, unchanged; "" when absent. */
  arg: string;
  /** True when a space followed the verb (even if the argument is empty). */
  hasArg: boolean;
}

export type ParseResult = { ok: true; command: ParsedCommand } | { ok: false; reason: "empty" | "bad-verb" | "bad-utf8" };

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Verbs are 3 or 4 letters in the RFCs; allow up to 8 ASCII letters and digits after a first letter (XMD5, XSHA256:
 * well-formed verbs this server does not implement, answered 502 like any other). SITE subcommands are arguments.
 */
const VERB = /^[A-Za-z][A-Za-z0-9]{0,7}$/;

export function parseCommand(line: Buffer): ParseResult {
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    return { ok: false, reason: "bad-utf8" };
  }
  if (text.length === 0 || text.trim().length === 0) return { ok: false, reason: "empty" };
  const sp = text.indexOf(" ");
  const verbText = sp === -1 ? text : text.slice(0, sp);
  if (!VERB.test(verbText)) return { ok: false, reason: "bad-verb" };
  return {
    ok: true,
    command: {
      verb: verbText.toUpperCase(),
      arg: sp === -1 ? "" : text.slice(sp + 1),
      hasArg: sp !== -1,
    },
  };
}
