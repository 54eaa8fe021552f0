// Transfer parameters: TYPE, MODE, STRU, ALLO, REST (RFC 959 §4.1.2, RFC 3659 §5) and the data connection
// set-up: PASV and PORT (RFC 959), EPSV and EPRT (RFC 2428). Active connections go only to the control
// connection's peer, on a port of 1024 or above, so the server cannot be used to reach third parties.

import {
  formatEpsvArg,
  formatPasvArg,
  parseEprtArg,
  parseEpsvArg,
  parsePortArg,
  sameHost,
  toIPv4,
  type HostPort,
} from "../../protocol/address.js";
import { MyftpError } from "../../core/errors.js";
import type { Session } from "../session.js";

export function type(s: Session, arg: string): void {
  // "L8" (no space) is how several clients and servers write TYPE L 8.
  const parts = arg.trim().toUpperCase().replace(/^L(\d+)$/, "L $1").split(/\s+/);
  const t = parts[0];
  // At most a type and one parameter (RFC 959: A/E take a format control, L a byte size, I nothing).
  if (parts.length > 2 || (t === "I" && parts.length > 1)) {
    s.reply(501, `Syntax error in TYPE ${arg}`);
  } else if (t === "I" || (t === "L" && (parts[1] ?? "8") === "8")) {
    s.type = "I";
    s.reply(200, "Type set to I");
  } else if (t === "A" && (parts[1] === undefined || parts[1] === "N")) {
    s.type = "A";
    s.reply(200, "Type set to A");
  } else if (t === "A" || t === "E" || t === "L") {
    s.reply(504, `Type ${arg} not implemented`);
  } else {
    s.reply(501, `Unknown type ${arg}`);
  }
}

export function mode(s: Session, arg: string): void {
  const m = arg.trim().toUpperCase();
  if (m === "S") s.reply(200, "Mode set to S");
  else if (m === "B" || m === "C" || m === "Z") s.reply(504, `Mode ${m} not implemented`);
  else s.reply(501, `Unknown mode ${arg}`);
}

export function stru(s: Session, arg: string): void {
  const m = arg.trim().toUpperCase();
  if (m === "F") s.reply(200, "Structure set to F");
  else if (m === "R" || m === "P") s.reply(504, `Structure ${m} not implemented`);
  else s.reply(501, `Unknown structure ${arg}`);
}

export function allo(s: Session, arg: string): void {
  // "ALLO <size> [R <record size>]"; the next STOR, APPE or STOU reserves the size from the quota before its 150
  // (see upload.ts).
  const m = /^\s*(\d{1,15})(?:\s+R\s+\d{1,15})?\s*$/i.exec(arg);
  if (!m) {
    s.reply(501, "Syntax error: ALLO bytes");
    return;
  }
  s.allocate = Number(m[1]);
  s.reply(200, `ALLO ${s.allocate} bytes noted`);
}

export function rest(s: Session, arg: string): void {
  const t = arg.trim();
  // REST and RANG each replace what the other set (as RANG clears a REST), and a refused one leaves neither: a
  // transfer takes a pending RANG before a REST, and a REST left behind would apply to a later plain STOR or RETR
  // (a STOR would keep that many bytes of the old file before the new ones).
  s.hashRange = null;
  if (!/^\d{1,15}$/.test(t)) {
    s.restOffset = 0;
    s.reply(501, "REST needs a non-negative byte offset");
    return;
  }
  s.restOffset = Number(t);
  s.reply(350, `Restarting at ${s.restOffset}. Send STOR or RETR to start the transfer`);
}

/** RFC 2428 §4: after EPSV ALL the client promised to use only EPSV. */
function refuseAfterEpsvAll(s: Session): boolean {
  if (!s.epsvAll) return false;
  s.reply(503, "EPSV ALL in effect; use EPSV");
  return true;
}

export async function pasv(s: Session): Promise<void> {
  if (refuseAfterEpsvAll(s)) return;
  // PASV can only name an IPv4 address, and the data connection must come from the control connection's peer: over
  // IPv6 no address works, not even --pasv-address (an IPv6 client would be sent to an IPv4 address it cannot come from).
  const local = toIPv4(s.localAddress);
  const announced = local ? (s.server.options.pasvAddress ?? local) : null;
  if (!announced) {
    s.reply(500, "PASV is IPv4 only; use EPSV");
    return;
  }
  const port = await openPassive(s);
  if (port === null) return;
  s.reply(227, `Entering Passive Mode (${formatPasvArg(announced, port)})`);
}

export async function epsv(s: Session, arg: string): Promise<void> {
  const want = parseEpsvArg(arg);
  const family = toIPv4(s.localAddress) ? 4 : 6;
  if (want === "bad") {
    s.reply(501, "Syntax error: EPSV [1 | 2 | ALL]");
    return;
  }
  if (want === "all") {
    s.epsvAll = true;
    s.reply(200, "EPSV ALL ok");
    return;
  }
  if (want === "unsupported" || (want !== "any" && want !== family)) {
    s.reply(522, `Network protocol not supported, use (${family === 4 ? 1 : 2})`);
    return;
  }
  const port = await openPassive(s);
  if (port === null) return;
  s.reply(229, `Entering Extended Passive Mode ${formatEpsvArg(port)}`);
}

/** Opens a passive port; when the whole range is taken, says so with 425 (not 421: the session goes on). */
async function openPassive(s: Session): Promise<number | null> {
  try {
    return await s.data.listenPassive();
  } catch (err) {
    if (!(err instanceof MyftpError) || err.code !== "too-many") throw err;
    s.log.warn({ event: "pasv-exhausted" }, "no passive port free");
    s.reply(425, "No passive port free; try again later");
    return null;
  }
}

/**
 * Accepts an active target only when it is the control peer on an unprivileged port. A link-local address written
 * without its zone (a client cannot know the server's name for the link) is taken in the control connection's zone.
 */
function acceptActive(s: Session, verb: string, target: HostPort): boolean {
  const zone = s.peerAddress.indexOf("%");
  if (zone >= 0 && !target.host.includes("%")) target.host = `${target.host}${s.peerAddress.slice(zone)}`;
  if (!sameHost(target.host, s.peerAddress)) {
    s.log.warn({ event: "bounce-refused", verb, host: target.host }, "active connection to a foreign host refused");
    s.reply(500, `Illegal ${verb} command: address must be the client's own`);
    return false;
  }
  if (target.port < 1024) {
    // 500, as for a foreign host: RFC 959 §5.4 allows PORT no other refusal (504 is not among its replies).
    s.log.warn({ event: "bounce-refused", verb, port: target.port }, "active connection to a privileged port refused");
    s.reply(500, `Illegal ${verb} command: port must be 1024 or above`);
    return false;
  }
  return true;
}

export function port(s: Session, arg: string): void {
  if (refuseAfterEpsvAll(s)) return;
  const target = parsePortArg(arg);
  if (!target) {
    s.reply(501, "Syntax error: PORT h1,h2,h3,h4,p1,p2");
    return;
  }
  if (!acceptActive(s, "PORT", target)) return;
  s.data.setActive(target.host, target.port, target.family);
  s.reply(200, "PORT command successful");
}

export function eprt(s: Session, arg: string): void {
  if (refuseAfterEpsvAll(s)) return;
  const target = parseEprtArg(arg.trim());
  if (target === "bad") {
    s.reply(501, "Syntax error: EPRT |proto|address|port|");
    return;
  }
  // RFC 2428 §2: a protocol the server cannot use for this client gets 522 naming the one it can: the data
  // connection goes to the control peer, so only the control connection's family (an IPv4-mapped peer is IPv4). The
  // protocol number decides, not the address's form: "|2|::ffff:127.0.0.1|" is protocol 2 all the same.
  const family = toIPv4(s.peerAddress) ? 4 : 6;
  if (target === "unsupported" || target.family !== family) {
    s.reply(522, `Network protocol not supported, use (${family === 4 ? 1 : 2})`);
    return;
  }
  if (!acceptActive(s, "EPRT", target)) return;
  s.data.setActive(target.host, target.port, target.family);
  s.reply(200, "EPRT command successful");
}
