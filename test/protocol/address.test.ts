// Address codecs: PORT and PASV (RFC 959 §4.1.2, §4.2.2 reply 227), EPRT and EPSV (RFC 2428).
import { describe, expect, it } from "vitest";
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

describe("PORT h1,h2,h3,h4,p1,p2", () => {
  it("parses host bytes and port = p1*256 + p2", () => {
    expect(parsePortArg("127,0,0,1,195,80")).toEqual({ host: "127.0.0.1", port: 50000, family: 4 });
    expect(parsePortArg(" 10, 1, 2, 3, 0, 21 ")).toEqual({ host: "10.1.2.3", port: 21, family: 4 });
  });

  it("refuses the wrong number of fields, values over 255, signs and port 0", () => {
    for (const bad of ["127,0,0,1,4", "127,0,0,1,4,1,1", "256,0,0,1,4,1", "127,0,0,1,4,256", "127,0,0,-1,4,1", "127,0,0,1,0,0", "a,b,c,d,e,f", "", "1270,0,0,1,4,1"]) {
      expect(parsePortArg(bad), bad).toBeNull();
    }
  });
});

describe("227 reply argument", () => {
  it("formats h1,h2,h3,h4,p1,p2", () => {
    expect(formatPasvArg("127.0.0.1", 50000)).toBe("127,0,0,1,195,80");
    expect(formatPasvArg("10.0.0.2", 65535)).toBe("10,0,0,2,255,255");
  });

  it("takes an IPv4-mapped IPv6 address", () => {
    expect(formatPasvArg("::ffff:192.168.1.9", 1024)).toBe("192,168,1,9,4,0");
  });

  it("refuses a real IPv6 address", () => {
    expect(() => formatPasvArg("::1", 1024)).toThrow();
  });

  it("round-trips with parsePortArg", () => {
    for (const port of [1024, 2121, 50000, 65535]) {
      expect(parsePortArg(formatPasvArg("192.0.2.7", port))).toEqual({ host: "192.0.2.7", port, family: 4 });
    }
  });
});

describe("EPRT <d>proto<d>addr<d>port<d> (RFC 2428 §2)", () => {
  it("parses IPv4 and IPv6", () => {
    expect(parseEprtArg("|1|132.235.1.2|6275|")).toEqual({ host: "132.235.1.2", port: 6275, family: 4 });
    expect(parseEprtArg("|2|1080::8:800:200C:417A|5282|")).toEqual({ host: "1080::8:800:200C:417A", port: 5282, family: 6 });
  });

  it("accepts any delimiter in ASCII 33-126 ('The delimiter character MUST be one of the ASCII characters in range 33-126')", () => {
    expect(parseEprtArg("!1!127.0.0.1!2000!")).toEqual({ host: "127.0.0.1", port: 2000, family: 4 });
    expect(parseEprtArg("~2~::1~2000~")).toEqual({ host: "::1", port: 2000, family: 6 });
  });

  it("reports an unknown network protocol as unsupported (answered 522)", () => {
    expect(parseEprtArg("|3|127.0.0.1|2000|")).toBe("unsupported");
  });

  it("refuses malformed arguments", () => {
    for (const bad of ["", "|1|127.0.0.1|2000", "1|127.0.0.1|2000|", " 1 127.0.0.1 2000 ", "|1|127.0.0.1|0|", "|1|127.0.0.1|65536|", "|1|::1|2000|", "|2|127.0.0.1|2000|", "|1|127.0.0.1|20x0|", "|x|127.0.0.1|2000|", "|1|127.0.0.1|2000|extra|"]) {
      expect(parseEprtArg(bad), bad).toBe("bad");
    }
  });
});

describe("EPSV (RFC 2428 §3)", () => {
  it("formats the 229 argument as (|||port|)", () => {
    expect(formatEpsvArg(6446)).toBe("(|||6446|)");
  });

  it("parses an empty argument, a protocol number and ALL", () => {
    expect(parseEpsvArg("")).toBe("any");
    expect(parseEpsvArg("1")).toBe(4);
    expect(parseEpsvArg("2")).toBe(6);
    expect(parseEpsvArg("all")).toBe("all");
    expect(parseEpsvArg(" ALL ")).toBe("all");
    expect(parseEpsvArg("3")).toBe("unsupported");
    expect(parseEpsvArg("x")).toBe("bad");
  });
});

describe("address comparison", () => {
  it("toIPv4 unwraps IPv4-mapped IPv6", () => {
    expect(toIPv4("1.2.3.4")).toBe("1.2.3.4");
    expect(toIPv4("::ffff:1.2.3.4")).toBe("1.2.3.4");
    expect(toIPv4("::FFFF:1.2.3.4")).toBe("1.2.3.4");
    expect(toIPv4("::1")).toBeNull();
    expect(toIPv4("nonsense")).toBeNull();
  });

  it("canonicalAddress gives one form per host", () => {
    expect(canonicalAddress("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(canonicalAddress("::ffff:7f00:1")).toBe("127.0.0.1");
    expect(canonicalAddress("2001:DB8:0:0:0:0:0:1")).toBe("2001:db8::1");
    expect(canonicalAddress("0:0:0:0:0:0:0:1")).toBe("::1");
    expect(canonicalAddress("FE80:0::1%eth0")).toBe("fe80::1%eth0");
    expect(sameHost("fe80::1%eth0", "fe80:0:0::1%eth0")).toBe(true);
    expect(sameHost("fe80::1%eth0", "fe80::1%eth1")).toBe(false);
  });

  it("sameHost compares canonical forms and is false for missing addresses", () => {
    expect(sameHost("127.0.0.1", "::ffff:127.0.0.1")).toBe(true);
    expect(sameHost("::1", "0:0::1")).toBe(true);
    expect(sameHost("127.0.0.1", "127.0.0.2")).toBe(false);
    expect(sameHost(undefined, "127.0.0.1")).toBe(false);
    expect(sameHost("", "")).toBe(false);
  });
});
