// What a session needs from the server that runs it: options, shared services and cross-cutting policy.

import type { SecureContext } from "node:tls";
import type { Logger } from "pino";
import type { QuotaManager } from "../core/quota.js";
import type { UserRecord, UserStore } from "../users/store.js";
import type { WorkerPool } from "../workers/pool.js";
import type { HashRequest, HashResult } from "../workers/hash-types.js";
import type { CommandSpec } from "./commands/table.js";
import type { PassivePorts } from "./passive-ports.js";
import type { Session } from "./session.js";
import type { TransferProcesses } from "./transfer-processes.js";

export interface SessionOptions {
  greeting: string;
  idleTimeoutMs: number;
  /** How long a session may go on without logging in, whatever it sends meanwhile (0 = no limit). */
  loginTimeoutMs: number;
  /** How long a transfer waits for its data connection. */
  dataTimeoutMs: number;
  /** Address announced in PASV replies instead of the control connection's local address. */
  pasvAddress: string | null;
  maxSessionsPerUser: number;
  /** Delay before the reply to a failed login. */
  loginFailureDelayMs: number;
  requireTls: boolean;
  requireTlsSessionReuse: boolean;
  /** The server's own files and directories (data directory, TLS key and certificate), real paths: no home may hold one. */
  protectedPaths: readonly string[];
}

export interface ServerContext {
  readonly options: SessionOptions;
  readonly log: Logger;
  readonly passivePorts: PassivePorts;
  readonly users: UserStore;
  readonly quota: QuotaManager;
  readonly hashPool: WorkerPool<HashRequest, HashResult>;
  /** Processes that copy binary file data off the control thread. */
  readonly transfers: TransferProcesses;
  /** TLS material for AUTH TLS and PROT P; null when the server has no certificate. */
  readonly tls: { context: SecureContext } | null;
  /** Checks a password; resolves the user on success. Applies the login defender's delays and bans. */
  authenticate(session: Session, name: string, password: string): Promise<UserRecord | null>;
  /** Transfers whose data moves on this process's event loop (not in a transfer process). */
  transfersRunning: number;
  /** Number of logged-in sessions of a user. */
  sessionsOf(name: string): number;
  /** Registers a session as logged in as a user (the count drops when the session closes). */
  registerLogin(session: Session, name: string): void;
  /** Cross-cutting refusals applied before a handler runs (e.g. TLS required); null lets the command run. */
  policy?(session: Session, verb: string, spec: CommandSpec): { code: number; text: string } | null;
  /** Wraps a data socket in TLS for PROT P; resolves once the handshake is done. */
  secureData?(session: Session, sock: import("node:net").Socket): Promise<import("node:stream").Duplex>;
  /** Upgrades the control connection after "234" to AUTH TLS. */
  upgradeControl?(session: Session): Promise<void>;
}
