// mirror: make a local tree like a remote one (or, reversed, a remote tree like a local one),
// transferring only files that are missing, differ in size, or are newer on the source side.
import { readdir, rmdir, stat, unlink } from "node:fs/promises";
import { join as joinLocal, posix } from "node:path";
import { makeDirsSync } from "../core/dirs.js";
import { ClientError, toClientError } from "./errors.js";
import { formatBytes } from "./progress.js";
import type { FtpSession, RemoteEntry } from "./session.js";
import { getSegmented, hasSegmentState } from "./segments.js";
import { getFile, putFile, rateLimiter, SEGMENT_STATE_SUFFIX, type TransferOptions } from "./transfer.js";

export interface MirrorOptions extends TransferOptions {
  /** Connections used at once (default 1). */
  readonly parallel: number;
  /** Remove files and directories on the target side that the source does not have. */
  readonly delete?: boolean;
}

export interface MirrorSummary {
  readonly transferred: number;
  readonly bytes: number;
  readonly unchanged: number;
  /** Files and directories removed from the target (--delete). */
  readonly deleted: number;
  /** Files that failed to transfer, and files and directories that failed to delete. */
  readonly failed: number;
  /** Source entries not copied: links and other non-files, and directories deeper than MAX_DEPTH. */
  readonly skipped: number;
}

export interface TreeFile {
  /** Path relative to the tree root, "/"-separated. */
  readonly rel: string;
  readonly size: number;
  readonly mtime: Date | undefined;
  /**
   * A local file that a killed `get -n` left unfinished (its LOCAL.myftp-segments record is beside it): full size,
   * with ranges still missing. Its size and time say nothing about its content.
   */
  readonly unfinished?: boolean;
}

interface Tree {
  readonly files: Map<string, TreeFile>;
  readonly dirs: string[];
  /** What the walk left out, each with why: a link, another kind of entry, a directory too deep. */
  readonly skipped: { rel: string; why: string }[];
}

/** Times within this many milliseconds are equal: listings carry whole seconds. */
const TIME_SLACK_MS = 1500;

/** Should the source file be copied over the target (undefined: target missing)? */
export function needsTransfer(source: TreeFile, target: TreeFile | undefined): boolean {
  if (!target) return true;
  if (target.unfinished) return true;
  if (source.size !== target.size) return true;
  if (source.mtime && target.mtime) return source.mtime.getTime() > target.mtime.getTime() + TIME_SLACK_MS;
  return false;
}

const MAX_DEPTH = 64;
const MAX_ENTRIES = 1_000_000;

export async function walkRemote(session: FtpSession, root: string): Promise<Tree> {
  const files = new Map<string, TreeFile>();
  const dirs: string[] = [];
  const skipped: Tree["skipped"] = [];
  const pending: { rel: string; depth: number }[] = [{ rel: "", depth: 0 }];
  let count = 0;
  while (pending.length > 0) {
    const { rel, depth } = pending.shift()!;
    const dir = rel === "" ? root : posix.join(root, rel);
    const entries: RemoteEntry[] = await session.list(dir);
    for (const e of entries) {
      if (++count > MAX_ENTRIES) throw new ClientError("failed", `mirror: more than ${MAX_ENTRIES} entries under ${root || "."}`);
      const childRel = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.type === "dir") {
        dirs.push(childRel);
        if (depth + 1 < MAX_DEPTH) pending.push({ rel: childRel, depth: depth + 1 });
        else skipped.push({ rel: childRel, why: `its contents are deeper than ${MAX_DEPTH} levels` });
      } else if (e.type === "file") {
        let mtime = e.mtime;
        if (!mtime && session.features.mdtm) mtime = await session.mtime(posix.join(root, childRel));
        files.set(childRel, { rel: childRel, size: e.size, mtime });
      } else skipped.push({ rel: childRel, why: e.type === "link" ? "a link" : "not a file or directory" });
    }
  }
  return { files, dirs, skipped };
}

export async function walkLocal(root: string): Promise<Tree> {
  const files = new Map<string, TreeFile>();
  const dirs: string[] = [];
  const skipped: Tree["skipped"] = [];
  const pending: { rel: string; depth: number }[] = [{ rel: "", depth: 0 }];
  let count = 0;
  while (pending.length > 0) {
    const { rel, depth } = pending.shift()!;
    const entries = await readdir(rel === "" ? root : joinLocal(root, rel), { withFileTypes: true });
    // The names of segmented-download records here, made once per directory: looked up once per file.
    let records: Set<string> | undefined;
    for (const e of entries) {
      if (++count > MAX_ENTRIES) throw new ClientError("failed", `mirror: more than ${MAX_ENTRIES} entries under ${root}`);
      const childRel = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        dirs.push(childRel);
        if (depth + 1 < MAX_DEPTH) pending.push({ rel: childRel, depth: depth + 1 });
        else skipped.push({ rel: childRel, why: `its contents are deeper than ${MAX_DEPTH} levels` });
      } else if (e.isFile()) {
        if (/\.myftp-(segments|mismatch)(\.tmp)?$/.test(e.name)) continue;
        const full = joinLocal(root, childRel);
        const st = await stat(full);
        records ??= new Set(entries.filter((o) => o.name.endsWith(SEGMENT_STATE_SUFFIX)).map((o) => o.name));
        const unfinished = records.has(e.name + SEGMENT_STATE_SUFFIX) && (await hasSegmentState(full));
        files.set(childRel, { rel: childRel, size: st.size, mtime: st.mtime, ...(unfinished ? { unfinished } : {}) });
      } else skipped.push({ rel: childRel, why: e.isSymbolicLink() ? "a link" : "not a file or directory" });
    }
  }
  return { files, dirs, skipped };
}

/** Run jobs over `sessions` connections at once; each job gets a connection of its own. */
async function runParallel<T>(sessions: FtpSession[], jobs: T[], run: (s: FtpSession, job: T) => Promise<void>): Promise<void> {
  const queue = [...jobs];
  await Promise.all(
    sessions.map(async (s) => {
      // After Ctrl-C (which aborts the first session and its clones) no further job starts.
      for (let job = queue.shift(); job !== undefined && !sessions[0]!.aborted; job = queue.shift()) await run(s, job);
    }),
  );
}

async function openExtra(session: FtpSession, parallel: number, jobs: number, opts: MirrorOptions): Promise<FtpSession[]> {
  const sessions = [session];
  const want = Math.min(Math.max(1, parallel), Math.max(1, jobs), 16);
  for (let i = 1; i < want; i++) {
    try {
      sessions.push(await session.clone());
    } catch (err) {
      opts.note(`mirror: could not open connection ${i + 1} (${toClientError(err).message}); going on with ${sessions.length}`);
      break;
    }
  }
  return sessions;
}

function summaryLine(verb: string, s: MirrorSummary): string {
  const del = s.deleted > 0 ? `, ${s.deleted} deleted` : "";
  const fail = s.failed > 0 ? `, ${s.failed} failed` : "";
  const skip = s.skipped > 0 ? `, ${s.skipped} skipped` : "";
  return `${verb}: ${s.transferred} transferred (${formatBytes(s.bytes)}), ${s.unchanged} unchanged${del}${fail}${skip}`;
}

/** Names what the source walk left out, the first few of them. */
const SKIPS_NAMED = 10;
function noteSkipped(verb: string, skipped: Tree["skipped"], opts: Pick<MirrorOptions, "note">): void {
  for (const s of skipped.slice(0, SKIPS_NAMED)) opts.note(`${verb}: skipped ${s.rel} (${s.why})`);
  if (skipped.length > SKIPS_NAMED) opts.note(`${verb}: skipped ${skipped.length - SKIPS_NAMED} more`);
}

/**
 * Moves every job over up to `opts.parallel` sessions. A failed file is reported and counted, and the others go on;
 * the first failure is returned for the summary.
 */
async function transferAll<F>(
  session: FtpSession,
  jobs: F[],
  opts: MirrorOptions,
  move: (s: FtpSession, job: F, opts: MirrorOptions) => Promise<{ transferred: number }>,
): Promise<{ transferred: number; bytes: number; failed: number; firstError: ClientError | undefined }> {
  let transferred = 0;
  let bytes = 0;
  let failed = 0;
  let firstError: ClientError | undefined;
  // Resuming a changed file is only safe when the server can prove the existing part by hash.
  const resume = opts.resume && session.hasRangedHash;
  // --limit-rate is for the whole command: the files moving at once share one limiter.
  const limiter = rateLimiter(opts);
  const sessions = await openExtra(session, opts.parallel, jobs.length, opts);
  try {
    await runParallel(sessions, jobs, async (s, job) => {
      try {
        const r = await move(s, job, { ...opts, resume, limiter });
        transferred++;
        bytes += r.transferred;
      } catch (err) {
        failed++;
        const e = toClientError(err);
        firstError ??= e;
        if (!session.aborted) opts.note(`mirror: ${e.message}`);
      }
    });
  } finally {
    for (const s of sessions.slice(1)) s.close();
  }
  // Stopped with Ctrl-C: the files not reached stay as they are, and nothing is deleted.
  if (session.aborted) throw new ClientError("failed", `interrupted after ${transferred} of ${jobs.length} files`);
  return { transferred, bytes, failed, firstError };
}

interface Deleted {
  readonly deleted: number;
  readonly failed: number;
  readonly firstError: ClientError | undefined;
}

const NOTHING_DELETED: Deleted = { deleted: 0, failed: 0, firstError: undefined };

/** The directory holding `rel` ("" for the tree root). */
function parentOf(rel: string): string {
  const dir = posix.dirname(rel);
  return dir === "." ? "" : dir;
}

/** Adds `rel` and every directory above it (up to the tree root) to `set`. */
function markWithParents(set: Set<string>, rel: string): void {
  for (let at = rel; at !== "" && !set.has(at); at = parentOf(at)) set.add(at);
}

/**
 * --delete: removes the target's files that the source does not have, then its directories that the source does not
 * have, deepest first. A directory goes only when everything the target walk found in it was deleted here: one that
 * still holds a file kept or failed to delete, a link or other entry, a directory kept, contents deeper than the walk
 * went, or anything a transfer wrote, stays (and is named). `dir` returns false for a directory found not empty.
 * Runs only after every transfer ended without Ctrl-C and both walks succeeded (the callers throw before otherwise),
 * and stops at a Ctrl-C during it.
 */
async function deleteExtra(
  verb: string,
  session: FtpSession,
  source: Tree,
  target: Tree,
  opts: Pick<MirrorOptions, "note">,
  remove: { file(rel: string): Promise<void>; dir(rel: string): Promise<boolean> },
): Promise<Deleted> {
  let deleted = 0;
  let failed = 0;
  let firstError: ClientError | undefined;
  const interrupted = () => new ClientError("failed", `interrupted after deleting ${deleted}`);
  const fail = (what: string, err: unknown) => {
    const e = toClientError(err);
    failed++;
    firstError ??= e;
    opts.note(`${verb}: could not delete ${what}: ${e.message}`);
  };
  // Directories that hold (or are) something that stays.
  const occupied = new Set<string>();
  for (const f of source.files.values()) markWithParents(occupied, parentOf(f.rel));
  for (const d of source.dirs) markWithParents(occupied, d);
  for (const s of target.skipped) markWithParents(occupied, s.rel);
  for (const f of target.files.values()) {
    if (source.files.has(f.rel)) {
      markWithParents(occupied, parentOf(f.rel));
      continue;
    }
    if (session.aborted) throw interrupted();
    try {
      await remove.file(f.rel);
    } catch (err) {
      if (session.aborted) throw interrupted();
      fail(f.rel, err);
      markWithParents(occupied, parentOf(f.rel));
      continue;
    }
    deleted++;
    opts.note(`${verb}: deleted ${f.rel}`);
  }
  const sourceDirs = new Set(source.dirs);
  const depth = (rel: string) => rel.split("/").length;
  const extra = target.dirs.filter((d) => !sourceDirs.has(d)).sort((a, b) => depth(b) - depth(a) || (a < b ? -1 : a > b ? 1 : 0));
  for (const d of extra) {
    if (occupied.has(d)) {
      opts.note(`${verb}: kept ${d}/ (not empty)`);
      markWithParents(occupied, d);
      continue;
    }
    if (session.aborted) throw interrupted();
    let gone: boolean;
    try {
      gone = await remove.dir(d);
    } catch (err) {
      if (session.aborted) throw interrupted();
      fail(`${d}/`, err);
      markWithParents(occupied, d);
      continue;
    }
    if (!gone) {
      opts.note(`${verb}: kept ${d}/ (not empty)`);
      markWithParents(occupied, d);
      continue;
    }
    deleted++;
    opts.note(`${verb}: deleted ${d}/`);
  }
  return { deleted, failed, firstError };
}

/** Remote tree → local directory. */
export async function mirrorDown(session: FtpSession, remoteDir: string, localDir: string, opts: MirrorOptions): Promise<MirrorSummary> {
  // The source must be a directory: a missing one (listed as empty by some servers) or a file (whose listing is that
  // file) would otherwise make --delete remove everything in the target.
  const remote = await session
    .assertDirectory(remoteDir)
    .then(() => walkRemote(session, remoteDir))
    .catch((err) => {
      throw toClientError(err, { action: `mirror ${remoteDir || "."}` });
    });
  makeDirsSync(localDir);
  for (const d of remote.dirs) makeDirsSync(joinLocal(localDir, d));
  const local = await walkLocal(localDir);
  const jobs = [...remote.files.values()].filter((f) => needsTransfer(f, local.files.get(f.rel)));
  const { transferred, bytes, failed, firstError } = await transferAll(session, jobs, opts, (s, f, o) => {
    const remote = posix.join(remoteDir, f.rel);
    const target = joinLocal(localDir, f.rel);
    // An unfinished segmented download continues its missing ranges (over this job's one connection), as `get` does.
    return local.files.get(f.rel)?.unfinished && o.resume ? getSegmented(s, remote, target, 1, o) : getFile(s, remote, target, o);
  });
  const removed = opts.delete
    ? await deleteExtra("mirror", session, remote, local, opts, {
        file: (rel) => unlink(joinLocal(localDir, rel)),
        // rmdir(2) removes an empty directory only: one that holds anything the walk did not see is kept.
        dir: (rel) =>
          rmdir(joinLocal(localDir, rel)).then(
            () => true,
            (err: NodeJS.ErrnoException) => {
              if (err.code === "ENOTEMPTY" || err.code === "EEXIST") return false;
              throw err;
            },
          ),
      })
    : NOTHING_DELETED;
  noteSkipped("mirror", remote.skipped, opts);
  const all = failed + removed.failed;
  const summary = { transferred, bytes, unchanged: remote.files.size - jobs.length, deleted: removed.deleted, failed: all, skipped: remote.skipped.length };
  opts.note(summaryLine("mirror", summary));
  const first = firstError ?? removed.firstError;
  if (first) throw new ClientError(first.kind, `mirror: ${all} failed; first: ${first.message}`);
  return summary;
}

/** Local directory → remote tree. */
export async function mirrorUp(session: FtpSession, localDir: string, remoteDir: string, opts: MirrorOptions): Promise<MirrorSummary> {
  const local = await walkLocal(localDir).catch((err) => {
    throw toClientError(err, { action: `mirror --reverse ${localDir}` });
  });
  if (remoteDir !== "") await ensureRemoteDir(session, remoteDir);
  let remote: Tree;
  try {
    remote = await walkRemote(session, remoteDir);
  } catch (err) {
    throw toClientError(err, { action: `mirror --reverse to ${remoteDir || "."}` });
  }
  for (const d of local.dirs) {
    if (!remote.dirs.includes(d)) await ensureRemoteDir(session, posix.join(remoteDir, d));
  }
  // A local file a segmented download left unfinished has holes where ranges are missing: never sent as it is (nor
  // taken as gone from the source by --delete).
  const unfinished = [...local.files.values()].filter((f) => f.unfinished);
  for (const f of unfinished) local.skipped.push({ rel: f.rel, why: `an unfinished segmented download: ${f.rel}${SEGMENT_STATE_SUFFIX} is beside it` });
  const jobs = [...local.files.values()].filter((f) => !f.unfinished && needsTransfer(f, remote.files.get(f.rel)));
  const { transferred, bytes, failed, firstError } = await transferAll(session, jobs, opts, (s, f, o) =>
    putFile(s, joinLocal(localDir, f.rel), posix.join(remoteDir, f.rel), o),
  );
  const removed = opts.delete
    ? await deleteExtra("mirror --reverse", session, local, remote, opts, {
        file: async (rel) => void (await session.client.remove(posix.join(remoteDir, rel))),
        // RMD removes an empty directory only (myftpd answers 550 "Directory not empty" otherwise); it is sent only for
        // a directory whose every entry listed was deleted.
        dir: async (rel) => {
          await session.client.removeEmptyDir(posix.join(remoteDir, rel));
          return true;
        },
      })
    : NOTHING_DELETED;
  noteSkipped("mirror --reverse", local.skipped, opts);
  const all = failed + removed.failed;
  const summary = { transferred, bytes, unchanged: local.files.size - jobs.length - unfinished.length, deleted: removed.deleted, failed: all, skipped: local.skipped.length };
  opts.note(summaryLine("mirror --reverse", summary));
  const first = firstError ?? removed.firstError;
  if (first) throw new ClientError(first.kind, `mirror --reverse: ${all} failed; first: ${first.message}`);
  return summary;
}

/** Create a remote directory and its parents as needed (MKD each step; "exists" replies are fine). */
export async function ensureRemoteDir(session: FtpSession, dir: string): Promise<void> {
  const absolute = dir.startsWith("/");
  const parts = dir.split("/").filter((p) => p !== "" && p !== ".");
  let at = absolute ? "/" : "";
  for (const p of parts) {
    at = at === "" ? p : posix.join(at, p);
    const res = await session.sendIgnoringError(`MKD ${at}`);
    if (res.code >= 400) {
      // Already there is fine; anything else shows on the next step or transfer.
      const probe = await session.sendIgnoringError(`CWD ${at}`);
      if (probe.code >= 400) throw toClientError(Object.assign(new Error(res.message), { code: res.code }), { action: `mkdir ${at}` });
      await session.client.cd(session.cwd);
    }
  }
}
