// Splits the control connection's byte stream into command lines.
//
// RFC 959 §4.1 ends a command with Telnet end-of-line (CRLF); clients also send bare LF. A CR followed by anything
// else is part of the line (CR NUL is Telnet's CR, how RFC 2640 §3.1 sends a CR inside a name; the NUL goes): the
// session refuses such a line whole, so a name holding a CR can never act on the name cut short at the CR. A CR (or
// CR NUL) with nothing after it yet is left pending: the session ends the line there (endPending) when nothing more
// comes for a moment, which is how a Telnet-style client that ends its lines with CR NUL, or CR alone, is answered.
// ABOR is ended by its CR at once: a client that sends it as urgent data (Telnet "Synch") can lose the final LF and
// then waits (an LF or NUL after that CR is skipped). Telnet IAC sequences (RFC 854),
// which some clients put before ABOR, are removed: 0xFF never occurs in UTF-8 text, so removing them cannot damage a
// file name.
//
// The Synch (RFC 854) is IAC DM with one byte sent as TCP urgent data, and without SO_OOBINLINE the kernel takes
// that byte out of the stream. lftp makes DM the urgent byte (the stream holds IAC IP IAC "ABOR"); BSD-style clients
// make the IAC before DM urgent, so the stream holds IAC IP DM "ABOR": a bare DM (0xF2) right after a Telnet
// command. Such a DM is dropped too. Elsewhere 0xF2 is kept: it is the lead byte of 4-byte UTF-8 characters, and
// valid UTF-8 text never has one directly after a Telnet command, which is not text.

export const MAX_LINE_BYTES = 4096;

export type SplitLine = { ok: true; line: Buffer } | { ok: false; reason: "too-long" };

const IAC = 0xff;
const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;
const DM = 0xf2; // Telnet Data Mark, the Synch's last byte

const enum Telnet {
  None,
  Iac, // saw IAC
  Option, // saw IAC WILL/WONT/DO/DONT, next byte is the option code
}

export class LineSplitter {
  private buf: Buffer;
  private len = 0;
  private overflow = false;
  private skipAfterCr = false;
  /** A CR was read that does not end an ABOR line: the next byte says whether it ends the line (LF) or not. */
  private pendingCr = false;
  /** ...and a NUL after it (Telnet's CR): the next byte keeps the CR in the line; none ends the line (endPending). */
  private pendingCrNul = false;
  private telnet = Telnet.None;
  // The last thing read was a Telnet command (IAC IP, IAC DM, ...): a bare DM now is a Synch remnant.
  private afterCommand = false;

  constructor(private readonly maxBytes = MAX_LINE_BYTES) {
    this.buf = Buffer.allocUnsafe(256);
  }

  /** Feeds a chunk; returns the complete lines it finished, in order. */
  push(chunk: Buffer): SplitLine[] {
    const out: SplitLine[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.skipAfterCr) {
        this.skipAfterCr = false;
        if (b === LF || b === NUL) continue;
      }
      if (this.pendingCrNul) {
        // Something came after CR NUL: that was a CR inside the line, kept so that the session can refuse the line.
        this.pendingCrNul = false;
        this.append(CR);
      } else if (this.pendingCr) {
        this.pendingCr = false;
        if (b === LF) {
          out.push(this.finish());
          continue;
        }
        if (b === NUL) {
          this.pendingCrNul = true;
          continue;
        }
        // A CR inside the line: kept, so that the session can refuse the line.
        this.append(CR);
      }
      if (this.telnet === Telnet.Iac && this.len > 0) {
        // Inside a line 0xFF is not Telnet but a byte of some other encoding (Latin-1's "ÿ"): kept, with whatever
        // follows it (IAC IAC stands for one 0xFF), so that the line is refused as not UTF-8 instead of acting on the
        // name with bytes left out (another file).
        this.telnet = Telnet.None;
        this.afterCommand = false;
        this.append(IAC);
        if (b === IAC) continue;
      } else if (this.telnet === Telnet.Iac) {
        if (b === IAC) {
          this.telnet = Telnet.None;
          this.afterCommand = false;
          this.append(IAC);
          continue;
        }
        if (b >= 251 && b <= 254) {
          this.telnet = Telnet.Option;
          this.afterCommand = false;
          continue;
        }
        this.telnet = Telnet.None;
        this.afterCommand = true;
        // Telnet commands are 240-254. A lower byte is text: the command byte went missing, as the Synch's DM does
        // when it is sent as TCP urgent data (lftp: IAC IP, IAC DM urgent, "ABOR"), and the kernel keeps it apart.
        // That happens only before a command, at the line's start (inside a line, see above).
        if (b >= 240) continue;
        this.afterCommand = false;
      } else if (this.afterCommand && this.telnet === Telnet.None && b !== IAC) {
        // A DM whose IAC was the urgent byte (BSD: IAC IP, IAC urgent, DM "ABOR"). Several in a row all go.
        if (b === DM) continue;
        this.afterCommand = false;
      }
      if (this.telnet === Telnet.Option) {
        this.telnet = Telnet.None;
        continue;
      }
      if (b === IAC) {
        this.telnet = Telnet.Iac;
        continue;
      }
      if (b === LF) {
        out.push(this.finish());
        continue;
      }
      if (b === CR) {
        if (this.isAbor()) {
          this.skipAfterCr = true;
          out.push(this.finish());
        } else {
          this.pendingCr = true;
        }
        continue;
      }
      this.append(b);
    }
    return out;
  }

  /** A CR (or CR NUL) ends what has come so far, unless more follows: see endPending. */
  get awaitingAfterCr(): boolean {
    return this.pendingCr || this.pendingCrNul;
  }

  /** Ends the line at a pending CR (or CR NUL) after which nothing came; null when there is none. */
  endPending(): SplitLine | null {
    if (!this.awaitingAfterCr) return null;
    this.pendingCr = false;
    this.pendingCrNul = false;
    // An LF (or NUL) that still comes, late, belongs to this line's end, not to an empty line of its own.
    this.skipAfterCr = true;
    return this.finish();
  }

  /** Whether the line so far is ABOR (any case, spaces around it allowed). */
  private isAbor(): boolean {
    if (this.overflow) return false;
    let start = 0;
    let end = this.len;
    while (start < end && this.buf[start] === 0x20) start++;
    while (end > start && this.buf[end - 1] === 0x20) end--;
    return end - start === 4 && this.buf.toString("latin1", start, end).toUpperCase() === "ABOR";
  }

  /** Bytes of the line not yet finished (for flood accounting). */
  get pending(): number {
    return this.len;
  }

  private append(b: number): void {
    if (this.overflow) return;
    if (this.len >= this.maxBytes) {
      this.overflow = true;
      return;
    }
    if (this.len === this.buf.length) {
      const next = Buffer.allocUnsafe(Math.min(this.buf.length * 2, this.maxBytes));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    this.buf[this.len++] = b;
  }

  private finish(): SplitLine {
    const overflow = this.overflow;
    const line = Buffer.from(this.buf.subarray(0, this.len));
    this.len = 0;
    this.overflow = false;
    return overflow ? { ok: false, reason: "too-long" } : { ok: true, line };
  }
}
