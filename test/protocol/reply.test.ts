// Reply formatting (RFC 959 §4.2) and 257 path quoting (RFC 959 Appendix II).
import { describe, expect, it } from "vitest";
import { formatIndentedReply, formatReply, quotePath } from "../../src/protocol/reply.js";

describe("formatReply", () => {
  it("writes a single-line reply as CODE SP text CRLF", () => {
    expect(formatReply(200, "NOOP ok")).toBe("200 NOOP ok\r\n");
    expect(formatReply(226, "")).toBe("226 \r\n");
  });

  it("opens a multi-line reply with CODE- and closes it with CODE SP (RFC 959 §4.2)", () => {
    expect(formatReply(211, ["first", "middle", "last"])).toBe("211-first\r\nmiddle\r\n211 last\r\n");
  });

  it("splits text on embedded line ends so no bare CR or LF reaches the wire", () => {
    expect(formatReply(214, "a\nb\r\nc")).toBe("214-a\r\nb\r\n214 c\r\n");
    expect(formatReply(214, "one\rtwo")).toBe("214-one\r\n214 two\r\n");
  });

  it("pads an inner line that begins with three digits (RFC 959 §4.2: 'the Server must pad the front')", () => {
    expect(formatReply(211, ["x", "211 looks like an end", "123abc", "end"])).toBe(
      "211-x\r\n 211 looks like an end\r\n 123abc\r\n211 end\r\n",
    );
  });

  it("treats an empty list as one empty line", () => {
    expect(formatReply(200, [])).toBe("200 \r\n");
  });
});

describe("formatIndentedReply", () => {
  it("starts every inner line with a space (RFC 2389 §3.2 FEAT, RFC 3659 §7.2 MLST)", () => {
    expect(formatIndentedReply(211, "Features:", ["EPSV", "SIZE"], "End")).toBe("211-Features:\r\n EPSV\r\n SIZE\r\n211 End\r\n");
  });

  it("still has a first and a last line with no body", () => {
    expect(formatIndentedReply(211, "Features:", [], "End")).toBe("211-Features:\r\n211 End\r\n");
  });
});

describe("quotePath", () => {
  it("wraps the path in double quotes and doubles embedded ones (RFC 959 Appendix II)", () => {
    expect(quotePath("/a")).toBe('"/a"');
    expect(quotePath('/say "hi"')).toBe('"/say ""hi"""');
    expect(quotePath("/测试")).toBe('"/测试"');
  });
});
