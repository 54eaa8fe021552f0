// Directory and file commands: RFC 959 §4.1.1/§4.1.3 (PWD CWD CDUP MKD RMD DELE RNFR RNTO),
// RFC 3659 (SIZE §4, MDTM §3, MLST §7), the MFMT draft (draft-somers-ftp-mfxx) and SITE CHMOD (RFC 959's SITE
// leaves its subcommands to the server).

import { MyftpError, toMyftpError } from "../../core/errors.js";
import { currentAccessor, formatMlsxLine, formatTimeVal, MAY_SEARCH, MAY_WRITE, mayAccess, mlstFeatLine, parseTimeVal, stickyOf } from "../../protocol/listing.js";
import { formatIndentedReply, quotePath } from "../../protocol/reply.js";
import { virtualParent } from "../../protocol/vpath.js";
import type { Session } from "../session.js";
import { requireUser } from "./auth.js";

export function pwd(s: Session): void {
  s.reply(257, `${quotePath(s.cwd)} is the current directory`);
}

export async function cwd(s: Session, arg: string): Promise<void> {
  const target = s.vpath(arg);
  await s.storage.enterDir(target);
  s.cwd = target;
  s.reply(250, `Directory changed to ${target}`);
}

export function cdup(s: Session): void {
  s.cwd = virtualParent(s.cwd);
  s.reply(250, `Directory changed to ${s.cwd}`);
}

export async function mkd(s: Session, arg: string): Promise<void> {
  const target = s.vpath(arg);
  await s.storage.mkdir(target);
  s.log.info({ event: "mkdir", user: s.user?.name, path: target }, "directory created");
  s.reply(257, `${quotePath(target)} created`);
}

export async function rmd(s: Session, arg: string): Promise<void> {
  const target = s.vpath(arg);
  if (target === "/") throw new MyftpError("denied", "Can't remove the home directory");
  if (s.cwd === target || s.cwd.startsWith(target + "/")) {
    // Removing the directory we stand in would leave the session nowhere.
    throw new MyftpError("denied", "Can't remove the current directory");
  }
  await s.storage.rmdir(target);
  s.reply(250, `Directory ${target} removed`);
}

/** Refuses to delete or rename what an upload of the same user is writing (its bytes would be counted wrong). */
function notBeingWritten(s: Session, p: string, key: string, except?: string): void {
  if (requireUser(s).ledger.isWriting(key, except)) throw new MyftpError("busy", `${p} is being uploaded; try again later`);
}

/**
 * Runs a delete or a rename holding the user's claim on `key` (the claim key of `p`): the blocks of a removed or
 * replaced file are freed on the thread pool under a temporary name in the same directory, and the claim keeps that
 * directory (and every one above it) from being renamed by this user until then, so the temporary name is always
 * found and removed.
 */
async function whileClaimed<T>(s: Session, p: string, key: string, run: () => Promise<T>): Promise<T> {
  const { ledger } = requireUser(s);
  if (!ledger.claimPath(key)) throw new MyftpError("busy", `${p} is being uploaded; try again later`);
  try {
    return await run();
  } finally {
    ledger.releasePath(key);
  }
}

/**
 * Runs a delete or a rename (`run` returns the bytes it freed) and gives those bytes back to the ledger. When `frees`
 * (there is a file it may remove or replace), the user's stored usage figure is marked dirty, and that is written to
 * the store, before anything is removed, until the ledger holds the freed bytes: a crash in between (the name gone,
 * the figure not lowered yet, the old content perhaps still under a temporary name) then makes the next login recount
 * the home and sweep that name, instead of trusting a figure that counts a file no longer there.
 */
async function freeing(s: Session, frees: boolean, run: () => Promise<number>): Promise<number> {
  const { ledger } = requireUser(s);
  if (frees) ledger.beginWrite();
  try {
    // One store write, unless an upload of the user has the figure marked dirty already.
    if (frees) await ledger.flushLocked();
    const freed = await run();
    ledger.release(freed);
    return freed;
  } finally {
    if (frees) ledger.endWrite();
  }
}

/** Whether `p` names something that deleting or replacing may free blocks of (missing, or not a file: nothing). */
async function mayFree(s: Session, p: string): Promise<boolean> {
  try {
    return (await s.storage.stat(p)).type === "file";
  } catch (err) {
    // Not there (nothing to free), or in doubt (the delete or rename itself answers): only a file frees bytes.
    return (err as NodeJS.ErrnoException).code !== "ENOENT" && !(err instanceof MyftpError);
  }
}

export async function dele(s: Session, arg: string): Promise<void> {
  const user = requireUser(s);
  const target = s.vpath(arg);
  const key = await s.storage.claimKey(target);
  notBeingWritten(s, target, key);
  const freed = await whileClaimed(s, target, key, async () => freeing(s, await mayFree(s, target), () => s.storage.unlink(target)));
  s.log.info({ event: "delete", user: user.name, path: target, bytes: freed }, "file deleted");
  s.reply(250, `File ${target} deleted`);
}

export async function rnfr(s: Session, arg: string): Promise<void> {
  const from = s.vpath(arg);
  if (from === "/") throw new MyftpError("denied", "Can't rename the home directory");
  await s.storage.stat(from);
  notBeingWritten(s, from, await s.storage.claimKey(from));
  s.renameFrom = from;
  s.reply(350, "Ready for RNTO");
}

export async function rnto(s: Session, arg: string): Promise<void> {
  const user = requireUser(s);
  const from = s.renameFrom;
  s.renameFrom = null;
  if (from === null) {
    s.reply(503, "Bad sequence of commands: use RNFR first");
    return;
  }
  const to = s.vpath(arg);
  if (to === "/") throw new MyftpError("denied", "Can't rename over the home directory");
  const fromKey = await s.storage.claimKey(from);
  const toKey = await s.storage.claimKey(to);
  // The rename's own claim on `to` (taken below) is not an upload, even where `to` leads to `from` itself.
  const fromFree = () => notBeingWritten(s, from, fromKey, toKey);
  fromFree();
  notBeingWritten(s, to, toKey);
  // The rename checks again after anything it awaits (a long walk below a directory), before it moves anything: an
  // upload that started below `from` meanwhile would lose its file. (`to` is claimed for the rename's whole run.)
  let replaced: number;
  try {
    replaced = await whileClaimed(s, to, toKey, async () =>
      freeing(s, await mayFree(s, to), () => s.storage.rename(from, to, fromFree)),
    );
  } finally {
    // A count of the home running meanwhile may have seen the moved entry twice, or not at all.
    user.ledger.noteChange();
  }
  s.log.info({ event: "rename", user: user.name, from, to, bytes: replaced }, "renamed");
  s.reply(250, "Rename successful");
}

export async function size(s: Session, arg: string): Promise<void> {
  const st = await s.storage.stat(s.vpath(arg));
  if (st.type !== "file") throw new MyftpError("denied", "Not a regular file");
  if (s.type === "A") {
    // RFC 3659 §4: in ASCII mode the size depends on the line ends sent; we only report binary sizes.
    s.reply(550, "SIZE not allowed in ASCII mode; use TYPE I");
    return;
  }
  s.reply(213, String(st.size));
}

export async function mdtm(s: Session, arg: string): Promise<void> {
  const st = await s.storage.stat(s.vpath(arg));
  if (st.type !== "file") throw new MyftpError("denied", "Not a regular file");
  s.reply(213, formatTimeVal(st.mtimeMs));
}

export async function mfmt(s: Session, arg: string): Promise<void> {
  const sp = arg.indexOf(" ");
  const when = sp === -1 ? null : parseTimeVal(arg.slice(0, sp));
  if (when === null || sp === arg.length - 1) {
    s.reply(501, "Syntax error: MFMT YYYYMMDDHHMMSS path");
    return;
  }
  const target = s.vpath(arg.slice(sp + 1));
  const st = await s.storage.stat(target);
  if (st.type !== "file") throw new MyftpError("denied", "Not a regular file");
  await s.storage.setMtime(target, when);
  // The time the file system kept: it clamps what it cannot store (ext4: 1901 to 2446), and the reply must say what
  // was set, or a mirror comparing times would send the file again on every run.
  const kept = (await s.storage.stat(target)).mtimeMs;
  s.reply(213, `Modify=${formatTimeVal(kept, true)}; ${arg.slice(sp + 1)}`);
}

/** SITE CHMOD's mode: 1 to 4 octal digits (a leading zero, as in 0644, is common). */
const OCTAL_MODE = /^[0-7]{1,4}$/;
const CHMOD_SYNTAX = "SITE CHMOD <octal mode> <path>";

/**
 * SITE CHMOD mode path: sets the permission bits of a file or directory. `arg` is what follows "CHMOD "; the path is
 * everything after the mode's one space (kept verbatim, as names may hold spaces). Only the bits 0777: with setuid or
 * setgid an uploaded program would run with the rights of its owner, the server's user (root, where the server runs as
 * root), for whoever on the machine starts it; the sticky bit would change who may remove names in a directory.
 */
export async function siteChmod(s: Session, arg: string): Promise<void> {
  const user = requireUser(s);
  const sp = arg.indexOf(" ");
  const modeText = sp === -1 ? arg : arg.slice(0, sp);
  const p = sp === -1 ? "" : arg.slice(sp + 1);
  if (modeText === "" || p === "") {
    s.reply(501, `Syntax error: ${CHMOD_SYNTAX}`);
    return;
  }
  if (!OCTAL_MODE.test(modeText)) {
    s.reply(501, `Invalid mode ${modeText}: 1 to 4 octal digits expected (${CHMOD_SYNTAX})`);
    return;
  }
  const mode = Number.parseInt(modeText, 8);
  if (mode & ~0o777) {
    throw new MyftpError("denied", "Only permission bits (0777) may be changed: setuid, setgid and sticky bits are refused");
  }
  const target = s.vpath(p);
  if (target === "/") throw new MyftpError("denied", "Can't change the mode of the home directory");
  // An overwrite of the file under way writes a temporary file that takes the old mode and then the file's place: the
  // new mode would be lost after its 200. (The change follows the check without a wait in between.)
  notBeingWritten(s, target, await s.storage.claimKey(target));
  try {
    await s.storage.chmod(target, mode);
  } catch (err) {
    if (toMyftpError(err).code === "read-only") {
      throw new MyftpError("read-only", `Can't change the mode of ${target}: read-only file system`, { cause: err });
    }
    throw err;
  }
  const octal = mode.toString(8).padStart(4, "0");
  s.log.info({ event: "chmod", user: user.name, path: target, mode: octal }, "mode changed");
  s.reply(200, `SITE CHMOD command successful: ${target} is now ${octal}`);
}

export function mlstFeat(s: Session): string {
  return mlstFeatLine(s.mlstFacts);
}

export async function mlst(s: Session, arg: string): Promise<void> {
  const target = arg.length > 0 ? s.vpath(arg) : s.cwd;
  const st = await s.storage.stat(target);
  // The home itself is never renamed or removed; anything else by its directory's permissions.
  const who = currentAccessor();
  const parent = target === "/" ? null : await s.storage.stat(virtualParent(target));
  const writable = parent !== null && mayAccess(parent, who, MAY_WRITE | MAY_SEARCH);
  const sticky = parent ? stickyOf(parent) : undefined;
  // In a sticky directory the owner of a link's own name decides whether it may be removed or renamed.
  const linkOwner = sticky ? await s.storage.linkOwner(target) : null;
  const entry = linkOwner === null ? st : { ...st, nameUid: linkOwner };
  const line = formatMlsxLine(entry, s.mlstFacts, { writable, who, sticky, name: target });
  s.write(formatIndentedReply(250, `Listing ${target}`, [line], "End"));
}
