// One error type for the client, carrying the process exit code it maps to, and one place that turns
// library, socket and FTP reply errors into a single plain sentence for the user.

/** Exit codes of `myftp`; documented in README-client.md. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  connect: 3,
  login: 4,
  remote: 5,
  quota: 6,
  verify: 7,
  local: 8,
  /** Ctrl-C in a one-shot command (128 + SIGINT, as a shell reports it). */
  interrupted: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export type ClientErrorKind = keyof typeof ExitCode;

export class ClientError extends Error {
  readonly kind: ClientErrorKind;
  /** The FTP reply code when the server refused something. */
  readonly ftpCode: number | undefined;

  constructor(kind: ClientErrorKind, message: string, options?: { cause?: unknown; ftpCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ClientError";
    this.kind = kind;
    this.ftpCode = options?.ftpCode;
  }

  get exitCode(): ExitCodeValue {
    return ExitCode[this.kind];
  }
}

interface FtpLikeError {
  code: number;
  message: string;
}

/** An error that carries an FTP reply (the protocol library's FTPError has a numeric `code`). */
export function isFtpReplyError(err: unknown): err is FtpLikeError {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === "number" &&
    /^\d{3}[ -]/.test(err.message)
  );
}

/** The reply text without its code and with multi-line continuation folded: "550 No such file." → "No such file." */
export function replyText(message: string): string {
  const lines = message
    .split(/\r?\n/)
    .map((l) => l.replace(/^\d{3}[ -]?/, "").trim())
    .filter((l) => l.length > 0);
  return lines.join(" ");
}

/**
 * Transient replies worth another try after a pause: 421 (service closing / too many connections),
 * 425/426 (data connection trouble), 450/451/452 are local server trouble (452 is storage: not retried).
 */
export function isTransientReply(code: number): boolean {
  return code === 421 || code === 425 || code === 426 || code === 450 || code === 451;
}

const NODE_CONNECT_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by the server",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed",
  ETIMEDOUT: "connection timed out",
  EPIPE: "connection closed by the server",
};

export interface ErrorContext {
  /** What the client was doing, e.g. "get report.pdf". */
  readonly action?: string;
  /** host:port, for connection failures. */
  readonly endpoint?: string;
  /** How TLS was being used when the failure happened. */
  readonly tls?: "implicit" | "explicit" | "none";
  /** The CA file the user asked to trust, if any. */
  readonly caFile?: string;
}

/** OpenSSL's words for "what came back was not TLS at all" (a plain FTP greeting, say). */
const NOT_TLS = /wrong version number|packet length too long|unknown protocol|http request/i;
/** Node's codes for a certificate chain that does not lead to a trusted authority. */
const UNTRUSTED_CERT = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?)$/;

function tlsError(err: Error, code: string, prefix: string, ctx: ErrorContext): ClientError {
  const where = ctx.endpoint ? ` at ${ctx.endpoint}` : "";
  if (NOT_TLS.test(err.message)) {
    const hint =
      ctx.tls === "implicit"
        ? "ftps:// is implicit TLS; for AUTH TLS on an FTP port use ftp:// with --tls"
        : "the server spoke something else on its data or control connection";
    return new ClientError("connect", `${prefix}TLS failed: the server${where} did not answer in TLS (${hint})`, { cause: err });
  }
  if (UNTRUSTED_CERT.test(code)) {
    if (ctx.caFile)
      return new ClientError("connect", `${prefix}TLS failed: the server's certificate is not signed by the CA in ${ctx.caFile} (${err.message})`, { cause: err });
    return new ClientError("connect", `${prefix}TLS failed: ${err.message} (use --insecure or --ca FILE for a self-signed certificate)`, { cause: err });
  }
  return new ClientError("connect", `${prefix}TLS failed: ${err.message}`, { cause: err });
}

/** Turn any thrown value into a ClientError with one clear sentence. */
export function toClientError(err: unknown, ctx: ErrorContext = {}): ClientError {
  const prefix = ctx.action ? `${ctx.action}: ` : "";
  if (err instanceof ClientError) {
    // Say what was being done, unless the message already does.
    if (!ctx.action || err.message.startsWith(prefix) || err.message.startsWith(`${ctx.action} `)) return err;
    return new ClientError(err.kind, `${prefix}${err.message}`, { cause: err.cause, ftpCode: err.ftpCode });
  }
  if (isFtpReplyError(err)) {
    const text = replyText(err.message);
    const code = err.code;
    if (code === 530) return new ClientError("login", `${prefix}login refused by the server (${code} ${text})`, { cause: err, ftpCode: code });
    if (code === 552 || code === 452)
      return new ClientError("quota", `${prefix}no space left on the server: quota full (${code} ${text})`, { cause: err, ftpCode: code });
    if (code === 421) return new ClientError("connect", `${prefix}the server is closing the connection (${code} ${text})`, { cause: err, ftpCode: code });
    if (code === 550 || code === 553 || code === 450)
      return new ClientError("remote", `${prefix}the server refused: ${text} (${code})`, { cause: err, ftpCode: code });
    return new ClientError("remote", `${prefix}the server said ${code} ${text}`, { cause: err, ftpCode: code });
  }
  if (err instanceof Error) {
    const errno = err as NodeJS.ErrnoException;
    const code = typeof errno.code === "string" ? errno.code : undefined;
    if (code !== undefined && code in NODE_CONNECT_CODES) {
      const where = ctx.endpoint ? ` ${ctx.endpoint}` : "";
      if (errno.syscall === "connect" || errno.syscall === "getaddrinfo" || code === "ECONNREFUSED")
        return new ClientError("connect", `${prefix}cannot connect to${where}: ${NODE_CONNECT_CODES[code]}`, { cause: err });
      return new ClientError("connect", `${prefix}${NODE_CONNECT_CODES[code]}`, { cause: err });
    }
    if (code !== undefined && /^(ERR_TLS|ERR_SSL|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO|CERT_)/.test(code)) return tlsError(err, code, prefix, ctx);
    if (code === "ENOENT") return new ClientError("local", `${prefix}no such local file or directory: ${errno.path ?? err.message}`, { cause: err });
    if (code === "EACCES" || code === "EPERM") return new ClientError("local", `${prefix}permission denied: ${errno.path ?? err.message}`, { cause: err });
    if (code === "EISDIR") return new ClientError("local", `${prefix}is a directory: ${errno.path ?? err.message}`, { cause: err });
    if (code === "ENOSPC" || code === "EDQUOT") return new ClientError("local", `${prefix}no space left on the local disk`, { cause: err });
    if (code === "ENOTDIR") {
      const path = errno.path ?? err.message;
      // Reading a directory names the path itself; opening or statting a file names a path below a non-directory.
      if (errno.syscall === "scandir" || errno.syscall === "opendir") return new ClientError("local", `${prefix}not a directory: ${path}`, { cause: err });
      return new ClientError("local", `${prefix}not a directory: a parent of ${path}`, { cause: err });
    }
    const LOCAL: Record<string, string> = {
      EROFS: "read-only file system",
      ENAMETOOLONG: "name too long",
      ELOOP: "too many symbolic links",
      EEXIST: "already exists",
      EBUSY: "busy",
    };
    if (code !== undefined && code in LOCAL) return new ClientError("local", `${prefix}${LOCAL[code]}: ${errno.path ?? err.message}`, { cause: err });
    // The protocol library's word for a server that refused both EPSV and PASV (passive mode off).
    const passive = /None of the available transfer strategies work\. Last error response was '(?:FTPError: )?(\d{3}) ([^']*)'/.exec(err.message);
    if (passive) {
      const ftpCode = Number(passive[1]);
      return new ClientError("remote", `${prefix}the server refused a passive data connection: ${replyText(passive[2]!)} (${ftpCode}); myftp has no active mode`, {
        cause: err,
        ftpCode,
      });
    }
    if (/timeout/i.test(err.message)) return new ClientError("connect", `${prefix}the server stopped answering (${err.message})`, { cause: err });
    if (/closed|FIN packet/i.test(err.message)) return new ClientError("connect", `${prefix}the connection was lost (${err.message})`, { cause: err });
    return new ClientError("failed", `${prefix}${err.message}`, { cause: err });
  }
  return new ClientError("failed", `${prefix}${String(err)}`);
}
