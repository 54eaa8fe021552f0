// The control connection over raw sockets: greeting, login, the pre-login gate, bad sequences, garbage input and
// line handling. Exact reply codes throughout.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

let srv: RunningServer;
const open: RawFtp[] = [];

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }]);
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});
afterAll(async () => {
  await srv.close();
});

async function connect(): Promise<RawFtp> {
  const c = await RawFtp.open(srv.port);
  open.push(c);
  return c;
}

async function greeted(): Promise<RawFtp> {
  const c = await connect();
  expect((await c.read()).code).toBe(220);
  return c;
}

async function loggedIn(): Promise<RawFtp> {
  const c = await greeted();
  expect((await c.cmd("USER alice")).code).toBe(331);
  expect((await c.cmd("PASS secret")).code).toBe(230);
  return c;
}

describe("greeting and login", () => {
  it("greets with 220 before the client says anything", async () => {
    const c = await connect();
    const g = await c.read();
    expect(g.code).toBe(220);
    expect(g.lines).toHaveLength(1);
  });

  it("logs in with USER 331 then PASS 230", async () => {
    const c = await greeted();
    const u = await c.cmd("USER alice");
    expect(u.code).toBe(331);
    expect((await c.cmd("PASS secret")).code).toBe(230);
    expect((await c.cmd("PWD")).text).toMatch(/^"\/"/);
  });

  it("answers a wrong password with 530 and allows another try", async () => {
    const c = await greeted();
    expect((await c.cmd("USER alice")).code).toBe(331);
    expect((await c.cmd("PASS wrong")).code).toBe(530);
    expect((await c.cmd("PWD")).code).toBe(530);
    expect((await c.cmd("USER alice")).code).toBe(331);
    expect((await c.cmd("PASS secret")).code).toBe(230);
  });

  it("answers an unknown user exactly like a wrong password", async () => {
    const c = await greeted();
    expect((await c.cmd("USER nobody")).code).toBe(331);
    expect((await c.cmd("PASS secret")).code).toBe(530);
  });

  it("refuses anonymous login", async () => {
    const c = await greeted();
    await c.cmd("USER anonymous");
    expect((await c.cmd("PASS guest@example.com")).code).toBe(530);
  });

  it("answers PASS without USER with 503 (RFC 959 §5.4: USER must precede PASS)", async () => {
    const c = await greeted();
    expect((await c.cmd("PASS secret")).code).toBe(503);
    // The refused PASS must not have logged anyone in.
    expect((await c.cmd("PWD")).code).toBe(530);
  });

  it("answers a second PASS after a failed one with 503 (the USER was used up)", async () => {
    const c = await greeted();
    await c.cmd("USER alice");
    expect((await c.cmd("PASS wrong")).code).toBe(530);
    expect((await c.cmd("PASS secret")).code).toBe(503);
  });

  it("does not let a logged-in session switch users", async () => {
    const c = await loggedIn();
    expect((await c.cmd("USER bob")).code).toBe(530);
    expect((await c.cmd("PASS secret")).code).toBe(503);
  });

  it("answers USER without a name with 501", async () => {
    const c = await greeted();
    expect((await c.cmd("USER")).code).toBe(501);
  });

  it("QUIT answers 221 and closes the connection", async () => {
    const c = await greeted();
    expect((await c.quit()).code).toBe(221);
  });

  it("QUIT also works after login", async () => {
    const c = await loggedIn();
    expect((await c.quit()).code).toBe(221);
  });
});

describe("before login", () => {
  // Issue 2: before login every command but USER, PASS, QUIT, FEAT, SYST, NOOP, HELP, OPTS (AUTH, PBSZ, PROT) gets 530.
  const guarded: [string, string][] = [
    ["STAT", ""],
    ["STAT", "/"],
    ["PWD", ""],
    ["XPWD", ""],
    ["CWD", "/"],
    ["XCWD", "/"],
    ["CDUP", ""],
    ["XCUP", ""],
    ["MKD", "x"],
    ["XMKD", "x"],
    ["RMD", "x"],
    ["XRMD", "x"],
    ["DELE", "x"],
    ["RNFR", "x"],
    ["RNTO", "y"],
    ["LIST", ""],
    ["NLST", ""],
    ["MLSD", ""],
    ["MLST", "x"],
    ["SIZE", "x"],
    ["MDTM", "x"],
    ["MFMT", "20200101000000 x"],
    ["TYPE", "I"],
    ["MODE", "S"],
    ["STRU", "F"],
    ["ALLO", "10"],
    ["PASV", ""],
    ["EPSV", ""],
    ["PORT", "127,0,0,1,4,1"],
    ["EPRT", "|1|127.0.0.1|1025|"],
    ["REST", "0"],
    ["RETR", "x"],
    ["STOR", "x"],
    ["STOU", ""],
    ["STOU", "x"],
    ["APPE", "x"],
    ["ABOR", ""],
    ["HASH", "x"],
    ["RANG", "0 1"],
    ["AVBL", ""],
    ["SITE", "QUOTA"],
  ];

  it("answers 530 to every command that needs a login, and the session goes on", async () => {
    const c = await greeted();
    for (const [verb, arg] of guarded) {
      const r = await c.cmd(arg ? `${verb} ${arg}` : verb);
      expect(r.code, `${verb} ${arg}`).toBe(530);
    }
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("answers 530 in any letter case", async () => {
    const c = await greeted();
    expect((await c.cmd("pwd")).code).toBe(530);
    expect((await c.cmd("List")).code).toBe(530);
  });

  it("answers the open commands", async () => {
    const c = await greeted();
    expect((await c.cmd("SYST")).code).toBe(215);
    expect((await c.cmd("NOOP")).code).toBe(200);
    const feat = await c.cmd("FEAT");
    expect(feat.code).toBe(211);
    expect(feat.lines.length).toBeGreaterThan(2);
    const help = await c.cmd("HELP");
    expect(help.code).toBe(214);
    expect((await c.cmd("HELP RETR")).code).toBe(214);
    expect((await c.cmd("OPTS UTF8 ON")).code).toBe(200);
    expect((await c.cmd("USER alice")).code).toBe(331);
  });

  it("does not open a passive port before login", async () => {
    const c = await greeted();
    const r = await c.cmd("PASV");
    expect(r.code).toBe(530);
    expect(r.text).not.toMatch(/\d+,\d+,\d+,\d+,\d+,\d+/);
  });
});

describe("bad sequences and unknown commands", () => {
  it("answers RNTO without RNFR with 503", async () => {
    const c = await loggedIn();
    expect((await c.cmd("RNTO whatever")).code).toBe(503);
  });

  it("forgets RNFR when another command comes between (RFC 959: RNTO must immediately follow RNFR)", async () => {
    const c = await loggedIn();
    expect((await c.cmd("MKD seq-dir")).code).toBe(257);
    expect((await c.cmd("RNFR seq-dir")).code).toBe(350);
    expect((await c.cmd("NOOP")).code).toBe(200);
    expect((await c.cmd("RNTO seq-dir2")).code).toBe(503);
    expect((await c.cmd("RMD seq-dir")).code).toBe(250);
  });

  it("answers unknown verbs with 502, before and after login", async () => {
    const g = await greeted();
    expect((await g.cmd("FOOBAR")).code).toBe(502);
    expect((await g.cmd("XYZZY arg")).code).toBe(502);
    const c = await loggedIn();
    expect((await c.cmd("FOOBAR")).code).toBe(502);
    expect((await c.cmd("SITE EXEC id")).code).toBe(502);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("answers SITE with no subcommand after it (a second space) with 501, not as an unknown subcommand", async () => {
    const c = await loggedIn();
    const r = await c.cmd("SITE  CHMOD 644 x");
    expect(r.code, r.all).toBe(501);
    expect(r.text).toMatch(/SITE HELP/);
  });

  it("answers a missing required argument with 501", async () => {
    const c = await loggedIn();
    for (const verb of ["CWD", "MKD", "RMD", "DELE", "RNFR", "RETR", "STOR", "APPE", "SIZE", "MDTM", "TYPE", "REST", "PORT", "EPRT"]) {
      expect((await c.cmd(verb)).code, verb).toBe(501);
    }
  });

  it("answers an argument to an argument-less command with 501", async () => {
    const c = await loggedIn();
    expect((await c.cmd("PWD extra")).code).toBe(501);
    expect((await c.cmd("NOOP extra")).code).toBe(501);
    expect((await c.cmd("CDUP x")).code).toBe(501);
  });

  it("answers a transfer with no data connection set up with 425", async () => {
    const c = await loggedIn();
    expect((await c.cmd("RETR nothing")).code).toBe(425);
    expect((await c.cmd("LIST")).code).toBe(425);
  });
});

describe("garbage input", () => {
  it("answers binary garbage with 500 and keeps the session", async () => {
    const c = await loggedIn();
    c.sendRaw(Buffer.from([0x01, 0x02, 0x03, 0x7f, 0x20, 0x41, 0x0d, 0x0a]));
    expect((await c.read()).code).toBe(500);
    c.sendRaw(Buffer.from("12345\r\n"));
    expect((await c.read()).code).toBe(500);
    expect((await c.cmd("PWD")).code).toBe(257);
  });

  it("answers invalid UTF-8 with 501 and keeps the session", async () => {
    const c = await loggedIn();
    c.sendRaw(Buffer.concat([Buffer.from("MKD "), Buffer.from([0xc3, 0x28, 0xa0]), Buffer.from("\r\n")]));
    expect((await c.read()).code).toBe(501);
    c.sendRaw(Buffer.from([0xc0, 0xaf, 0x0d, 0x0a]));
    expect((await c.read()).code).toBe(501);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("answers a line over 4 KiB with exactly one 500 and keeps the session", async () => {
    const c = await loggedIn();
    c.sendRaw("MKD " + "a".repeat(5000) + "\r\n");
    const r = await c.read();
    expect(r.code).toBe(500);
    expect((await c.cmd("NOOP")).code).toBe(200);
    expect(c.pending).toBe("");
  });

  it("answers a huge line sent in many pieces with one 500", async () => {
    const c = await loggedIn();
    for (let i = 0; i < 64; i++) c.sendRaw("X".repeat(4096));
    c.sendRaw("\r\nNOOP\r\n");
    expect((await c.read()).code).toBe(500);
    expect((await c.read()).code).toBe(200);
    expect(await c.silentFor(100)).toBe(true);
  });

  it("accepts a line of exactly 4 KiB", async () => {
    const c = await loggedIn();
    // 4096 bytes including "NOOP " - an argument, so 501, which proves the line was parsed, not refused as too long.
    c.sendRaw("NOOP " + "b".repeat(4096 - 5) + "\r\n");
    expect((await c.read()).code).toBe(501);
  });

  it("answers an empty line with 500", async () => {
    const c = await loggedIn();
    c.sendRaw("\r\n");
    expect((await c.read()).code).toBe(500);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("strips Telnet IAC sequences before a command", async () => {
    const c = await loggedIn();
    c.sendRaw(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from("NOOP\r\n")]));
    expect((await c.read()).code).toBe(200);
  });
});

describe("line framing", () => {
  it("accepts LF-only line ends", async () => {
    const c = await greeted();
    c.sendRaw("USER alice\nPASS secret\nPWD\n");
    expect((await c.read()).code).toBe(331);
    expect((await c.read()).code).toBe(230);
    expect((await c.read()).code).toBe(257);
  });

  it("reassembles a line split over TCP chunks and answers it once", async () => {
    const c = await loggedIn();
    c.sock.setNoDelay(true);
    for (const piece of ["N", "OO", "P"]) {
      c.sendRaw(piece);
      await new Promise((r) => setTimeout(r, 30));
      expect(c.pending).toBe("");
    }
    // CR and LF in separate chunks still make one line end, not a second empty line.
    c.sendRaw("\r");
    await new Promise((r) => setTimeout(r, 30));
    c.sendRaw("\nSY");
    await new Promise((r) => setTimeout(r, 30));
    c.sendRaw("ST\r\n");
    expect((await c.read()).code).toBe(200);
    expect((await c.read()).code).toBe(215);
    expect(await c.silentFor(100)).toBe(true);
  });

  it("answers pipelined commands in order", async () => {
    const c = await loggedIn();
    c.sendRaw("NOOP\r\nSYST\r\nPWD\r\nTYPE I\r\nFOO\r\n");
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await c.read()).code);
    expect(codes).toEqual([200, 215, 257, 200, 502]);
  });

  it("answers a flood of pipelined commands completely", async () => {
    const c = await loggedIn();
    c.sendRaw("NOOP\r\n".repeat(500));
    for (let i = 0; i < 500; i++) expect((await c.read()).code).toBe(200);
    expect(await c.silentFor(50)).toBe(true);
  });
});
