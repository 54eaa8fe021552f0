// TYPE A line-end conversion (RFC 959 §3.1.1.1: "end-of-line ... <CRLF>" on the wire).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FromNetworkAscii, ToNetworkAscii } from "../../src/protocol/ascii.js";

const b = (s: string) => Buffer.from(s, "latin1");
const s = (x: Buffer) => x.toString("latin1");

function through(conv: { convert(c: Buffer): Buffer; flush?(): Buffer }, chunks: string[]): string {
  let out = "";
  for (const c of chunks) out += s(conv.convert(b(c)));
  if (conv.flush) out += s(conv.flush());
  return out;
}

describe("ToNetworkAscii", () => {
  it("turns LF into CRLF", () => {
    expect(through(new ToNetworkAscii(), ["a\nb\n\n"])).toBe("a\r\nb\r\n\r\n");
  });

  it("leaves an existing CRLF alone", () => {
    expect(through(new ToNetworkAscii(), ["a\r\nb"])).toBe("a\r\nb");
  });

  it("remembers a CR at the end of a chunk", () => {
    expect(through(new ToNetworkAscii(), ["a\r", "\nb", "\n"])).toBe("a\r\nb\r\n");
  });

  it("passes other bytes (and a lone CR) through", () => {
    expect(through(new ToNetworkAscii(), ["x\ry", ""])).toBe("x\ry");
  });
});

describe("FromNetworkAscii", () => {
  it("turns CRLF into LF", () => {
    expect(through(new FromNetworkAscii(), ["a\r\nb\r\n"])).toBe("a\nb\n");
  });

  it("handles a CRLF split between chunks", () => {
    expect(through(new FromNetworkAscii(), ["a\r", "\nb"])).toBe("a\nb");
    expect(through(new FromNetworkAscii(), ["a\r", "", "\nb"])).toBe("a\nb");
  });

  it("keeps a CR not followed by LF, also across chunks", () => {
    expect(through(new FromNetworkAscii(), ["a\rb"])).toBe("a\rb");
    expect(through(new FromNetworkAscii(), ["a\r", "b"])).toBe("a\rb");
    expect(through(new FromNetworkAscii(), ["a\r\r\n"])).toBe("a\r\n");
  });

  it("gives back a final lone CR on flush", () => {
    const c = new FromNetworkAscii();
    expect(s(c.convert(b("end\r")))).toBe("end");
    expect(s(c.flush())).toBe("\r");
    expect(s(c.flush())).toBe("");
  });

  it("keeps a bare LF", () => {
    expect(through(new FromNetworkAscii(), ["a\nb"])).toBe("a\nb");
  });
});

describe("round trip", () => {
  const chunked = (text: string, cuts: number[]) => {
    const out: string[] = [];
    let pos = 0;
    for (const c of cuts) {
      if (pos >= text.length) break;
      out.push(text.slice(pos, pos + c));
      pos += c;
    }
    out.push(text.slice(pos));
    return out;
  };

  it("LF text survives to-network then from-network under any chunking", () => {
    const text = fc.string({ unit: fc.constantFrom("a", "b", "\n", " ", "\u00e9") });
    const cuts = fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 30 });
    fc.assert(
      fc.property(text, cuts, cuts, (t, c1, c2) => {
        const wire = through(new ToNetworkAscii(), chunked(t, c1));
        expect(wire.replace(/\r\n/g, "")).not.toMatch(/[\r\n]/);
        expect(through(new FromNetworkAscii(), chunked(wire, c2))).toBe(t);
      }),
    );
  });

  it("from-network output never depends on where chunks were cut", () => {
    const text = fc.string({ unit: fc.constantFrom("a", "\r", "\n") });
    const cuts = fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 30 });
    fc.assert(
      fc.property(text, cuts, (t, c) => {
        expect(through(new FromNetworkAscii(), chunked(t, c))).toBe(through(new FromNetworkAscii(), [t]));
      }),
    );
  });
});
