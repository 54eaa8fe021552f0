// Informational and negotiation commands: SYST, NOOP, HELP, STAT (RFC 959 §4.1.3), FEAT and OPTS (RFC 2389),
// OPTS UTF8 (RFC 2640), OPTS MLST (RFC 3659 §7.9), OPTS HASH (draft-bryan-ftpext-hash §3.2), AVBL
// (draft-peterson-streamlined-ftp-command-extensions) and SITE (HELP, QUOTA, and CHMOD from files.ts).

import { MyftpError } from "../../core/errors.js";
import { formatLsLine, listingLines, parseMlstOpts, sortByName } from "../../protocol/listing.js";
import { formatIndentedReply } from "../../protocol/reply.js";
import { parseHashAlgorithm } from "../../workers/hash-types.js";
import type { Session } from "../session.js";
import { requireUser } from "./auth.js";
import { siteChmod } from "./files.js";
import { COMMANDS, featLines } from "./table.js";

export function syst(s: Session): void {
  s.reply(215, "UNIX Type: L8");
}

export function noop(s: Session): void {
  s.reply(200, "NOOP ok");
}

export function feat(s: Session): void {
  s.write(formatIndentedReply(211, "Features:", featLines(s), "End"));
}

export function opts(s: Session, arg: string): void {
  const sp = arg.indexOf(" ");
  const option = (sp === -1 ? arg : arg.slice(0, sp)).toUpperCase();
  const value = sp === -1 ? "" : arg.slice(sp + 1).trim();
  switch (option) {
    case "UTF8":
    case "UTF-8":
      if (value === "" || value.toUpperCase() === "ON") s.reply(200, "UTF8 mode is always on");
      else s.reply(504, "UTF8 cannot be turned off");
      return;
    case "MLST": {
      s.mlstFacts = parseMlstOpts(value);
      s.reply(200, `MLST OPTS ${s.mlstFacts.map((f) => `${f};`).join("")}`);
      return;
    }
    case "HASH": {
      if (value === "") {
        s.reply(200, s.hashAlgorithm);
        return;
      }
      const alg = parseHashAlgorithm(value);
      if (!alg) {
        s.reply(501, "Unknown algorithm, current selection not changed");
        return;
      }
      s.hashAlgorithm = alg;
      s.reply(200, alg);
      return;
    }
    default:
      s.reply(501, `Option ${option} not understood`);
  }
}

export function help(s: Session, arg: string): void {
  const verb = arg.trim().toUpperCase();
  // The TLS commands mean nothing without a certificate (AUTH answers 502 then), so HELP leaves them out, as FEAT
  // leaves out AUTH, PBSZ and PROT.
  const offered = (v: string) => {
    const spec = COMMANDS[v];
    return spec !== undefined && (!spec.needsTls || s.server.tls !== null);
  };
  if (verb.length > 0) {
    if (!offered(verb)) {
      s.reply(502, `Unknown command ${verb}`);
      return;
    }
    s.reply(214, `Syntax: ${COMMANDS[verb]!.help}`);
    return;
  }
  const verbs = Object.keys(COMMANDS).filter(offered).sort();
  const rows: string[] = [];
  for (let i = 0; i < verbs.length; i += 8) rows.push(verbs.slice(i, i + 8).map((v) => v.padEnd(5)).join(" ").trimEnd());
  s.write(formatIndentedReply(214, "The following commands are recognized:", rows, "Help OK"));
}

export async function stat(s: Session, arg: string): Promise<void> {
  if (arg.trim().length === 0) {
    const lines = [
      `Connected from ${s.peerAddress}`,
      s.user ? `Logged in as ${s.user.name}` : "Not logged in",
      `TYPE: ${s.type === "A" ? "ASCII" : "BINARY"}, STRU: F, MODE: S`,
      `Control connection: ${s.tlsControl ? "TLS" : "plain"}; data: ${s.protectData ? "private" : "clear"}`,
      s.transfer
        ? `Transfer in progress: ${s.transfer.verb} ${s.transfer.path}, ${s.transfer.bytes} bytes so far`
        : "No transfer in progress",
    ];
    s.write(formatIndentedReply(211, "myftpd status:", lines, "End of status"));
    return;
  }
  // RFC 959: STAT with a path lists it over the control connection.
  const target = s.vpath(arg);
  const st = await s.storage.stat(target);
  const entries = await sortByName(st.type === "dir" ? await s.storage.list(target) : [{ ...st, name: arg }]);
  const now = Date.now();
  const owner = requireUser(s).name;
  // A large directory's lines are made a batch per loop turn (as LIST's are), so other sessions get their turns.
  const pieces = [`213-Status of ${target}:\r\n`];
  for (const piece of listingLines(entries, (e) => ` ${formatLsLine(e, owner, now)}`)) {
    if (pieces.length > 1) await new Promise<void>((resolve) => setImmediate(resolve));
    pieces.push(piece);
  }
  pieces.push("213 End of status\r\n");
  // Written in one go (no wait between the pieces, so no other reply can come between them), without joining them.
  const sock = s.socket;
  sock.cork();
  for (const p of pieces) s.write(p);
  process.nextTick(() => sock.uncork());
}

function quotaText(used: number, limit: number | null): string {
  return limit === null
    ? `used ${used} bytes, no limit`
    : `used ${used} of ${limit} bytes (${Math.max(0, limit - used)} available)`;
}

export async function site(s: Session, arg: string): Promise<void> {
  const sp = arg.indexOf(" ");
  const sub = (sp === -1 ? arg : arg.slice(0, sp)).toUpperCase();
  switch (sub) {
    case "HELP":
      s.write(formatIndentedReply(214, "SITE commands:", ["CHMOD", "HELP", "QUOTA"], "Help OK"));
      return;
    case "CHMOD":
      await siteChmod(s, sp === -1 ? "" : arg.slice(sp + 1));
      return;
    case "QUOTA": {
      const { ledger, name } = requireUser(s);
      await ledger.refresh();
      s.reply(200, `Quota for ${name}: ${quotaText(ledger.used, ledger.limit)}`);
      return;
    }
    case "":
      // "SITE  CHMOD ..." (a second space): no subcommand where one must come, a syntax error rather than an unknown one.
      s.reply(501, "Syntax error: SITE <sp> subcommand (SITE HELP lists them)");
      return;
    default:
      s.reply(502, `SITE ${sub} not implemented`);
  }
}

export async function avbl(s: Session, arg: string): Promise<void> {
  const user = requireUser(s);
  const target = arg.trim().length > 0 ? s.vpath(arg) : s.cwd;
  const st = await s.storage.stat(target);
  if (st.type !== "dir") throw new MyftpError("not-dir", "AVBL needs a directory");
  const free = await s.storage.freeSpace();
  await user.ledger.refresh();
  s.reply(213, String(Math.min(free, user.ledger.available)));
}
