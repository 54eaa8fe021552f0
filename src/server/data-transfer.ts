// The life of one transfer command: open the data connection, announce it with 150, secure it under PROT P, move
// the bytes, and finish with exactly one final reply (226 on success, 425/426/451/452/552 on failure). ABOR,
// QUIT and the session's end all stop it through its AbortController, and so does a stall: a transfer that moves
// no byte for the longer of the idle and data timeouts is aborted with 426 (the session itself goes on).

import type { Duplex } from "node:stream";
import { errorReply } from "../core/errors.js";
import type { Session } from "./session.js";
import { DataConnectionError } from "./data-channel.js";
import { closeAfterPeer, ConnectionBroken, stepFor, TransferAborted, type Progress } from "./transfer-io.js";

export interface TransferPlan {
  verb: string;
  /** Virtual path for logs and the 150 text. */
  path: string;
  /** Text after "150 " (e.g. "Opening BINARY mode data connection for /f (10 bytes)"). */
  opening: string;
  /** Text after "226 " for a transfer that moved `bytes`, where it says more than the count (STOU's name). */
  complete?: (bytes: number) => string;
  /** Moves the data; resolves with the bytes moved. */
  run(sock: Duplex, progress: Progress): Promise<number>;
}

export type TransferResult =
  | { ok: true; bytes: number }
  | { ok: false; stage: "connect" | "data"; error: unknown; bytes: number };

/**
 * Runs a transfer. Replies 150 and 226 on success; on failure replies the matching error unless `onFailure`
 * sends its own reply (it returns true then).
 */
export async function runTransfer(
  s: Session,
  plan: TransferPlan,
  onFailure?: (r: Extract<TransferResult, { ok: false }>) => Promise<boolean> | boolean,
): Promise<TransferResult> {
  const controller = new AbortController();
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  const t = {
    verb: plan.verb,
    path: plan.path,
    bytes: 0,
    startedAt: Date.now(),
    controller,
    abortedByClient: false,
    stalled: false,
    done,
  };
  s.transfer = t;
  s.transferStarted();
  let lastMove = Date.now();
  // Counted among the transfers on this event loop until handed to a transfer process.
  let onLoop = true;
  // Every byte has gone; the end waits (a bounded moment) for the client to close its side: no stall.
  let closing = false;
  const progress: Progress = {
    signal: controller.signal,
    onBytes: (n) => {
      t.bytes += n;
      lastMove = Date.now();
      s.touch();
    },
    stepBytes: () => stepFor(s.server.transfersRunning),
    handedOver: () => {
      if (!onLoop) return;
      onLoop = false;
      s.server.transfersRunning--;
    },
    closing: () => {
      closing = true;
    },
  };
  s.server.transfersRunning++;
  let watchdog: NodeJS.Timeout | null = null;
  let result: TransferResult;
  let sock: Duplex | null = null;
  // An upload the server refused (its reply said why): the data connection is closed after the client's side.
  let refused = false;
  try {
    let raw;
    try {
      raw = await s.data.connect(controller.signal);
    } catch (error) {
      result = { ok: false, stage: "connect", error, bytes: 0 };
      await finishFailure(s, plan, result, t.abortedByClient, onFailure);
      return result;
    }
    sock = raw;
    // The 150 goes out in a write of its own, ahead of the final reply: a client that waits for its socket to be
    // readable again after reading the 150 (aria2c) would not see a 226 that came in the same read until it timed out.
    s.reply(150, plan.opening);
    const stallMs = Math.max(s.server.options.idleTimeoutMs, s.server.options.dataTimeoutMs);
    lastMove = Date.now();
    watchdog = setInterval(() => {
      if (closing || Date.now() - lastMove < stallMs) return;
      t.stalled = true;
      controller.abort();
    }, Math.max(25, Math.min(1000, stallMs / 4)));
    watchdog.unref();
    try {
      if (s.protectData) {
        if (!s.server.secureData) throw new DataConnectionError("TLS is not available");
        raw.setNoDelay(true);
        sock = await s.server.secureData(s, raw);
      }
      const bytes = await plan.run(sock, progress);
      result = { ok: true, bytes };
    } catch (error) {
      result = { ok: false, stage: "data", error, bytes: t.bytes };
    }
    if (result.ok) {
      s.reply(226, plan.complete ? plan.complete(result.bytes) : `Transfer complete (${result.bytes} bytes)`);
    } else {
      await finishFailure(s, plan, result, t.abortedByClient, onFailure, t.stalled);
      // Only for a copy on this loop: a transfer process keeps its own descriptor of a connection handed to it, and
      // lingers itself once this copy is closed (transfer-child.ts).
      refused = onLoop && UPLOADS.has(plan.verb) && !t.abortedByClient && !t.stalled && !s.isClosed && !endedByConnection(result.error);
    }
    logTransfer(s, plan, t.startedAt, t.bytes, result);
    return result;
  } finally {
    if (watchdog) clearInterval(watchdog);
    if (sock && refused) closeAfterPeer(sock);
    else sock?.destroy();
    s.data.reset();
    if (onLoop) s.server.transfersRunning--;
    if (s.transfer === t) s.transfer = null;
    release();
  }
}

const UPLOADS = new Set(["STOR", "APPE", "STOU"]);

/** The transfer ended by the data connection itself (ABOR, a cut or reset, no connection): nothing to linger for. */
function endedByConnection(e: unknown): boolean {
  return e instanceof TransferAborted || e instanceof ConnectionBroken || e instanceof DataConnectionError;
}

async function finishFailure(
  s: Session,
  plan: TransferPlan,
  r: Extract<TransferResult, { ok: false }>,
  aborted: boolean,
  onFailure?: (r: Extract<TransferResult, { ok: false }>) => Promise<boolean> | boolean,
  stalled = false,
): Promise<void> {
  if (onFailure && (await onFailure(r))) return;
  if (s.isClosed) return;
  const e = r.error;
  if (stalled) {
    s.reply(426, "Data connection stalled (no data moved); transfer aborted");
  } else if (aborted || e instanceof TransferAborted) {
    s.reply(426, "Connection closed; transfer aborted");
  } else if (e instanceof DataConnectionError) {
    s.reply(425, e.message);
  } else if (e instanceof ConnectionBroken) {
    s.reply(426, "Data connection broken; transfer aborted");
  } else {
    const { code, text } = errorReply(e);
    s.reply(code, text);
  }
  if (r.stage === "connect") logTransfer(s, plan, Date.now(), 0, r);
}

function logTransfer(s: Session, plan: TransferPlan, startedAt: number, bytes: number, r: TransferResult): void {
  const ms = Date.now() - startedAt;
  if (r.ok) {
    s.log.info({ event: "transfer", user: s.user?.name, verb: plan.verb, path: plan.path, bytes, ms, result: "ok" }, "transfer complete");
    return;
  }
  // Why it failed, in the words of the reply the client got (or would have got) and the error's own code.
  const e = r.error as { name?: string; message?: string; code?: string } | undefined;
  s.log.info(
    {
      event: "transfer",
      user: s.user?.name,
      verb: plan.verb,
      path: plan.path,
      bytes,
      ms,
      result: e instanceof Error ? e.name : "error",
      stage: r.stage,
      ...(e?.code !== undefined ? { code: e.code } : {}),
      reason: e?.message ?? String(r.error),
    },
    "transfer failed",
  );
}
