// One logged-in control connection with what the server said it can do (RFC 2389 FEAT), and the
// commands the protocol library has no method for: HASH, RANG, AVBL, SITE QUOTA.
import { readFile } from "node:fs/promises";
import { posix, sep } from "node:path";
import type { Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { downloadTo as ftpDownload, parseEpsvResponse, parsePasvResponse, uploadFrom as ftpUpload } from "basic-ftp/dist/transfer.js";
import { ProgressTracker } from "basic-ftp/dist/ProgressTracker.js";
import { parseLine as parseMlsxLine } from "basic-ftp/dist/parseListMLSD.js";
import { Client, FTPError, type FileInfo, type FTPContext } from "basic-ftp";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { ClientError, toClientError, isFtpReplyError, isTransientReply, replyText } from "./errors.js";
import { parseHashFeature, parseHashReply, pickAlgorithm, type HashAlgorithm, type HashReply } from "./hashing.js";
import { endpointOf, type FtpTarget, type TlsMode } from "./url.js";

export interface ConnectOptions {
  /** Explicit TLS (AUTH TLS) for ftp:// URLs. */
  readonly tls?: boolean;
  /** Accept any server certificate. */
  readonly insecure?: boolean;
  /** PEM file with the certificate authority (or the self-signed certificate) to trust. */
  readonly caFile?: string;
  /** Control and data inactivity timeout. */
  readonly timeoutMs?: number;
  /** Log the control connection to stderr. */
  readonly debug?: boolean;
}

export interface Features {
  readonly hash: readonly HashAlgorithm[];
  readonly rang: boolean;
  readonly restStream: boolean;
  readonly size: boolean;
  readonly mdtm: boolean;
  readonly mlst: boolean;
  readonly mfmt: boolean;
  readonly avbl: boolean;
  readonly utf8: boolean;
  readonly raw: ReadonlyMap<string, string>;
}

export function parseFeatures(raw: ReadonlyMap<string, string>): Features {
  const has = (k: string) => raw.has(k) || raw.has(k.toLowerCase());
  const hashValue = raw.get("HASH");
  const hash = hashValue === undefined ? [] : parseHashFeature(hashValue).algorithms;
  return {
    hash,
    rang: has("RANG"),
    restStream: raw.get("REST")?.toUpperCase().startsWith("STREAM") ?? false,
    size: has("SIZE"),
    mdtm: has("MDTM"),
    mlst: has("MLST"),
    mfmt: has("MFMT"),
    avbl: has("AVBL"),
    utf8: has("UTF8"),
    raw,
  };
}

/** How long a data connection's failure waits for the control connection's reply to the same command. */
const DATA_ERROR_GRACE_MS = 500;

/** The parts of the protocol library's connection state that preferControlReplies works with. */
interface ContextInternals {
  _task: unknown;
  _setupDefaultErrorHandlers(socket: Socket, identifier: string): void;
  _passToHandler(response: Error | { code: number }): void;
  closeWithError(err: Error): void;
}

/** Plain data connections that get TLS once the server answers their transfer command. */
const pendingTls = new WeakSet<Socket>();

interface DataInternals {
  _dataSocket: Socket | undefined;
  _newSocket(): Socket;
  ipFamily: number | undefined;
  tlsOptions: ConnectionOptions;
  tlsSessionStore: Buffer | undefined;
}

/**
 * Passive mode (EPSV, then PASV at the control connection's address) for a session under TLS: the data connection
 * is opened in clear and gets its TLS handshake only after the server answered the transfer command with 150/125
 * (upgradeDataSocket), in the order of RFC 4217's examples. Some servers reset a data connection whose handshake
 * comes before the command.
 */
export function deferredTlsTransfer(): (ftp: FTPContext) => Promise<{ code: number; message: string }> {
  let usePasv = false;
  const open = async (ftp: FTPContext, host: string, port: number) => {
    const internals = ftp as unknown as DataInternals;
    const raw = internals._newSocket();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        err.message = `Can't open data connection in passive mode: ${err.message}`;
        reject(err);
      };
      const onTimeout = () => {
        raw.destroy();
        reject(new Error(`Timeout when trying to open data connection to ${host}:${port}`));
      };
      raw.setTimeout(ftp.timeout);
      raw.once("error", onError);
      raw.once("timeout", onTimeout);
      raw.connect({ port, host, family: internals.ipFamily }, () => {
        raw.setTimeout(0);
        raw.removeListener("error", onError);
        raw.removeListener("timeout", onTimeout);
        pendingTls.add(raw);
        ftp.dataSocket = raw;
        resolve();
      });
    });
  };
  return async (ftp) => {
    if (!usePasv) {
      try {
        const res = await ftp.request("EPSV");
        await open(ftp, ftp.socket.remoteAddress ?? "", parseEpsvResponse(res.message));
        return res;
      } catch (err) {
        if (!(err instanceof FTPError)) throw err;
        usePasv = true;
      }
    }
    const res = await ftp.request("PASV");
    await open(ftp, ftp.socket.remoteAddress ?? "", parsePasvResponse(res.message).port);
    return res;
  };
}

/** Start TLS on a data connection opened in clear by deferredTlsTransfer, reusing the control connection's session. */
function upgradeDataSocket(ftp: FTPContext, handlersOf: WeakMap<Socket, () => void>): TLSSocket | undefined {
  const internals = ftp as unknown as DataInternals;
  const raw = internals._dataSocket;
  if (raw === undefined || !pendingTls.has(raw)) return undefined;
  pendingTls.delete(raw);
  handlersOf.get(raw)?.();
  // Hand the socket over without the setter closing it.
  internals._dataSocket = undefined;
  const secure = tlsConnect({
    ...internals.tlsOptions,
    socket: raw,
    session: internals.tlsSessionStore ?? (ftp.socket as TLSSocket).getSession(),
  });
  secure.on("session", (session: Buffer) => {
    internals.tlsSessionStore = session;
  });
  ftp.dataSocket = secure;
  return secure;
}

/** The final reply that follows a failed data connection, where the server sends one. */
export interface ReplyWatch {
  /** Whether FtpSession.transfer runs a transfer now (a data failure then waits for the reply, even after the library gave up the command). */
  transferring: boolean;
  /** Errors of data connections, as they reach the streams piped to or from them. */
  readonly dataErrors: WeakSet<Error>;
  /** A final reply (2xx-5xx) that arrives within `ms` outside any command, or one that already did since the failure. */
  lateReply(ms: number): Promise<{ code: number; message: string } | undefined>;
}

/**
 * A server refusing a data command (550 for a missing directory, 450 for a busy file) may drop the pending data
 * connection as it answers, and a server refusing an upload midway (552, quota) may reset the data connection and
 * then say why. The reset often arrives before the reply, and the protocol library would end the whole session with
 * "connection reset". So a data connection that fails while its command awaits the final reply keeps the control
 * connection for a moment: if a final reply comes meanwhile, it is the outcome (FtpSession.transfer reads it after
 * the transfer failed); if not, the session ends with the data error as before. Failures outside a command, or after
 * its final reply, end the session at once, as they always did.
 */
function preferControlReplies(ftp: FTPContext): ReplyWatch {
  const ctx = ftp as unknown as ContextInternals;
  const setupHandlers = ctx._setupDefaultErrorHandlers.bind(ftp);
  const passToHandler = ctx._passToHandler.bind(ftp);
  let answered: unknown;
  /** Final replies seen so far, and the last that came while no command waited for it. */
  let finals = 0;
  let orphan: { code: number; message: string; at: number } | undefined;
  let failedAt = -1;
  let waiter: ((reply: { code: number; message: string }) => void) | undefined;
  /** How to take this context's handlers off a data socket again. */
  const handlersOf = new WeakMap<Socket, () => void>();
  ctx._passToHandler = (response) => {
    const code = (response as { code?: unknown }).code;
    // RFC 4217: the TLS handshake on a data connection follows the server's 150/125 to the transfer command.
    if ((code === 150 || code === 125) && ctx._task !== undefined) {
      const secure = upgradeDataSocket(ftp, handlersOf);
      if (secure) {
        // The transfer starts once the handshake is done: an upload with nothing to send would otherwise end the
        // connection in the middle of it, and the server would see the end before the client's Finished. (A failed
        // handshake ends the transfer through the data socket's error handler.)
        const task = ctx._task;
        secure.once("secureConnect", () => {
          if (ctx._task === task) passToHandler(response);
        });
        return;
      }
    }
    if (typeof code === "number" && code >= 200 && code < 600) {
      finals++;
      if (ctx._task !== undefined) answered = ctx._task;
      else {
        const reply = { code, message: String((response as { message?: unknown }).message ?? "") };
        if (waiter) {
          const w = waiter;
          waiter = undefined;
          w(reply);
        } else orphan = { ...reply, at: finals };
      }
    }
    passToHandler(response);
  };
  ctx._setupDefaultErrorHandlers = (socket, identifier) => {
    if (identifier !== "data socket") {
      setupHandlers(socket, identifier);
      return;
    }
    const fail = (err: Error) => {
      watch.dataErrors.add(err);
      const task = ctx._task;
      if (task === undefined ? !watch.transferring : answered === task) {
        ftp.closeWithError(err);
        return;
      }
      const seen = finals;
      failedAt = seen;
      setTimeout(() => {
        if (finals === seen) ftp.closeWithError(err);
      }, DATA_ERROR_GRACE_MS);
    };
    const onError = (err: Error) => {
      err.message += ` (${identifier})`;
      fail(err);
    };
    const onClose = (hadError: boolean) => {
      if (hadError) fail(new Error(`Socket closed due to transmission error (${identifier})`));
    };
    const onTimeout = () => {
      socket.destroy();
      ftp.closeWithError(new Error(`Timeout (${identifier})`));
    };
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.once("timeout", onTimeout);
    handlersOf.set(socket, () => {
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
      socket.removeListener("timeout", onTimeout);
    });
  };
  const watch: ReplyWatch = {
    transferring: false,
    dataErrors: new WeakSet(),
    async lateReply(ms) {
      if (orphan !== undefined && failedAt >= 0 && orphan.at > failedAt) {
        const { code, message } = orphan;
        orphan = undefined;
        return { code, message };
      }
      if (ftp.closed) return undefined;
      return await new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiter = undefined;
          resolve(undefined);
        }, ms);
        waiter = (reply) => {
          clearTimeout(timer);
          resolve(reply);
        };
      });
    },
  };
  return watch;
}

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** A remote directory entry, independent of the protocol library's types. */
export interface RemoteEntry {
  readonly name: string;
  readonly type: "file" | "dir" | "link" | "other";
  readonly size: number;
  readonly mtime: Date | undefined;
  readonly rawDate: string;
}

/** A name that, joined onto a local directory, names an entry directly inside it. */
export function isPlainName(name: string): boolean {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) return false;
  // Windows also splits at "\\", reads ":" as a drive and drops trailing dots and spaces ("..  " is "..").
  return sep !== "\\" || (!/[\\:]/.test(name) && !/^[. ]+$/.test(name));
}

export function toRemoteEntry(f: FileInfo): RemoteEntry {
  const type = f.isDirectory ? "dir" : f.isSymbolicLink ? "link" : f.isFile ? "file" : "other";
  return { name: f.name, type, size: f.size, mtime: f.modifiedAt, rawDate: f.rawModifiedAt };
}

export class FtpSession {
  readonly target: FtpTarget;
  readonly options: ConnectOptions;
  readonly credentials: Credentials;
  client: Client;
  features: Features = parseFeatures(new Map());
  hashAlgorithm: HashAlgorithm | undefined;
  /** Current remote directory, restored after a reconnect. */
  cwd = "/";
  private selectedHash: HashAlgorithm | undefined;
  /** Set by abort() (Ctrl-C in the shell): no more retries, and clones stop too. */
  aborted = false;
  private readonly clones = new Set<FtpSession>();
  private rangWorks = true;
  private replies: ReplyWatch | undefined;
  /** MLSD until the server says it has no such command. */
  private mlsdWorks = true;
  /** LIST -a (hidden files too) until the server refuses it where plain LIST works. */
  private listA = true;
  /** Notes said once per run ("server has no HASH …"), shared with clones. */
  readonly saidOnce: Set<string>;

  private constructor(target: FtpTarget, credentials: Credentials, options: ConnectOptions, saidOnce = new Set<string>()) {
    this.saidOnce = saidOnce;
    this.target = target;
    this.credentials = credentials;
    this.options = options;
    this.client = new Client(options.timeoutMs ?? 30_000);
  }

  /** Connect and log in; `signal` (Ctrl-C in the shell) gives the connection up, however far it got. */
  static async open(target: FtpTarget, credentials: Credentials, options: ConnectOptions = {}, signal?: AbortSignal): Promise<FtpSession> {
    // Given up before it began (Ctrl-C while the credentials were looked up): an abort listener would never fire.
    if (signal?.aborted) throw new ClientError("failed", "interrupted");
    const s = new FtpSession(target, credentials, options);
    const onAbort = () => s.abort();
    signal?.addEventListener("abort", onAbort);
    try {
      await s.connect();
    } catch (err) {
      if (s.aborted) throw new ClientError("failed", "interrupted", { cause: err });
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    if (s.aborted) {
      s.close();
      throw new ClientError("failed", "interrupted");
    }
    return s;
  }

  /** A second connection to the same server as the same user (segmented download, parallel mirror). */
  async clone(): Promise<FtpSession> {
    if (this.aborted) throw new ClientError("failed", "interrupted");
    const s = new FtpSession(this.target, this.credentials, this.options, this.saidOnce);
    s.cwd = this.cwd;
    this.clones.add(s);
    await s.connect();
    if (this.cwd !== s.cwd) await s.cd(this.cwd);
    return s;
  }

  get tlsMode(): TlsMode {
    if (this.target.tls === "implicit") return "implicit";
    return this.options.tls ? "explicit" : "none";
  }

  get closed(): boolean {
    return this.client.closed;
  }

  private async tlsOptions(): Promise<ConnectionOptions> {
    const o: { rejectUnauthorized: boolean; ca?: Buffer; servername?: string } = { rejectUnauthorized: !this.options.insecure };
    if (this.options.caFile) {
      try {
        o.ca = await readFile(this.options.caFile);
      } catch (err) {
        throw new ClientError("local", `cannot read CA file ${this.options.caFile}: ${(err as Error).message}`);
      }
    }
    if (!/^[\d.]+$/.test(this.target.host) && !this.target.host.includes(":")) o.servername = this.target.host;
    return o;
  }

  async connect(): Promise<void> {
    this.client.close();
    this.client = new Client(this.options.timeoutMs ?? 30_000);
    this.client.ftp.verbose = this.options.debug ?? false;
    // The trace goes to stderr, away from listings and files written to stdout.
    const ftp = this.client.ftp;
    ftp.log = (message: string) => {
      if (ftp.verbose) process.stderr.write(`${message}\n`);
    };
    this.replies = preferControlReplies(ftp);
    const mode = this.tlsMode;
    const endpoint = endpointOf(this.target);
    const client = this.client;
    try {
      // The steps of a login, one by one, so that a failure can say which step failed.
      const tlsOptions = mode === "none" ? undefined : { ...(await this.tlsOptions()), host: this.target.host };
      if (mode === "implicit") await client.connectImplicitTLS(this.target.host, this.target.port, tlsOptions);
      else {
        try {
          await client.connect(this.target.host, this.target.port);
        } catch (err) {
          // A port that takes the connection but never greets in clear is likely an implicit-TLS one.
          if (err instanceof Error && !isFtpReplyError(err) && /timeout/i.test(err.message)) {
            throw new ClientError("connect", `the server at ${endpoint} sent no greeting (${err.message}); if that port speaks implicit TLS, use ftps://`, {
              cause: err,
            });
          }
          throw err;
        }
      }
      if (mode === "explicit") {
        try {
          await client.useTLS(tlsOptions);
        } catch (err) {
          if (isFtpReplyError(err))
            throw new ClientError("connect", `the server does not offer TLS (${err.code} ${replyText(err.message)})`, { cause: err, ftpCode: err.code });
          throw err;
        }
      }
      await client.sendIgnoringError("OPTS UTF8 ON");
      try {
        await client.login(this.credentials.user, this.credentials.password);
      } catch (err) {
        if (isFtpReplyError(err) && err.code >= 300)
          throw new ClientError("login", `login refused by the server (${err.code} ${replyText(err.message)})`, { cause: err, ftpCode: err.code });
        throw err;
      }
      await client.useDefaultSettings();
      if (mode !== "none") client.prepareTransfer = deferredTlsTransfer();
    } catch (err) {
      client.close();
      throw toClientError(err, { endpoint, tls: mode, caFile: this.options.caFile });
    }
    this.features = parseFeatures(await this.client.features());
    this.selectedHash = undefined;
    this.rangWorks = this.features.rang;
    this.mlsdWorks = true;
    this.listA = true;
    this.hashAlgorithm = pickAlgorithm({ algorithms: this.features.hash, selected: undefined });
    if (this.cwd !== "/") {
      await this.client.cd(this.cwd);
    } else {
      this.cwd = await this.client.pwd().catch(() => "/");
    }
  }

  /** Reconnect after a dropped connection, back in the same directory. */
  async reconnect(): Promise<void> {
    await this.connect();
  }

  close(): void {
    this.client.close();
    this.clones.clear();
  }

  /** Stop whatever runs on this connection and its clones now; the next command reconnects. */
  abort(): void {
    this.aborted = true;
    for (const c of this.clones) c.abort();
    this.client.close();
  }

  /** Ready for a new command after an abort. */
  resetAbort(): void {
    this.aborted = false;
    this.clones.clear();
  }

  async send(command: string): Promise<{ code: number; message: string }> {
    return await this.client.send(command);
  }

  async sendIgnoringError(command: string): Promise<{ code: number; message: string }> {
    return await this.client.sendIgnoringError(command);
  }

  async pwd(): Promise<string> {
    this.cwd = await this.client.pwd();
    return this.cwd;
  }

  async cd(path: string): Promise<void> {
    await this.client.cd(path);
    this.cwd = await this.client.pwd();
  }

  /**
   * Run one data transfer of the protocol library. When it fails on the data connection while the control connection
   * is still up, the server's final reply to the command may follow (a 552 after it reset an upload over quota): a
   * refusal (4xx/5xx) arriving within a moment is thrown instead of the data error, so it is reported and retried
   * (or not) for what it is.
   */
  async transfer<T>(run: () => Promise<T>): Promise<T> {
    const watch = this.replies;
    if (watch) watch.transferring = true;
    try {
      return await run();
    } catch (err) {
      if (isFtpReplyError(err) || this.client.closed || !watch) throw err;
      const reply = await watch.lateReply(DATA_ERROR_GRACE_MS);
      if (reply && reply.code >= 400) throw new FTPError(reply);
      throw err;
    } finally {
      if (watch) watch.transferring = false;
    }
  }

  /**
   * STOR (or APPE) from `source`, after REST `restAt` where given (RFC 3659 §5.3: REST right before STOR, after the
   * data connection is set up). A failure of the source itself (a local read error) ends the session, as the library
   * does; the data connection's own failure reaching the source does not, so the server's reply can still be read.
   */
  async upload(source: Readable, remote: string, command: "STOR" | "APPE", restAt?: number): Promise<void> {
    const client = this.client;
    const watch = this.replies;
    const onError = (err: Error) => {
      if (!watch?.dataErrors.has(err)) client.ftp.closeWithError(err);
    };
    source.once("error", onError);
    try {
      const path = await client.protectWhitespace(remote);
      await client.prepareTransfer(client.ftp);
      if (restAt !== undefined) await client.send(`REST ${restAt}`);
      await ftpUpload(source, { ftp: client.ftp, tracker: new ProgressTracker(), command, remotePath: path, type: "upload" });
    } finally {
      source.removeListener("error", onError);
    }
  }

  /**
   * Throws the server's refusal (a 550 FTPError) unless `path` is a directory it lets us into: CWD there and back.
   * A listing alone cannot tell: some servers list a missing directory as empty, and LIST of a file lists that file.
   */
  async assertDirectory(path: string): Promise<void> {
    if (path === "" || path === ".") return;
    await this.client.cd(path);
    await this.client.cd(this.cwd);
  }

  /**
   * Entries of a remote directory. Only plain names are kept: a listed "../x" or "a/b" (a hostile or broken server;
   * basic-ftp drops them from MLSD but not from LIST) would make mirror and mget write outside their target.
   */
  async list(path = ""): Promise<RemoteEntry[]> {
    const entries = await this.listRaw(path);
    return entries.filter((e) => isPlainName(e.name)).map(toRemoteEntry);
  }

  /**
   * MLSD where FEAT offers MLST, LIST otherwise. Only a reply saying the command is unknown (500, 502, 504) makes MLSD
   * give way to LIST for the rest of the session; a 501 or 550 for a named path is answered from MLST when it names a
   * file, and otherwise stands (a 550) or goes to LIST (a 501, or a name with wildcards).
   * LIST answers a missing directory with an empty listing on some servers, so an empty LIST of a named path counts
   * only once CWD shows the directory is there.
   */
  private async listRaw(path: string): Promise<FileInfo[]> {
    const client = this.client;
    const request = (client as unknown as { _requestListWithCommand(command: string): Promise<FileInfo[]> })._requestListWithCommand.bind(client);
    const validPath = await client.protectWhitespace(path);
    const withPath = (verb: string) => (validPath === "" ? verb : `${verb} ${validPath}`);
    if (this.features.mlst && this.mlsdWorks) {
      await client.prepareTransfer(client.ftp);
      try {
        return await this.transfer(() => request(withPath("MLSD")));
      } catch (err) {
        if (!(err instanceof FTPError)) throw err;
        if (isUnknownCommand(err.code)) this.mlsdWorks = false;
        else if (validPath === "" || (err.code !== 501 && err.code !== 550)) throw err;
        else {
          // MLSD lists a directory, as written (RFC 3659 §7.1: 501 for anything else; some servers say 550). A file
          // is listed from MLST; a name with wildcards that names nothing goes to LIST, which servers expand; a 550
          // for anything else stands.
          const one = await this.mlstEntry(validPath);
          if (one && !one.info.isDirectory) return [one.info];
          if (err.code === 550 && !/[*?[]/.test(path)) throw err;
        }
      }
    }
    let files: FileInfo[] | undefined;
    if (this.listA) {
      await client.prepareTransfer(client.ftp);
      // Some servers take "-a" for a name and refuse it: plain LIST then.
      files = await this.transfer(() => request(withPath("LIST -a"))).catch((err: unknown) => {
        if (!(err instanceof FTPError)) throw err;
        return undefined;
      });
    }
    if (files === undefined) {
      await client.prepareTransfer(client.ftp);
      files = await this.transfer(() => request(withPath("LIST")));
      this.listA = false;
    }
    if (files.length === 0) await this.assertDirectory(path);
    return files;
  }

  /**
   * Size of a remote file, or undefined when the server will not say (missing, a directory, no SIZE).
   * With `mustExist`, a 550 from a server that has SIZE is thrown: the file is not there to be read.
   */
  async size(path: string, mustExist = false): Promise<number | undefined> {
    const res = await this.client.sendIgnoringError(`SIZE ${path}`);
    if (mustExist && res.code === 550 && this.features.size) throw new FTPError(res);
    if (res.code !== 213) return undefined;
    const n = Number.parseInt(replyText(res.message), 10);
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  }

  /**
   * The entry MLST gives for one path, named by its last segment, and whether it gave a size (the parsed entry says 0
   * without one); undefined when the server will not say.
   */
  private async mlstEntry(path: string): Promise<{ info: FileInfo; sized: boolean } | undefined> {
    const res = await this.client.sendIgnoringError(`MLST ${path}`);
    if (res.code !== 250) return undefined;
    // The entry is the reply's second line: " facts; name". Only the one leading space goes: a name may end in spaces.
    const line = res.message.split(/\r?\n/).find((l) => l.startsWith(" ") && l.includes(";"))?.slice(1);
    const info = line ? parseMlsxLine(line) : undefined;
    if (!info) return undefined;
    info.name = posix.basename(info.name) || info.name;
    return { info, sized: /(?:^|;)size=\d+;/i.test(line!) };
  }

  /**
   * Size of a remote file as its listing shows it (MLST where offered, else LIST of the file), for servers without
   * SIZE; undefined when no listing shows it.
   */
  async listedSize(path: string): Promise<number | undefined> {
    if (this.features.mlst) {
      const one = await this.mlstEntry(path);
      if (one?.sized && one.info.isFile) return one.info.size;
    }
    const name = path.split("/").filter((p) => p !== "").at(-1);
    let entries: RemoteEntry[];
    try {
      entries = await this.list(path);
    } catch (err) {
      if (isFtpReplyError(err)) return undefined;
      throw err;
    }
    const file = entries.length === 1 ? entries[0]! : entries.find((e) => e.name === name);
    return file && file.type === "file" && Number.isSafeInteger(file.size) && file.size >= 0 ? file.size : undefined;
  }

  /** Modification time (RFC 3659 MDTM), or undefined. */
  async mtime(path: string): Promise<Date | undefined> {
    if (!this.features.mdtm) return undefined;
    const res = await this.client.sendIgnoringError(`MDTM ${path}`);
    if (res.code !== 213) return undefined;
    return parseMdtm(replyText(res.message));
  }

  /** Set a remote file's modification time where the server offers MFMT. */
  async setMtime(path: string, when: Date): Promise<boolean> {
    if (!this.features.mfmt) return false;
    const res = await this.client.sendIgnoringError(`MFMT ${formatMdtm(when)} ${path}`);
    return res.code === 213;
  }

  get hasHash(): boolean {
    return this.hashAlgorithm !== undefined;
  }

  get hasRangedHash(): boolean {
    return this.hashAlgorithm !== undefined && this.rangWorks;
  }

  /**
   * The server's hash of a file, or of bytes [start, endExclusive) when a range is given (RANG takes an
   * inclusive end). Returns undefined when the server has no HASH, or refuses a range.
   */
  async remoteHash(path: string, range?: { start: number; endExclusive: number }): Promise<HashReply | undefined> {
    const algo = this.hashAlgorithm;
    if (!algo) return undefined;
    if (this.selectedHash !== algo) {
      const res = await this.client.sendIgnoringError(`OPTS HASH ${algo}`);
      if (res.code >= 200 && res.code < 300) this.selectedHash = algo;
      else if (this.features.hash.length > 1) {
        // Keep whatever the server selects by default, and learn it from the reply below.
        this.selectedHash = undefined;
      }
    }
    if (range) {
      if (!this.rangWorks) return undefined;
      if (range.endExclusive <= range.start) return undefined;
      const res = await this.client.sendIgnoringError(`RANG ${range.start} ${range.endExclusive - 1}`);
      if (res.code !== 350) {
        this.rangWorks = false;
        return undefined;
      }
    }
    let res: { code: number; message: string } | undefined;
    // 450: busy hashing other files, try again shortly (draft-bryan-ftpext-hash §3.5).
    for (let attempt = 0; res === undefined; attempt++) {
      try {
        res = await this.hashCommand(path);
      } catch (err) {
        const code = isFtpReplyError(err) ? err.code : 0;
        if (code === 450 && attempt < 4) {
          await sleep(500 * 2 ** attempt);
          if (range) await this.client.send(`RANG ${range.start} ${range.endExclusive - 1}`);
          continue;
        }
        if (range) await this.client.sendIgnoringError("RANG 1 0").catch(() => undefined);
        if (code === 500 || code === 502 || code === 504) {
          this.hashAlgorithm = undefined;
          return undefined;
        }
        if (code === 551 || code === 552 || code === 556)
          throw new ClientError("remote", `the server would not hash ${path} (${code} ${replyText((err as Error).message)})`, { cause: err, ftpCode: code });
        throw err;
      }
    }
    const parsed = parseHashReply(res.message);
    if (!parsed) throw new ClientError("remote", `cannot understand the server's HASH reply: ${res.message.trim()}`);
    if (range && parsed.start !== range.start) {
      throw new ClientError("remote", `the server hashed bytes ${parsed.start}-${parsed.end}, not the ${range.start}-${range.endExclusive - 1} asked for`);
    }
    return parsed;
  }

  /** HASH may take long on a big file: give the server more time than for other replies. */
  private async hashCommand(path: string): Promise<{ code: number; message: string }> {
    const socket = this.client.ftp.socket;
    socket.setTimeout(Math.max(this.options.timeoutMs ?? 30_000, HASH_TIMEOUT_MS));
    try {
      return await this.client.send(`HASH ${path}`);
    } finally {
      if (!this.client.closed) socket.setTimeout(this.options.timeoutMs ?? 30_000);
    }
  }

  /**
   * RETR from byte `start`. With RANG (draft-bryan-ftp-range §3) the server stops after byte
   * endExclusive - 1 by itself; without it (REST) it sends to the end of the file and the caller hangs up
   * once it has enough. `onMode` learns which, before any data flows.
   */
  async retrieveRange(sink: Writable, path: string, start: number, endExclusive: number, onMode: (serverStops: boolean) => void): Promise<void> {
    const client = this.client;
    if (!this.rangWorks) {
      onMode(false);
      await this.transfer(() => client.downloadTo(sink, path, start));
      return;
    }
    const remotePath = await client.protectWhitespace(path);
    await client.prepareTransfer(client.ftp);
    // RANG must be the last command before RETR (§4.3), so after EPSV/PASV.
    const res = await client.sendIgnoringError(`RANG ${start} ${endExclusive - 1}`);
    const ranged = res.code === 350;
    if (!ranged) this.rangWorks = false;
    onMode(ranged);
    const onError = (err: Error) => client.ftp.closeWithError(err);
    sink.once("error", onError);
    try {
      await this.transfer(() =>
        ftpDownload(sink, {
          ftp: client.ftp,
          tracker: new ProgressTracker(),
          command: ranged ? `RETR ${remotePath}` : start > 0 ? `REST ${start}` : `RETR ${remotePath}`,
          remotePath,
          type: "download",
        }),
      );
    } finally {
      sink.removeListener("error", onError);
      sink.end();
    }
  }

  /** Bytes available to this user (AVBL), or undefined. */
  async available(path?: string): Promise<{ bytes: number | undefined; reply: string }> {
    const res = await this.client.sendIgnoringError(path ? `AVBL ${path}` : "AVBL");
    if (res.code !== 213) return { bytes: undefined, reply: res.message.trim() };
    const n = Number.parseInt(replyText(res.message), 10);
    return { bytes: Number.isSafeInteger(n) ? n : undefined, reply: res.message.trim() };
  }

  async siteQuota(): Promise<{ ok: boolean; reply: string }> {
    const res = await this.client.sendIgnoringError("SITE QUOTA");
    return { ok: res.code >= 200 && res.code < 300, reply: res.message.trim() };
  }

  /**
   * Run `fn`; if the connection drops, reconnect (waiting a little longer each time) and let `fn` try
   * again, at most `retries` times. A server that refuses the reconnect may be restarting: that counts
   * as one more failed attempt, not as the end.
   */
  async withReconnect<T>(retries: number, fn: (attempt: number) => Promise<T>, onRetry?: (err: unknown, attempt: number) => void): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      // Stopped with Ctrl-C: no reconnecting for what comes after (the next file of an mget or a mirror).
      if (this.aborted) throw new ClientError("failed", "interrupted");
      try {
        if (this.client.closed) await this.reconnect();
        return await fn(attempt);
      } catch (err) {
        if (this.aborted) throw new ClientError("failed", "interrupted");
        const retryable = shouldRetry(err) || (attempt > 0 && err instanceof ClientError && err.kind === "connect");
        if (attempt >= retries || !retryable) throw err;
        onRetry?.(err, attempt + 1);
        this.client.close();
        await sleep(Math.min(250 * 2 ** attempt, 4000));
      }
    }
  }
}

/** How long a HASH reply may take (the server reads the whole file first). */
const HASH_TIMEOUT_MS = 10 * 60_000;

/** HASH refused for this file only (551 not deliverable as TYPE I, 552 not allowed, 556 policy). */
export function isHashRefusal(err: unknown): boolean {
  return err instanceof ClientError && (err.ftpCode === 551 || err.ftpCode === 552 || err.ftpCode === 556);
}

/** A reply saying the server does not know or does not implement a command (not a refusal about its argument). */
export function isUnknownCommand(code: number): boolean {
  return code === 500 || code === 502 || code === 504;
}

export function shouldRetry(err: unknown): boolean {
  if (err instanceof ClientError) return false;
  if (err instanceof FTPError || isFtpReplyError(err)) return isTransientReply((err as { code: number }).code);
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ECONNREFUSED") return false;
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ETIMEDOUT") return true;
  return /closed|timeout|FIN packet|data connection|premature|socket hang up/i.test(err.message);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** "20240102030405" or "20240102030405.123" (UTC) → Date. */
export function parseMdtm(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,3}))?/.exec(text.trim());
  if (!m) return undefined;
  const ms = m[7] ? Number(m[7].padEnd(3, "0")) : 0;
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms));
}

export function formatMdtm(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}
