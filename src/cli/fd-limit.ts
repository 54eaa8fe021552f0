// The file descriptors the server's limits may make it hold, against the number the system lets the process open.
//
// A server out of descriptors cannot even refuse a connection properly: the event loop accepts and closes it at
// once (there is no descriptor left to write a 421 through), and opens of files and data connections fail. The
// session and queue limits bound what the server holds, so a start whose limits can outgrow the descriptor limit
// says so, with the figure it would need. Node raises the soft limit to the hard one as it starts, so what counts
// is the hard limit (`ulimit -Hn`, a systemd unit's LimitNOFILE=).

import { readFileSync } from "node:fs";

/** The process's own: standard streams, the user store and its journal, the event loop, log, worker threads, transfer processes. */
export const FDS_BASE = 64;
/**
 * A running session at its busiest: control connection, passive listener, data connection, and up to two files (a
 * REST inside a file copies the old part to a new file while both are open).
 */
export const FDS_PER_SESSION = 5;
/** A connection waiting in the admission queue holds its control connection only. */
export const FDS_PER_QUEUED = 1;

/** The soft limit on open files from /proc's text for a process ("Max open files  SOFT  HARD  files"); null if absent. */
export function parseOpenFilesLimit(limits: string): number | null {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) return null;
  if (m[1] === "unlimited") return Number.POSITIVE_INFINITY;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** This process's soft limit on open files, where the system shows it (Linux); null elsewhere. */
export function openFilesLimit(): number | null {
  try {
    return parseOpenFilesLimit(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return null;
  }
}

/** Descriptors the server may hold with every session slot busy and the queue full. */
export function descriptorsNeeded(limits: { maxSessions: number; maxQueue: number }): number {
  return FDS_BASE + limits.maxSessions * FDS_PER_SESSION + limits.maxQueue * FDS_PER_QUEUED;
}

/** What to tell the admin when the limits can need more descriptors than `available`; null when they fit. */
export function descriptorShortfall(limits: { maxSessions: number; maxQueue: number }, available: number | null): string | null {
  if (available === null) return null;
  const needed = descriptorsNeeded(limits);
  if (needed <= available) return null;
  // The most sessions that fit beside a full queue.
  const fit = Math.floor((available - FDS_BASE - limits.maxQueue * FDS_PER_QUEUED) / FDS_PER_SESSION);
  const lower = fit >= 1 ? `lower --max-sessions to ${fit}` : "lower --max-queue and --max-sessions";
  return (
    `--max-sessions ${limits.maxSessions} with --max-queue ${limits.maxQueue} may need ${needed} file descriptors, ` +
    `but this process may open ${available} (ulimit -n); when they run out, new connections are closed without a reply ` +
    `and transfers fail. Raise the limit (ulimit -Hn as root, LimitNOFILE= in a systemd unit) or ${lower}`
  );
}
