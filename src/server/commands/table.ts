// The command table: one declarative row per verb. The control loop enforces each row before its handler runs:
// 530 before login unless `auth` is false, 501 for a missing or unexpected argument, 425 for a transfer without a
// data connection set up, and `special` rows are answered even while a transfer runs. Aliases are extra rows.
// FEAT and HELP are generated from the rows, so they list exactly what is implemented.

import type { Session } from "../session.js";
import * as auth from "./auth.js";
import * as files from "./files.js";
import * as hash from "./hash.js";
import * as info from "./info.js";
import * as params from "./params.js";
import * as security from "./tls.js";
import * as transfer from "./transfer.js";

export type Handler = (s: Session, arg: string) => Promise<void> | void;

export interface CommandSpec {
  handler: Handler;
  /** Needs a logged-in user (default true). */
  auth?: boolean;
  /** "required": 501 when empty; "none": 501 when given; default optional. */
  arg?: "required" | "none" | "optional";
  /** Answered at once even while a transfer runs. */
  special?: boolean;
  /** Opens a data connection: refused with 425 when none was set up. */
  transfer?: boolean;
  /** Only offered with a TLS certificate (HELP leaves it out otherwise). */
  needsTls?: boolean;
  /** The FEAT line(s) this verb adds, if any; a function when it depends on the session. */
  feat?: string | ((s: Session) => string | null);
  help: string;
}

export const COMMANDS: Record<string, CommandSpec> = {
  // RFC 959 §4.1.1 access control
  USER: { handler: auth.user, auth: false, arg: "required", help: "USER <sp> username" },
  PASS: { handler: auth.pass, auth: false, help: "PASS <sp> password" },
  // Not special: during a transfer QUIT waits its turn, so the transfer ends with its own reply before 221 (§4.1.1).
  QUIT: { handler: auth.quit, auth: false, arg: "none", help: "QUIT (end session)" },
  // RFC 959 §4.1.3 service commands: directories and files
  PWD: { handler: files.pwd, arg: "none", help: "PWD (print working directory)" },
  XPWD: { handler: files.pwd, arg: "none", help: "XPWD (alias of PWD)" },
  CWD: { handler: files.cwd, arg: "required", help: "CWD <sp> path" },
  XCWD: { handler: files.cwd, arg: "required", help: "XCWD <sp> path (alias of CWD)" },
  CDUP: { handler: files.cdup, arg: "none", help: "CDUP (go to parent directory)" },
  XCUP: { handler: files.cdup, arg: "none", help: "XCUP (alias of CDUP)" },
  MKD: { handler: files.mkd, arg: "required", help: "MKD <sp> path" },
  XMKD: { handler: files.mkd, arg: "required", help: "XMKD <sp> path (alias of MKD)" },
  RMD: { handler: files.rmd, arg: "required", help: "RMD <sp> path" },
  XRMD: { handler: files.rmd, arg: "required", help: "XRMD <sp> path (alias of RMD)" },
  DELE: { handler: files.dele, arg: "required", help: "DELE <sp> path" },
  RNFR: { handler: files.rnfr, arg: "required", help: "RNFR <sp> path" },
  RNTO: { handler: files.rnto, arg: "required", help: "RNTO <sp> path" },
  // RFC 3659 §4, §3, and the MFMT draft
  SIZE: { handler: files.size, arg: "required", feat: "SIZE", help: "SIZE <sp> path" },
  MDTM: { handler: files.mdtm, arg: "required", feat: "MDTM", help: "MDTM <sp> path" },
  MFMT: { handler: files.mfmt, arg: "required", feat: "MFMT", help: "MFMT <sp> YYYYMMDDHHMMSS <sp> path" },
  MLST: { handler: files.mlst, feat: files.mlstFeat, help: "MLST [<sp> path]" },
  // Transfer parameters (RFC 959 §4.1.2, RFC 2428)
  TYPE: { handler: params.type, arg: "required", help: "TYPE <sp> A | I" },
  MODE: { handler: params.mode, arg: "required", help: "MODE <sp> S" },
  STRU: { handler: params.stru, arg: "required", help: "STRU <sp> F" },
  ALLO: { handler: params.allo, arg: "required", help: "ALLO <sp> bytes" },
  PASV: { handler: params.pasv, arg: "none", help: "PASV (enter passive mode)" },
  EPSV: { handler: params.epsv, feat: "EPSV", help: "EPSV [<sp> 1 | 2 | ALL]" },
  PORT: { handler: params.port, arg: "required", help: "PORT <sp> h1,h2,h3,h4,p1,p2" },
  EPRT: { handler: params.eprt, arg: "required", feat: "EPRT", help: "EPRT <sp> |proto|address|port|" },
  REST: { handler: params.rest, arg: "required", feat: "REST STREAM", help: "REST <sp> offset" },
  // Transfers
  RETR: { handler: transfer.retr, arg: "required", transfer: true, help: "RETR <sp> path" },
  STOR: { handler: transfer.stor, arg: "required", transfer: true, help: "STOR <sp> path" },
  // No FEAT line: RFC 2389 defines none for STOU, an RFC 959 command.
  STOU: { handler: transfer.stou, transfer: true, help: "STOU [<sp> path] (store under a new, unique name)" },
  APPE: { handler: transfer.appe, arg: "required", transfer: true, help: "APPE <sp> path" },
  LIST: { handler: transfer.list, transfer: true, help: "LIST [<sp> path]" },
  NLST: { handler: transfer.nlst, transfer: true, help: "NLST [<sp> path]" },
  MLSD: { handler: transfer.mlsd, transfer: true, help: "MLSD [<sp> path]" },
  ABOR: { handler: transfer.abor, arg: "none", special: true, help: "ABOR (abort transfer)" },
  // Informational
  SYST: { handler: info.syst, auth: false, arg: "none", help: "SYST (system type)" },
  FEAT: { handler: info.feat, auth: false, arg: "none", help: "FEAT (list extensions)" },
  OPTS: { handler: info.opts, auth: false, arg: "required", feat: "UTF8", help: "OPTS <sp> UTF8 ON | MLST facts | HASH alg" },
  NOOP: { handler: info.noop, auth: false, arg: "none", special: true, help: "NOOP" },
  HELP: { handler: info.help, auth: false, help: "HELP [<sp> command]" },
  STAT: { handler: info.stat, special: true, help: "STAT [<sp> path]" },
  SITE: { handler: info.site, arg: "required", help: "SITE <sp> CHMOD <sp> mode <sp> path | HELP | QUOTA" },
  AVBL: { handler: info.avbl, feat: "AVBL", help: "AVBL [<sp> path] (bytes available)" },
  // RFC 4217 (FTPS); FEAT lists them only when the server has a certificate
  AUTH: { handler: security.auth, needsTls: true, auth: false, arg: "required", feat: security.tlsFeat("AUTH TLS"), help: "AUTH <sp> TLS" },
  PBSZ: { handler: security.pbsz, needsTls: true, auth: false, arg: "required", feat: security.tlsFeat("PBSZ"), help: "PBSZ <sp> 0" },
  PROT: { handler: security.prot, needsTls: true, auth: false, arg: "required", feat: security.tlsFeat("PROT"), help: "PROT <sp> C | P" },
  CCC: { handler: security.ccc, needsTls: true, auth: false, arg: "none", help: "CCC (refused: the control connection stays protected)" },
  // draft-bryan-ftpext-hash
  HASH: { handler: hash.hash, arg: "required", feat: hash.hashFeat, help: "HASH <sp> path" },
  RANG: { handler: hash.rang, arg: "required", feat: "RANG STREAM", help: "RANG <sp> start <sp> end" },
};

/** Verbs answered before login. */
export const PRE_LOGIN_ALLOWED: ReadonlySet<string> = new Set(
  Object.entries(COMMANDS)
    .filter(([, spec]) => spec.auth === false)
    .map(([verb]) => verb),
);

/** The FEAT body: one line per extension the table implements, sorted, without duplicates. */
export function featLines(s: Session): string[] {
  const lines = new Set<string>(["TVFS"]);
  for (const spec of Object.values(COMMANDS)) {
    const f = typeof spec.feat === "function" ? spec.feat(s) : spec.feat;
    if (f) lines.add(f);
  }
  return [...lines].sort();
}
