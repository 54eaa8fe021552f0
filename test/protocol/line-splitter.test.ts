// The control-connection line splitter, byte by byte.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LineSplitter, MAX_LINE_BYTES, type SplitLine } from "../../src/protocol/line-splitter.js";

const b = (s: string | number[]) => (typeof s === "string" ? Buffer.from(s, "latin1") : Buffer.from(s));
const texts = (out: SplitLine[]) => out.map((l) => (l.ok ? l.line.toString("latin1") : `<${l.reason}>`));

function feed(chunks: (string | number[])[]): string[] {
  const sp = new LineSplitter();
  const out: string[] = [];
  for (const c of chunks) out.push(...texts(sp.push(b(c))));
  return out;
}

describe("LineSplitter", () => {
  it("splits on CRLF (RFC 959 §4.1: commands end with Telnet end-of-line)", () => {
    expect(feed(["USER alice\r\nPASS x\r\n"])).toEqual(["USER alice", "PASS x"]);
  });

  it("accepts a bare LF as line end", () => {
    expect(feed(["USER alice\nPASS x\n"])).toEqual(["USER alice", "PASS x"]);
  });

  it("keeps an unfinished line until its end arrives", () => {
    const sp = new LineSplitter();
    expect(sp.push(b("US"))).toEqual([]);
    expect(sp.pending).toBe(2);
    expect(texts(sp.push(b("ER a")))).toEqual([]);
    expect(texts(sp.push(b("lice\r\n")))).toEqual(["USER alice"]);
    expect(sp.pending).toBe(0);
  });

  it("treats a CRLF split between two chunks as one line end", () => {
    expect(feed(["NOOP\r", "\nSYST\r", "\n"])).toEqual(["NOOP", "SYST"]);
  });

  it("ends a line on a bare CR (urgent ABOR may lose its LF) without an extra empty line", () => {
    expect(feed(["ABOR\rNOOP\r\n"])).toEqual(["ABOR", "NOOP"]);
  });

  it("skips the NUL of Telnet CR NUL", () => {
    expect(feed([[0x4e, 0x4f, 0x4f, 0x50, 0x0d, 0x00, 0x53, 0x59, 0x53, 0x54, 0x0d, 0x0a]])).toEqual(["NOOP", "SYST"]);
  });

  it("reports an empty line as an empty line", () => {
    expect(feed(["\r\n"])).toEqual([""]);
    expect(feed(["\n\n"])).toEqual(["", ""]);
  });

  it("strips Telnet IP and Synch (IAC IP IAC DM) sent before ABOR (RFC 959 §4.1.3, RFC 854)", () => {
    expect(feed([[0xff, 0xf4, 0xff, 0xf2, ...b("ABOR\r\n")]])).toEqual(["ABOR"]);
  });

  it("strips three-byte option negotiations (IAC WILL/WONT/DO/DONT option)", () => {
    for (const verb of [251, 252, 253, 254]) {
      expect(feed([[0xff, verb, 0x01, ...b("NOOP\r\n")]])).toEqual(["NOOP"]);
    }
  });

  it("strips IAC sequences split over chunks", () => {
    expect(feed([[0xff], [0xfd], [0x18, ...b("NO")], "OP\r\n"])).toEqual(["NOOP"]);
  });

  it("turns IAC IAC into one 0xFF data byte", () => {
    const sp = new LineSplitter();
    const out = sp.push(b([0x41, 0xff, 0xff, 0x42, 0x0d, 0x0a]));
    expect(out).toHaveLength(1);
    expect(out[0]!.ok && [...out[0]!.line]).toEqual([0x41, 0xff, 0x42]);
  });

  it("keeps UTF-8 bytes intact", () => {
    const sp = new LineSplitter();
    const out = sp.push(Buffer.from("STOR 测试文件.txt\r\n", "utf8"));
    expect(out[0]!.ok && out[0]!.line.toString("utf8")).toBe("STOR 测试文件.txt");
  });

  it("accepts a line of exactly 4 KiB and refuses one byte more", () => {
    expect(MAX_LINE_BYTES).toBe(4096);
    const ok = "A".repeat(4096);
    const sp = new LineSplitter();
    const out = sp.push(b(ok + "\r\n" + ok + "B\r\nNOOP\r\n"));
    expect(out.map((l) => (l.ok ? l.line.length : l.reason))).toEqual([4096, "too-long", 4]);
  });

  it("refuses an over-long line that arrives in many chunks, then goes on", () => {
    const sp = new LineSplitter();
    const out: SplitLine[] = [];
    for (let i = 0; i < 100; i++) out.push(...sp.push(b("x".repeat(100))));
    expect(out).toEqual([]);
    expect(sp.pending).toBeLessThanOrEqual(4096);
    out.push(...sp.push(b("\r\nQUIT\r\n")));
    expect(texts(out)).toEqual(["<too-long>", "QUIT"]);
  });

  it("gives the same lines however the stream is chunked", () => {
    const line = fc.stringMatching(/^[A-Za-z0-9 ./_-]{0,40}$/);
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 50 }), (lines, cuts) => {
        const stream = b(lines.map((l) => l + "\r\n").join(""));
        const sp = new LineSplitter();
        const got: string[] = [];
        let pos = 0;
        for (const c of cuts) {
          if (pos >= stream.length) break;
          got.push(...texts(sp.push(stream.subarray(pos, pos + c))));
          pos += c;
        }
        got.push(...texts(sp.push(stream.subarray(pos))));
        expect(got).toEqual(lines);
      }),
    );
  });
});
