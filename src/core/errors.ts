// One error type with a stable code, and the one place where errors become FTP replies.

export type ErrorCode =
  | "not-found"
  | "exists"
  | "not-dir"
  | "is-dir"
  | "not-empty"
  | "denied"
  | "outside-home"
  | "bad-path"
  | "quota-exceeded"
  | "disk-full"
  | "bad-sequence"
  | "bad-argument"
  | "bad-offset"
  | "too-many"
  | "busy"
  | "read-only"
  | "no-resources"
  | "changed"
  | "io";

export class MyftpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "MyftpError";
  }
}

const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOENT: "not-found",
  EEXIST: "exists",
  ENOTDIR: "not-dir",
  EISDIR: "is-dir",
  ENOTEMPTY: "not-empty",
  EACCES: "denied",
  EPERM: "denied",
  ELOOP: "denied",
  EXDEV: "denied",
  ENAMETOOLONG: "bad-path",
  EINVAL: "bad-path",
  ENOSPC: "disk-full",
  EDQUOT: "disk-full",
  EROFS: "read-only",
  EMFILE: "no-resources",
  ENFILE: "no-resources",
};

const MESSAGES: Record<ErrorCode, string> = {
  "not-found": "No such file or directory",
  exists: "File exists",
  "not-dir": "Not a directory",
  "is-dir": "Is a directory",
  "not-empty": "Directory not empty",
  denied: "Permission denied",
  "outside-home": "Permission denied",
  "bad-path": "Invalid path",
  "quota-exceeded": "Quota exceeded",
  "disk-full": "Insufficient storage space",
  "bad-sequence": "Bad sequence of commands",
  "bad-argument": "Invalid argument",
  "bad-offset": "Invalid REST parameter",
  "too-many": "Too many connections",
  busy: "File busy",
  "read-only": "Read-only file system",
  "no-resources": "Server out of file handles; try again later",
  changed: "File shrank while it was sent; try again",
  io: "Local error in processing",
};

/** Turns anything thrown by storage, quota or the user store into a MyftpError. */
export function toMyftpError(err: unknown): MyftpError {
  if (err instanceof MyftpError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const code = (errno && ERRNO_CODES[errno]) || "io";
  return new MyftpError(code, MESSAGES[code], { cause: err });
}

const REPLY_CODES: Record<ErrorCode, number> = {
  "not-found": 550,
  exists: 550,
  "not-dir": 550,
  "is-dir": 550,
  "not-empty": 550,
  denied: 550,
  "outside-home": 550,
  "bad-path": 553,
  "quota-exceeded": 552,
  "disk-full": 452,
  "bad-sequence": 503,
  "bad-argument": 501,
  "bad-offset": 554,
  "too-many": 421,
  busy: 450,
  // Permanent until an admin mounts the file system writable again: not a 4xx a client would retry.
  "read-only": 550,
  // RFC 959's "local error in processing", with the cause: a transient shortage that ends as sessions close.
  "no-resources": 451,
  // Fewer bytes went than the 150 announced: not a complete file, which 226 would claim.
  changed: 451,
  io: 451,
};

/** The FTP reply for an error: code and a one-line text. */
export function errorReply(err: unknown): { code: number; text: string } {
  const e = toMyftpError(err);
  return { code: REPLY_CODES[e.code], text: e.code === "io" ? MESSAGES.io : e.message };
}

export function messageFor(code: ErrorCode): string {
  return MESSAGES[code];
}

/** Whether `code` is one of myftp's own error codes (not an errno), e.g. one that crossed a process boundary. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(REPLY_CODES, code);
}
