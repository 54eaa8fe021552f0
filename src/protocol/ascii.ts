// TYPE A line-end conversion (RFC 959 §3.1.1.1): files are stored with LF line ends and cross the network with
// CRLF. Both converters keep state between chunks so a CRLF split over two chunks is handled once.

const CR = 0x0d;
const LF = 0x0a;

/** Outgoing: LF becomes CRLF unless a CR already precedes it. */
export class ToNetworkAscii {
  private lastWasCr = false;

  convert(chunk: Uint8Array): Buffer {
    let extra = 0;
    let prevCr = this.lastWasCr;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === LF && !prevCr) extra++;
      prevCr = b === CR;
    }
    const out = Buffer.allocUnsafe(chunk.length + extra);
    let o = 0;
    prevCr = this.lastWasCr;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === LF && !prevCr) out[o++] = CR;
      out[o++] = b;
      prevCr = b === CR;
    }
    this.lastWasCr = prevCr;
    return out;
  }
}

/** Incoming: CRLF becomes LF; a CR not followed by LF is kept. */
export class FromNetworkAscii {
  private pendingCr = false;

  convert(chunk: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(chunk.length + 1);
    let o = 0;
    let i = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk.length === 0) {
        this.pendingCr = true;
        return out.subarray(0, 0);
      }
      if (chunk[0] !== LF) out[o++] = CR;
    }
    for (; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === CR) {
        if (i + 1 === chunk.length) {
          this.pendingCr = true;
          continue;
        }
        if (chunk[i + 1] === LF) continue;
      }
      out[o++] = b;
    }
    return out.subarray(0, o);
  }

  /** Bytes still held back at the end of the stream (a final lone CR). */
  flush(): Buffer {
    if (!this.pendingCr) return Buffer.alloc(0);
    this.pendingCr = false;
    return Buffer.from([CR]);
  }
}
