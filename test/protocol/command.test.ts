// Command line parsing: verb, one space, argument (RFC 959 §5.3.1); UTF-8 text (RFC 2640).
import { describe, expect, it } from "vitest";
import { parseCommand } from "../../src/protocol/command.js";

const parse = (s: string | Buffer) => parseCommand(typeof s === "string" ? Buffer.from(s, "utf8") : s);

describe("parseCommand", () => {
  it("upper-cases the verb (RFC 959 §5.3: command codes are case-insensitive)", () => {
    expect(parse("retr file.txt")).toEqual({ ok: true, command: { verb: "RETR", arg: "file.txt", hasArg: true } });
    expect(parse("NoOp")).toEqual({ ok: true, command: { verb: "NOOP", arg: "", hasArg: false } });
  });

  it("keeps the argument verbatim: leading, inner and trailing spaces belong to the name", () => {
    expect(parse("STOR  two  spaces ")).toMatchObject({ ok: true, command: { arg: " two  spaces " } });
  });

  it("keeps the argument's case", () => {
    expect(parse("CWD MixedCase")).toMatchObject({ ok: true, command: { arg: "MixedCase" } });
  });

  it("notes a space with an empty argument", () => {
    expect(parse("PASV ")).toEqual({ ok: true, command: { verb: "PASV", arg: "", hasArg: true } });
  });

  it("reads UTF-8 arguments (RFC 2640)", () => {
    expect(parse("DELE 测试文件.txt")).toMatchObject({ ok: true, command: { verb: "DELE", arg: "测试文件.txt" } });
    expect(parse("RETR -leading dash")).toMatchObject({ ok: true, command: { arg: "-leading dash" } });
  });

  it("refuses invalid UTF-8", () => {
    expect(parse(Buffer.from([0x52, 0x45, 0x54, 0x52, 0x20, 0xc3, 0x28]))).toEqual({ ok: false, reason: "bad-utf8" });
    expect(parse(Buffer.from([0xff, 0xfe]))).toEqual({ ok: false, reason: "bad-utf8" });
  });

  it("refuses empty and blank lines", () => {
    expect(parse("")).toEqual({ ok: false, reason: "empty" });
    expect(parse("   ")).toEqual({ ok: false, reason: "empty" });
  });

  it("refuses verbs that are not a letter then up to 7 ASCII letters or digits", () => {
    for (const s of ["123 x", "1ABC", "RE-TR a", "ABCDEFGHI", "XSHA25678", " NOOP", "NO\tOP", "NOÖP", "\u0001\u0002"]) {
      expect(parse(s)).toEqual({ ok: false, reason: "bad-verb" });
    }
  });

  it("takes verbs with digits after the first letter (XMD5, XSHA256)", () => {
    expect(parse("xmd5 f")).toEqual({ ok: true, command: { verb: "XMD5", arg: "f", hasArg: true } });
    expect(parse("XSHA256")).toEqual({ ok: true, command: { verb: "XSHA256", arg: "", hasArg: false } });
  });
});
