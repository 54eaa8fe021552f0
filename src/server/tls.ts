// FTPS (RFC 4217): the control connection upgraded by AUTH TLS or secured from the start on the implicit port,
// data connections under PROT P, and the --require-tls policy.
//
// Every TLS socket the server makes (control upgrades, implicit connections, data connections) is built from one
// secure context and attached to one tls.Server that never listens: the server object only carries the session
// cache events. A data connection can therefore resume the TLS session of its control connection, with a TLS 1.3
// ticket (the context's ticket keys) or a TLS 1.2 session id (the cache below), as clients that tie their data
// connections to the control session expect.
//
// With --require-tls-session-reuse each control connection gets a context and a session cache of its own instead
// (a "binding", used again for its data connections): a session, or a ticket, that another control connection got
// cannot be resumed on this one's data connections, so a resumed data connection is one of the client that logged in.

import * as net from "node:net";
import * as tls from "node:tls";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { CommandSpec } from "./commands/table.js";
import type { SessionOptions } from "./context.js";
import { DataConnectionError } from "./data-channel.js";
import type { Session } from "./session.js";

export interface TlsMaterial {
  /** PEM certificate (chain). */
  cert: string | Buffer;
  /** PEM private key. */
  key: string | Buffer;
}

/** TLS 1.2 sessions kept for resumption by session id (TLS 1.3 and ticket-capable clients need none). */
const SESSION_CACHE_MAX = 10_000;
/** Sessions kept per control connection under --require-tls-session-reuse (its own and its data connections'). */
const BOUND_SESSION_CACHE_MAX = 64;
const SESSION_TTL_MS = 2 * 60 * 60 * 1000;
/** Longest a TLS handshake may take on the control connection. */
const CONTROL_HANDSHAKE_MS = 30_000;

/** Verbs that carry credentials: refused on a clear control connection under --require-tls. */
const LOGIN_VERBS = new Set(["USER", "PASS"]);

/** The secure context and the session events (with their cache) a control connection and its data connections use. */
interface Binding {
  context: tls.SecureContext;
  /** Never listens; carries the 'newSession'/'resumeSession' events of the sockets made with this binding. */
  machinery: tls.Server;
}

type SessionCache = Map<string, { data: Buffer; expires: number }>;

export class TlsSupport {
  readonly context: tls.SecureContext;
  private readonly base: tls.SecureContextOptions;
  /** The one binding of every socket, unless --require-tls-session-reuse asks for one per control connection. */
  private readonly shared: Binding;
  /** The binding of each secured control socket (under --require-tls-session-reuse its own). */
  private readonly bindings = new WeakMap<tls.TLSSocket, Binding>();

  constructor(
    material: TlsMaterial,
    private readonly options: SessionOptions,
    private readonly log: Logger,
  ) {
    this.base = { cert: material.cert, key: material.key, minVersion: "TLSv1.2", maxVersion: "TLSv1.3" };
    // Fails here, at start-up, on a bad certificate or a key that does not match it.
    this.context = tls.createSecureContext(this.base);
    this.shared = { context: this.context, machinery: sessionMachinery(new Map(), SESSION_CACHE_MAX) };
  }

  /** The binding for a new control connection: its own under --require-tls-session-reuse, else the shared one. */
  private newBinding(): Binding {
    if (!this.options.requireTlsSessionReuse) return this.shared;
    // A context of its own has ticket keys of its own: TLS 1.3 (and 1.2) tickets from other connections do not open.
    return { context: tls.createSecureContext(this.base), machinery: sessionMachinery(new Map(), BOUND_SESSION_CACHE_MAX) };
  }

  /** Wraps a connected socket as the server side of a TLS connection; resolves after the handshake. */
  handshake(raw: net.Socket, timeoutMs: number, signal?: AbortSignal, binding: Binding = this.shared): Promise<tls.TLSSocket> {
    const sock = new tls.TLSSocket(raw, { isServer: true, secureContext: binding.context, server: binding.machinery });
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error("TLS handshake timed out")), timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        sock.off("secure", onSecure);
        sock.off("error", fail);
        sock.off("close", onClose);
        signal?.removeEventListener("abort", onAbort);
      };
      const fail = (err: Error) => {
        cleanup();
        sock.on("error", () => undefined);
        sock.destroy();
        raw.destroy();
        reject(err);
      };
      const onSecure = () => {
        cleanup();
        resolve(sock);
      };
      const onClose = () => fail(new Error("connection closed during the TLS handshake"));
      const onAbort = () => fail(new Error("aborted during the TLS handshake"));
      sock.once("secure", onSecure);
      sock.once("error", fail);
      sock.once("close", onClose);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * AUTH TLS: sends 234 and replaces the session's socket with the TLS one. Lines the client sent after AUTH in
   * clear are dropped, not run: they could have been injected by someone on the path.
   */
  async upgradeControl(s: Session): Promise<void> {
    const raw = s.socket as net.Socket;
    raw.pause();
    s.detach(raw);
    await new Promise<void>((resolve) => {
      if (raw.destroyed) return resolve();
      raw.write("234 AUTH TLS ok, starting TLS\r\n", () => resolve());
    });
    let secure: tls.TLSSocket;
    const binding = this.newBinding();
    try {
      secure = await this.handshake(raw, CONTROL_HANDSHAKE_MS, undefined, binding);
    } catch (err) {
      s.log.info({ event: "tls-failed", err: (err as Error).message }, "TLS handshake on the control connection failed");
      s.close("TLS handshake failed");
      return;
    }
    this.bindings.set(secure, binding);
    // Only now: lines that followed AUTH in the same packet were still being queued while it ran.
    s.discardInput();
    s.attach(secure);
    s.tlsControl = true;
    // RFC 4217 §4: a successful AUTH resets the data protection state and any half-done login.
    s.pbszSet = false;
    s.protectData = false;
    s.pendingUser = null;
    s.log.info({ event: "tls-control", protocol: secure.getProtocol(), cipher: secure.getCipher().name }, "control connection secured");
  }

  /** PROT P: secures a data connection; with --require-tls-session-reuse it must resume the control session. */
  async secureData(s: Session, raw: net.Socket): Promise<Duplex> {
    let sock: tls.TLSSocket;
    try {
      const binding = this.bindings.get(s.socket as tls.TLSSocket) ?? this.shared;
      sock = await this.handshake(raw, this.options.dataTimeoutMs, s.transfer?.controller.signal, binding);
    } catch (err) {
      s.log.info({ event: "tls-data-failed", err: (err as Error).message }, "TLS handshake on a data connection failed");
      throw new DataConnectionError("TLS negotiation on the data connection failed");
    }
    const reused = sock.isSessionReused();
    if (!reused && this.options.requireTlsSessionReuse) {
      s.log.warn({ event: "tls-data-no-reuse" }, "data connection did not resume the control TLS session");
      sock.destroy();
      throw new DataConnectionError("TLS session reuse required: the data connection must resume the control connection's session");
    }
    s.log.debug({ event: "tls-data", reused, protocol: sock.getProtocol() }, "data connection secured");
    return sock;
  }

  /**
   * Implicit FTPS: a listener whose connections speak TLS from the first byte. Each one is handed to `accept` (bans,
   * per-address limits, the admission queue) as it arrives, with the handshake to run on it.
   */
  implicitListener(accept: (raw: net.Socket, secure: (raw: net.Socket) => Promise<tls.TLSSocket>) => void): net.Server {
    return net.createServer({ noDelay: true }, (raw) => {
      raw.on("error", () => undefined);
      accept(raw, async (r) => {
        const binding = this.newBinding();
        const secure = await this.handshake(r, CONTROL_HANDSHAKE_MS, undefined, binding);
        this.bindings.set(secure, binding);
        return secure;
      });
    });
  }

  /** The --require-tls policy: no credentials on a clear control connection, no data in clear. */
  policy(s: Session, verb: string, spec: CommandSpec): { code: number; text: string } | null {
    if (!this.options.requireTls) return null;
    if (LOGIN_VERBS.has(verb) && !s.tlsControl) {
      return { code: 530, text: "TLS required: send AUTH TLS before logging in" };
    }
    if (spec.transfer && !s.protectData) {
      s.data.reset();
      return { code: 521, text: "Data connections must be protected: send PBSZ 0 and PROT P" };
    }
    return null;
  }
}

/**
 * A tls.Server that never listens, only to carry the TLS 1.2 session-id events of the sockets made with it: new
 * sessions go into `sessions` (at most `max`, the oldest dropped first), and a client offering one of them resumes it.
 */
function sessionMachinery(sessions: SessionCache, max: number): tls.Server {
  const machinery = tls.createServer();
  machinery.on("newSession", (id: Buffer, data: Buffer, done: () => void) => {
    const now = Date.now();
    if (sessions.size >= max) {
      for (const [k, v] of sessions) if (v.expires <= now) sessions.delete(k);
      // Still full: drop the oldest (a Map iterates in insertion order).
      while (sessions.size >= max) sessions.delete(sessions.keys().next().value!);
    }
    sessions.set(id.toString("hex"), { data, expires: now + SESSION_TTL_MS });
    done();
  });
  machinery.on("resumeSession", (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
    const key = id.toString("hex");
    const hit = sessions.get(key);
    if (hit && hit.expires > Date.now()) done(null, hit.data);
    else {
      sessions.delete(key);
      done(null, null);
    }
  });
  return machinery;
}
