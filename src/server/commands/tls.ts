// Security commands (RFC 4217, on the RFC 2228 framework): AUTH TLS, PBSZ, PROT, and CCC (refused).

import type { Session } from "../session.js";

/** AUTH mechanisms taken as TLS: "TLS" (RFC 4217 §4), "TLS-C" (its older draft name) and "SSL" (older clients). */
const TLS_MECHANISMS = new Set(["TLS", "TLS-C", "SSL"]);

// Without a certificate none of these is reached: the session answers them 502 (see checkAndRun).

export async function auth(s: Session, arg: string): Promise<void> {
  const mech = arg.trim().toUpperCase();
  if (!TLS_MECHANISMS.has(mech)) {
    s.reply(504, `AUTH ${mech} not supported; use AUTH TLS`);
    return;
  }
  if (s.tlsControl) {
    s.reply(503, "Already using TLS");
    return;
  }
  if (s.user) {
    // RFC 4217 §4 would have the client log in again; asking for AUTH first keeps the login count simple.
    s.reply(503, "AUTH TLS must come before login");
    return;
  }
  await s.server.upgradeControl?.(s);
}

/** RFC 4217 §8: TLS has no buffer; any size is answered with PBSZ=0. */
export function pbsz(s: Session, arg: string): void {
  if (!s.tlsControl) {
    s.reply(503, "PBSZ needs AUTH TLS first");
    return;
  }
  if (!/^\d{1,10}$/.test(arg.trim())) {
    s.reply(501, "Syntax error: PBSZ 0");
    return;
  }
  s.pbszSet = true;
  s.reply(200, "PBSZ=0");
}

/** RFC 4217 §9: C (clear) and P (private) only; S and E make no sense over TLS. */
export function prot(s: Session, arg: string): void {
  if (!s.tlsControl) {
    s.reply(503, "PROT needs AUTH TLS first");
    return;
  }
  if (!s.pbszSet) {
    s.reply(503, "PROT needs PBSZ first");
    return;
  }
  const level = arg.trim().toUpperCase();
  switch (level) {
    case "P":
      s.protectData = true;
      s.reply(200, "Protection level set to P (private)");
      return;
    case "C":
      s.protectData = false;
      s.reply(200, "Protection level set to C (clear)");
      return;
    case "S":
    case "E":
      s.reply(536, `Protection level ${level} not supported with TLS`);
      return;
    default:
      s.reply(504, `Unknown protection level ${level}`);
  }
}

/**
 * CCC would put every later command and path back in clear on the wire, so it is refused: 533, "command
 * protection level denied for policy reasons" (RFC 2228 §4; RFC 4217 §6 leaves CCC to the server's policy).
 */
export function ccc(s: Session): void {
  if (!s.tlsControl) {
    s.reply(503, "The control connection is not protected");
    return;
  }
  s.reply(533, "CCC refused: the control connection stays protected");
}

export function tlsFeat(line: string): (s: Session) => string | null {
  return (s) => (s.server.tls ? line : null);
}
