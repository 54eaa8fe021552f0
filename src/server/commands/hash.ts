// HASH (draft-bryan-ftpext-hash-02) and RANG (draft-bryan-ftp-range-08). Hashes are computed on the worker pool,
// streamed from disk, so a large file never blocks other sessions. RANG's end point is inclusive; "RANG 1 0"
// resets. The range applies to the next HASH, RETR or STOR only.

import { MyftpError } from "../../core/errors.js";
import { HASH_ALGORITHMS } from "../../workers/hash-types.js";
import type { Session } from "../session.js";

/** Above this many queued hash jobs the server answers 450 (busy) rather than queueing more. */
export const MAX_QUEUED_HASHES = 256;

export function hashFeat(s: Session): string {
  return "HASH " + HASH_ALGORITHMS.map((a) => `${a}${a === s.hashAlgorithm ? "*" : ""}`).join(";");
}

export function rang(s: Session, arg: string): void {
  const m = /^\s*(\d{1,15})\s+(\d{1,15})\s*$/.exec(arg);
  if (!m) {
    s.hashRange = null;
    s.reply(501, "Syntax error: RANG start end");
    return;
  }
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (start === 1 && end === 0) {
    s.hashRange = null;
    s.reply(350, "Range reset; the whole file is selected");
    return;
  }
  if (start > end) {
    s.hashRange = null;
    s.reply(501, "RANG start is past its end; range reset");
    return;
  }
  s.hashRange = { start, end };
  s.restOffset = 0;
  s.reply(350, `Restarting at ${start}. Ending at ${end}`);
}

/** Takes the pending RANG, if any (it applies to one command). */
export function takeRange(s: Session): { start: number; end: number } | null {
  const r = s.hashRange;
  s.hashRange = null;
  return r;
}

export async function hash(s: Session, arg: string): Promise<void> {
  const range = takeRange(s);
  const target = s.vpath(arg);
  const st = await s.storage.stat(target);
  if (st.type === "dir") {
    s.reply(553, "HASH of a directory is not defined");
    return;
  }
  if (st.type !== "file") throw new MyftpError("denied", "Not a regular file");
  if (s.server.hashPool.queued >= MAX_QUEUED_HASHES) {
    s.reply(450, "Hashing queue is full; try again later");
    return;
  }
  const start = range ? range.start : 0;
  if (range && start >= st.size) {
    s.reply(554, `RANG start ${start} is past the end of the file (${st.size} bytes)`);
    return;
  }
  const last = range ? Math.min(range.end, st.size - 1) : st.size - 1;
  // The worker reads the file opened here, where the path was checked: a task may wait in the pool's queue, and by
  // then the path may lead elsewhere (a directory renamed away and one holding a link to the outside put in its place).
  const opened = await s.storage.openRead(target);
  const algorithm = s.hashAlgorithm;
  let result;
  try {
    // Queued as the user's: the workers take the users' tasks in turn, so one user's many sessions hashing large
    // files cannot keep another user's HASH waiting behind all of them.
    result = await s.server.hashPool.run({ path: opened.diskPath, fd: opened.fd, algorithm, start, end: last }, s.lifetime, s.user?.name ?? "");
  } finally {
    await opened.handle.close().catch(() => undefined);
  }
  if (s.isClosed) return;
  const shownEnd = result.bytes > 0 ? start + result.bytes - 1 : start;
  s.reply(213, `${algorithm} ${start}-${shownEnd} ${result.digest} ${arg}`);
}
