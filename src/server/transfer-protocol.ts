// Messages between the server and its transfer processes (see transfer-processes.ts). The data socket travels
// with "send" and "recv" as the message's handle; files are named by the server's own descriptor, which the
// transfer process reopens through /proc and checks by device and inode.

/** Identifies the file the server opened: its descriptor number and what it is. */
export interface SharedFile {
  fd: number;
  /** st_dev and st_ino as decimal strings (inodes may pass 2^53). */
  dev: string;
  ino: string;
}

export type ToChild =
  | { op: "probe"; file: SharedFile }
  /** Reopen the server's file for this transfer; answered with "opened". Nothing else happens until "send"/"recv". */
  | { op: "open"; id: number; file: SharedFile; write: boolean }
  /** Send bytes [start, end) of the opened file on the socket, then end it. */
  | { op: "send"; id: number; start: number; end: number }
  /** Write what arrives on the socket from file offset `position`; bytes up to `granted` may be written. */
  | { op: "recv"; id: number; position: number; granted: number }
  /** The answer to a "need": more may be written (up to `granted`), or nothing more. */
  | { op: "grant"; id: number; ok: boolean; granted: number }
  | { op: "abort"; id: number }
  /**
   * The server is done with this transfer: a file opened for it and never used is closed, and a failed transfer's
   * data connection (kept open until the server's final reply is out) may close now.
   */
  | { op: "release"; id: number };

export type FailureKind = "aborted" | "broken" | "denied" | "io";

export type FromChild =
  | { type: "probe"; ok: boolean; reason?: string }
  /** The answer to "open": the server hands the data connection over only after ok. */
  | { type: "opened"; id: number; ok: boolean; reason?: string }
  /** Bytes moved since the last report. */
  | { type: "bytes"; id: number; n: number }
  /** A download has sent every byte and waits for the client to close its side (no stall). */
  | { type: "closing"; id: number }
  /** Asks to write up to file offset `end`. */
  | { type: "need"; id: number; end: number }
  | {
      type: "done";
      id: number;
      ok: boolean;
      /** Bytes sent (send) or written to the file (recv). */
      bytes: number;
      kind?: FailureKind;
      code?: string;
      message?: string;
    };
