// Property-based fuzzing (fast-check) of the pure codecs that hostile input reaches first: the control line
// splitter, the command parser, and the PORT/EPRT/PASV/EPSV address codecs. Round trips for valid values, and
// "never throws, never returns nonsense" for arbitrary input. Every run is bounded.

import * as fc from "fast-check";
import { isIPv4, isIPv6 } from "node:net";
import { describe, expect, it } from "vitest";
// basic-ftp's own reply parsers: an independent client reading what the server formats.
import { parseEpsvResponse, parsePasvResponse } from "basic-ftp/dist/transfer.js";
import { parseCommand } from "../../src/protocol/command.js";
import { LineSplitter, MAX_LINE_BYTES } from "../../src/protocol/line-splitter.js";
import {
  canonicalAddress,
  formatEpsvArg,
  formatPasvArg,
  parseEprtArg,
  parseEpsvArg,
  parsePortArg,
  sameHost,
  toIPv4,
} from "../../src/protocol/address.js";

const RUNS = { numRuns: 400, interruptAfterTimeLimit: 10_000 } as const;

/** Bytes biased towards what matters to the splitter: CR, LF, NUL, IAC and its option verbs. */
const controlByte = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 2, arbitrary: fc.constantFrom(0x0d, 0x0a, 0x00, 0xff, 0xfb, 0xfc, 0xfd, 0xfe, 0xf4, 0xf2) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const streamBytes = fc.array(controlByte, { maxLength: 600 }).map((a) => Buffer.from(a));

/** Splits a buffer at the given cut points (any chunking a TCP stream could produce). */
function chunked(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

function splitAll(chunks: Buffer[], max?: number): { ok: boolean; line: string }[] {
  const s = new LineSplitter(max);
  return chunks.flatMap((c) => s.push(c)).map((l) => (l.ok ? { ok: true, line: l.line.toString("latin1") } : { ok: false, line: "" }));
}

describe("line splitter", () => {
  it("gives the same lines however the stream is chunked", () => {
    fc.assert(
      fc.property(streamBytes, fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
        expect(splitAll(chunked(bytes, cuts))).toEqual(splitAll([bytes]));
      }),
      RUNS,
    );
  });

  it("never returns a line holding LF, or ending in a CR that ended it, or longer than the limit", () => {
    fc.assert(
      fc.property(fc.array(controlByte, { maxLength: 3000 }).map((a) => Buffer.from(a)), fc.integer({ min: 1, max: 64 }), (bytes, max) => {
        for (const l of splitAll([bytes], max)) {
          if (!l.ok) continue;
          // A CR inside a line is kept (the session refuses such a line); none ends one. The last byte of a line can be
          // a kept CR only where something other than LF followed a CR (CR CR LF: the first is inside, the second ends
          // the line).
          expect(l.line).not.toMatch(/\n/);
          if (l.line.endsWith("\r")) expect(bytes.toString("latin1")).toMatch(/\r[^\n]/);
          expect(Buffer.byteLength(l.line, "latin1")).toBeLessThanOrEqual(max);
        }
      }),
      RUNS,
    );
  });

  it("round-trips printable lines sent with CRLF or LF endings, and ABOR lines with a CR alone", () => {
    const text = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 });
    const line = fc.oneof(fc.tuple(text, fc.constantFrom("\r\n", "\n")), fc.tuple(fc.constantFrom("ABOR", "abor", " ABOR "), fc.constant("\r")));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (lines, cuts) => {
        // An ABOR's lone CR followed by an empty LF-terminated line reads as one CRLF: that is the documented rule.
        fc.pre(lines.every(([, eol], i) => !(eol === "\r" && lines[i + 1]?.[0] === "" && lines[i + 1]?.[1] === "\n")));
        const wire = Buffer.from(lines.map(([t, eol]) => t + eol).join(""), "latin1");
        expect(splitAll(chunked(wire, cuts)).map((l) => l.line)).toEqual(lines.map(([t]) => t));
      }),
      RUNS,
    );
  });

  it("flags an over-long line once and recovers on the next one", () => {
    fc.assert(
      fc.property(fc.integer({ min: MAX_LINE_BYTES + 1, max: MAX_LINE_BYTES * 3 }), (n) => {
        const lines = splitAll([Buffer.from("A".repeat(n) + "\r\nNOOP\r\n")]);
        expect(lines).toEqual([
          { ok: false, line: "" },
          { ok: true, line: "NOOP" },
        ]);
      }),
      { numRuns: 30 },
    );
  });
});

describe("command parser", () => {
  it("never throws, and a parsed verb is a letter then up to 7 letters or digits, upper-cased, with the argument kept verbatim", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = parseCommand(Buffer.from(bytes));
        if (!r.ok) {
          expect(["empty", "bad-verb", "bad-utf8"]).toContain(r.reason);
          return;
        }
        expect(r.command.verb).toMatch(/^[A-Z][A-Z0-9]{0,7}$/);
        const text = Buffer.from(bytes).toString("utf8");
        expect(text.toUpperCase().startsWith(r.command.verb)).toBe(true);
        expect(r.command.hasArg ? text.slice(r.command.verb.length + 1) : "").toBe(r.command.arg);
      }),
      RUNS,
    );
  });

  it("parses what a client would send", () => {
    const verb = fc.stringMatching(/^[A-Za-z]{3,4}$/);
    const arg = fc.string({ maxLength: 100 }).filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(verb, arg, (v, a) => {
        const r = parseCommand(Buffer.from(`${v} ${a}`, "utf8"));
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.command).toEqual({ verb: v.toUpperCase(), arg: a, hasArg: true });
      }),
      RUNS,
    );
  });
});

const ipv4 = fc.ipV4();
const port = fc.integer({ min: 1, max: 65535 });

describe("PORT and PASV (RFC 959)", () => {
  it("round-trips every IPv4 address and port through the PASV format, read back by PORT's parser and by basic-ftp", () => {
    fc.assert(
      fc.property(ipv4, port, (host, p) => {
        const arg = formatPasvArg(host, p);
        expect(parsePortArg(arg)).toEqual({ host, port: p, family: 4 });
        expect(parsePasvResponse(`227 Entering Passive Mode (${arg})`)).toEqual({ host, port: p });
        // An IPv4-mapped IPv6 local address is announced as plain IPv4.
        expect(formatPasvArg(`::ffff:${host}`, p)).toBe(arg);
      }),
      RUNS,
    );
  });

  it("never throws on garbage and only ever returns a valid address and port", () => {
    const garbage = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.array(fc.oneof(fc.integer({ min: -300, max: 70000 }).map(String), fc.string({ maxLength: 4 })), { maxLength: 8 }).map((a) => a.join(",")),
    );
    fc.assert(
      fc.property(garbage, (g) => {
        const r = parsePortArg(g);
        if (r === null) return;
        expect(isIPv4(r.host)).toBe(true);
        expect(r.port).toBeGreaterThanOrEqual(1);
        expect(r.port).toBeLessThanOrEqual(65535);
      }),
      RUNS,
    );
  });
});

describe("EPRT and EPSV (RFC 2428)", () => {
  const delimiter = fc.integer({ min: 33, max: 126 }).map((c) => String.fromCharCode(c));

  it("round-trips IPv4 and IPv6 targets with any delimiter that cannot occur in them", () => {
    const target = fc.oneof(
      fc.tuple(fc.constant("1"), ipv4),
      fc.tuple(fc.constant("2"), fc.ipV6()),
    );
    fc.assert(
      fc.property(target, port, delimiter, ([proto, host], p, d) => {
        fc.pre(!proto.includes(d) && !host.includes(d) && !String(p).includes(d));
        const r = parseEprtArg(`${d}${proto}${d}${host}${d}${p}${d}`);
        expect(r).toEqual({ host, port: p, family: proto === "1" ? 4 : 6 });
      }),
      RUNS,
    );
  });

  it("never throws on garbage; answers bad, unsupported, or a valid target", () => {
    const piece = fc.oneof(fc.string({ maxLength: 10 }), ipv4, fc.ipV6(), fc.integer({ min: -5, max: 70000 }).map(String));
    const garbage = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.tuple(delimiter, fc.array(piece, { maxLength: 6 })).map(([d, parts]) => d + parts.join(d) + d),
    );
    fc.assert(
      fc.property(garbage, (g) => {
        const r = parseEprtArg(g);
        if (r === "bad" || r === "unsupported") return;
        expect(r.family === 4 ? isIPv4(r.host) : isIPv6(r.host)).toBe(true);
        expect(r.port).toBeGreaterThanOrEqual(1);
        expect(r.port).toBeLessThanOrEqual(65535);
      }),
      RUNS,
    );
  });

  it("formats EPSV replies basic-ftp reads back, and parses any EPSV argument without throwing", () => {
    fc.assert(
      fc.property(port, (p) => {
        expect(parseEpsvResponse(`229 Entering Extended Passive Mode ${formatEpsvArg(p)}`)).toBe(p);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (g) => {
        expect(["any", "all", 4, 6, "unsupported", "bad"]).toContain(parseEpsvArg(g));
      }),
      RUNS,
    );
  });
});

describe("address comparison", () => {
  it("sees an IPv4 address and its IPv4-mapped IPv6 form as the same host, and never throws", () => {
    fc.assert(
      fc.property(ipv4, ipv4, (a, b) => {
        expect(sameHost(a, `::ffff:${a}`)).toBe(true);
        expect(sameHost(`::FFFF:${a}`, a)).toBe(true);
        expect(sameHost(a, b)).toBe(a === b);
        expect(toIPv4(`::ffff:${a}`)).toBe(a);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.ipV6(), (a) => {
        expect(sameHost(a, a.toUpperCase())).toBe(true);
        expect(canonicalAddress(canonicalAddress(a))).toBe(canonicalAddress(a));
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 50 }), fc.string({ maxLength: 50 }), (a, b) => {
        expect(typeof sameHost(a, b)).toBe("boolean");
      }),
      RUNS,
    );
  });
});
