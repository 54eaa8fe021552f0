// Every command of issue 2 over a raw control connection, with exact replies.
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp, type Reply, sessionInNewDir } from "../helpers/raw-ftp.js";

let srv: RunningServer;
let home: string;
const open: RawFtp[] = [];

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }]);
  home = srv.homeOf("alice");
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});
afterAll(async () => {
  await srv.close();
});

async function login(): Promise<RawFtp> {
  const c = await RawFtp.login(srv.port, "alice", "secret");
  open.push(c);
  return c;
}

/** A fresh directory in the home for one test; the session starts in it. */
let dirCount = 0;
function inDir(): Promise<{ c: RawFtp; dir: string; vdir: string }> {
  return sessionInNewDir(login, home, `t${dirCount++}`);
}

function body(r: Reply): string[] {
  return r.lines.slice(1, -1);
}

describe("informational commands", () => {
  it("SYST answers 215 UNIX Type: L8", async () => {
    const c = await login();
    expect((await c.cmd("SYST")).all).toBe("215 UNIX Type: L8");
  });

  it("NOOP answers 200", async () => {
    const c = await login();
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("FEAT is multi-line, each feature on a line starting with a space (RFC 2389 §3.2)", async () => {
    const c = await login();
    const r = await c.cmd("FEAT");
    expect(r.code).toBe(211);
    expect(r.lines[0]).toMatch(/^211-/);
    expect(r.lines.at(-1)).toMatch(/^211 /);
    for (const l of body(r)) expect(l).toMatch(/^ \S/);
    const feats = body(r).map((l) => l.trim());
    for (const f of ["EPRT", "EPSV", "MDTM", "SIZE", "REST STREAM", "UTF8", "TVFS", "MFMT"]) expect(feats).toContain(f);
    expect(feats.find((f) => f.startsWith("MLST "))).toBe("MLST type*;size*;modify*;perm*;unix.mode;");
  });

  it("FEAT lists exactly what works: every advertised feature's command is implemented", async () => {
    const c = await login();
    const feats = body(await c.cmd("FEAT")).map((l) => l.trim());
    writeFileSync(path.join(home, "feat.txt"), "x");
    const probes: Record<string, string> = {
      EPRT: "EPRT |9|127.0.0.1|2000|",
      EPSV: "EPSV 9",
      MDTM: "MDTM /feat.txt",
      SIZE: "SIZE /feat.txt",
      MFMT: "MFMT 20200101000000 /feat.txt",
      MLST: "MLST /feat.txt",
      REST: "REST 0",
      UTF8: "OPTS UTF8 ON",
      TVFS: "CWD /",
      AVBL: "AVBL /",
      HASH: "HASH /feat.txt",
      RANG: "RANG 1 0",
      AUTH: "AUTH TLS",
      PBSZ: "PBSZ 0",
      PROT: "PROT C",
      LANG: "LANG",
      MLSD: "MLSD",
    };
    for (const f of feats) {
      const key = f.split(" ")[0]!;
      const probe = probes[key];
      expect(probe, `a probe for FEAT line "${f}"`).toBeDefined();
      const r = await c.cmd(probe!);
      expect(r.code, `${f}: ${probe} → ${r.all}`).not.toBe(502);
      expect(r.code, `${f}: ${probe} → ${r.all}`).not.toBe(500);
      if (key === "AUTH" && r.code === 234) break; // the connection is switching to TLS; nothing more to say in clear
    }
    // And features that are not implemented are not advertised.
    expect(feats).not.toContain("LANG EN");
    expect((await c.cmd("LANG EN")).code).toBe(502);
  });

  it("OPTS UTF8 ON is accepted (RFC 2640 §3.1), OFF refused, unknown options 501", async () => {
    const c = await login();
    expect((await c.cmd("OPTS UTF8 ON")).code).toBe(200);
    expect((await c.cmd("OPTS UTF8")).code).toBe(200);
    expect((await c.cmd("OPTS UTF8 OFF")).code).toBe(504);
    expect((await c.cmd("OPTS NONSENSE")).code).toBe(501);
    expect((await c.cmd("OPTS")).code).toBe(501);
  });

  it("OPTS MLST selects facts; FEAT and MLST follow (RFC 3659 §7.9)", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "abc");
    const r = await c.cmd("OPTS MLST size;modify;");
    expect(r.all).toBe("200 MLST OPTS size;modify;");
    const feats = body(await c.cmd("FEAT")).map((l) => l.trim());
    expect(feats).toContain("MLST type;size*;modify*;perm;unix.mode;");
    const m = await c.cmd("MLST f");
    expect(m.lines[1]).toMatch(/^ size=3;modify=\d{14}; /);
    expect((await c.cmd("OPTS MLST")).all).toBe("200 MLST OPTS ");
  });

  it("HELP lists the commands; HELP verb gives its syntax; an unknown verb gets 502", async () => {
    const c = await login();
    const r = await c.cmd("HELP");
    expect(r.code).toBe(214);
    const words = body(r).join(" ").split(/\s+/);
    for (const v of ["USER", "PASS", "RETR", "STOR", "MLSD", "XMKD", "EPSV", "ABOR"]) expect(words).toContain(v);
    expect((await c.cmd("HELP retr")).all).toBe("214 Syntax: RETR <sp> path");
    expect((await c.cmd("HELP NOPE")).code).toBe(502);
    // Well-formed verbs with digits this server does not implement are 502 too, not a syntax error.
    expect((await c.cmd("XMD5 f")).code).toBe(502);
    expect((await c.cmd("XSHA256 f")).code).toBe(502);
  });

  it("STAT without argument answers 211 with the session's status", async () => {
    const c = await login();
    const r = await c.cmd("STAT");
    expect(r.code).toBe(211);
    expect(r.all).toContain("Logged in as alice");
    expect(r.lines.at(-1)).toMatch(/^211 /);
  });

  it("STAT path lists over the control connection with 213", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "one.txt"), "1");
    mkdirSync(path.join(dir, "sub"));
    const r = await c.cmd("STAT .");
    expect(r.code).toBe(213);
    const lines = body(r);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ -rw-r--r-- 1 alice alice +1 [A-Z][a-z]{2} .* one\.txt$/);
    expect(lines[1]).toMatch(/^ d.* sub$/);
    expect((await c.cmd("STAT missing")).code).toBe(550);
  });
});

describe("directories", () => {
  it("PWD and XPWD answer 257 with the quoted path", async () => {
    const { c, vdir } = await inDir();
    expect((await c.cmd("PWD")).text).toBe(`"${vdir}" is the current directory`);
    expect((await c.cmd("XPWD")).code).toBe(257);
    expect((await c.cmd("XPWD")).text).toBe(`"${vdir}" is the current directory`);
  });

  it("CWD and XCWD change directory with 250; missing → 550; a file → 550", async () => {
    const { c, dir, vdir } = await inDir();
    mkdirSync(path.join(dir, "a", "b"), { recursive: true });
    writeFileSync(path.join(dir, "file"), "x");
    expect((await c.cmd("CWD a")).code).toBe(250);
    expect((await c.cmd("XCWD b")).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(new RegExp(`^"${vdir}/a/b"`));
    expect((await c.cmd("CWD nope")).code).toBe(550);
    expect((await c.cmd(`CWD ${vdir}/file`)).code).toBe(550);
    expect((await c.cmd("PWD")).text).toMatch(new RegExp(`^"${vdir}/a/b"`));
    expect((await c.cmd(`CWD ${vdir}/./a/../a/b/..`)).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(new RegExp(`^"${vdir}/a"`));
  });

  it("CDUP and XCUP go up with 250 and stop at /", async () => {
    const { c, dir, vdir } = await inDir();
    mkdirSync(path.join(dir, "a"));
    await c.cmd("CWD a");
    expect((await c.cmd("CDUP")).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(new RegExp(`^"${vdir}"`));
    expect((await c.cmd("XCUP")).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(/^"\/"/);
    expect((await c.cmd("CDUP")).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(/^"\/"/);
  });

  it("MKD and XMKD answer 257 with the new path; an existing name → 550", async () => {
    const { c, dir, vdir } = await inDir();
    expect((await c.cmd("MKD new")).all).toBe(`257 "${vdir}/new" created`);
    expect((await c.cmd("XMKD other")).code).toBe(257);
    expect(statSync(path.join(dir, "new")).isDirectory()).toBe(true);
    expect(statSync(path.join(dir, "other")).isDirectory()).toBe(true);
    expect((await c.cmd("MKD new")).code).toBe(550);
    expect((await c.cmd("MKD missing/parent/x")).code).toBe(550);
  });

  it("MKD quotes a name with a double quote by doubling it (RFC 959 Appendix II)", async () => {
    const { c, vdir } = await inDir();
    expect((await c.cmd('MKD say "hi"')).all).toBe(`257 "${vdir}/say ""hi""" created`);
  });

  it("RMD and XRMD remove empty directories with 250; non-empty, missing or a file → 550", async () => {
    const { c, dir } = await inDir();
    mkdirSync(path.join(dir, "e1"));
    mkdirSync(path.join(dir, "e2"));
    mkdirSync(path.join(dir, "full"));
    writeFileSync(path.join(dir, "full", "x"), "x");
    writeFileSync(path.join(dir, "file"), "x");
    expect((await c.cmd("RMD e1")).code).toBe(250);
    expect((await c.cmd("XRMD e2")).code).toBe(250);
    expect(existsSync(path.join(dir, "e1")) || existsSync(path.join(dir, "e2"))).toBe(false);
    expect((await c.cmd("RMD full")).code).toBe(550);
    expect((await c.cmd("RMD missing")).code).toBe(550);
    expect((await c.cmd("RMD file")).code).toBe(550);
    expect(existsSync(path.join(dir, "file"))).toBe(true);
    expect((await c.cmd("RMD /")).code).toBe(550);
  });

  it("refuses to remove the current directory", async () => {
    const { c, vdir } = await inDir();
    expect((await c.cmd(`RMD ${vdir}`)).code).toBe(550);
  });
});

describe("files", () => {
  it("DELE removes a file with 250; missing or a directory → 550", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "x");
    mkdirSync(path.join(dir, "d"));
    expect((await c.cmd("DELE f")).code).toBe(250);
    expect(existsSync(path.join(dir, "f"))).toBe(false);
    expect((await c.cmd("DELE f")).code).toBe(550);
    expect((await c.cmd("DELE d")).code).toBe(550);
    expect(existsSync(path.join(dir, "d"))).toBe(true);
  });

  it("RNFR 350 then RNTO 250 renames files and directories", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "a"), "A");
    mkdirSync(path.join(dir, "d"));
    expect((await c.cmd("RNFR a")).code).toBe(350);
    expect((await c.cmd("RNTO b")).code).toBe(250);
    expect(readFileSync(path.join(dir, "b"), "utf8")).toBe("A");
    expect(existsSync(path.join(dir, "a"))).toBe(false);
    expect((await c.cmd("RNFR d")).code).toBe(350);
    expect((await c.cmd("RNTO d/../moved")).code).toBe(250);
    expect(statSync(path.join(dir, "moved")).isDirectory()).toBe(true);
  });

  it("RNFR of a missing file → 550; RNTO is then out of sequence → 503", async () => {
    const { c } = await inDir();
    expect((await c.cmd("RNFR ghost")).code).toBe(550);
    expect((await c.cmd("RNTO x")).code).toBe(503);
  });

  it("RNTO may replace a file but not move a directory into itself", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "a"), "new");
    writeFileSync(path.join(dir, "b"), "old");
    mkdirSync(path.join(dir, "d"));
    await c.cmd("RNFR a");
    expect((await c.cmd("RNTO b")).code).toBe(250);
    expect(readFileSync(path.join(dir, "b"), "utf8")).toBe("new");
    await c.cmd("RNFR d");
    expect((await c.cmd("RNTO d/inside")).code).toBe(550);
    expect(existsSync(path.join(dir, "d"))).toBe(true);
  });

  it("RNTO to the same name is a no-op with 250, for a directory and a file, also through a linked directory", async () => {
    const { c, dir } = await inDir();
    mkdirSync(path.join(dir, "dd"));
    writeFileSync(path.join(dir, "dd", "in.txt"), "kept");
    writeFileSync(path.join(dir, "f.txt"), "file");
    symlinkSync(".", path.join(dir, "here"));
    for (const [from, to] of [
      ["dd", "dd"],
      ["dd", "./dd/"],
      ["dd", "here/dd"],
      ["f.txt", "f.txt"],
      ["f.txt", "here/f.txt"],
    ]) {
      expect((await c.cmd(`RNFR ${from}`)).code, from).toBe(350);
      expect((await c.cmd(`RNTO ${to}`)).all, `${from} -> ${to}`).toBe("250 Rename successful");
    }
    expect(readFileSync(path.join(dir, "dd", "in.txt"), "utf8")).toBe("kept");
    expect(readFileSync(path.join(dir, "f.txt"), "utf8")).toBe("file");
    // Below itself is still refused.
    await c.cmd("RNFR dd");
    expect((await c.cmd("RNTO dd/dd")).code).toBe(550);
    await c.cmd("RNFR dd");
    expect((await c.cmd("RNTO here/dd/x")).code).toBe(550);
  });

  it("RNTO to a path in a missing directory → 550 and the source stays", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "a"), "A");
    await c.cmd("RNFR a");
    expect((await c.cmd("RNTO nodir/b")).code).toBe(550);
    expect(existsSync(path.join(dir, "a"))).toBe(true);
  });

  it("SIZE answers 213 bytes in TYPE I, 550 in TYPE A, 550 for a directory or a missing file (RFC 3659 §4)", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "12345\n");
    mkdirSync(path.join(dir, "d"));
    expect((await c.cmd("TYPE I")).code).toBe(200);
    expect((await c.cmd("SIZE f")).all).toBe("213 6");
    expect((await c.cmd("SIZE d")).code).toBe(550);
    expect((await c.cmd("SIZE nope")).code).toBe(550);
    expect((await c.cmd("TYPE A")).code).toBe(200);
    expect((await c.cmd("SIZE f")).code).toBe(550);
  });

  it("MDTM answers 213 with a UTC time-val (RFC 3659 §3)", async () => {
    const { c, dir } = await inDir();
    const f = path.join(dir, "f");
    writeFileSync(f, "x");
    const t = new Date(Date.UTC(2021, 2, 4, 5, 6, 7));
    utimesSync(f, t, t);
    expect((await c.cmd("MDTM f")).all).toBe("213 20210304050607");
    expect((await c.cmd("MDTM nope")).code).toBe(550);
    mkdirSync(path.join(dir, "d"));
    expect((await c.cmd("MDTM d")).code).toBe(550);
  });

  it("MFMT sets the modification time and answers 213 Modify=...", async () => {
    const { c, dir } = await inDir();
    const f = path.join(dir, "f f");
    writeFileSync(f, "x");
    expect((await c.cmd("MFMT 20200102030405 f f")).all).toBe("213 Modify=20200102030405; f f");
    expect(statSync(f).mtimeMs).toBe(Date.UTC(2020, 0, 2, 3, 4, 5));
    expect((await c.cmd("MDTM f f")).all).toBe("213 20200102030405");
    expect((await c.cmd("MFMT 2020 f f")).code).toBe(501);
    expect((await c.cmd("MFMT 20201340000000 f f")).code).toBe(501);
    expect((await c.cmd("MFMT 20200102030405")).code).toBe(501);
    expect((await c.cmd("MFMT 20200102030405 missing")).code).toBe(550);
    // A time the file system cannot keep is answered with the one it kept (ext4 stops at 2446; where it is kept, the
    // answer is the time asked).
    for (const asked of ["25000101000000", "18991231000000", "20200102030405.250"]) {
      const r = await c.cmd(`MFMT ${asked} f f`);
      expect(r.code).toBe(213);
      const kept = /^213 Modify=(\d{14}(?:\.\d{3})?); f f$/.exec(r.all)?.[1];
      expect(kept, r.all).toBeDefined();
      expect(kept!.slice(0, 14)).toBe((await c.cmd("MDTM f f")).all.slice(4));
      expect(Date.UTC(+kept!.slice(0, 4), +kept!.slice(4, 6) - 1, +kept!.slice(6, 8), +kept!.slice(8, 10), +kept!.slice(10, 12), +kept!.slice(12, 14)) + Number(kept!.slice(15) || 0)).toBe(statSync(f).mtimeMs);
    }
    // Milliseconds that are not exact in binary come back as asked (the file system keeps them a few hundred
    // nanoseconds off, which the answer rounds away).
    for (const ms of ["123", "001", "999"]) {
      expect((await c.cmd(`MFMT 20200102030405.${ms} f f`)).all).toBe(`213 Modify=20200102030405.${ms}; f f`);
      expect(Math.abs(statSync(f).mtimeMs - (Date.UTC(2020, 0, 2, 3, 4, 5) + Number(ms)))).toBeLessThan(0.01);
    }
  });

  it("MLST answers 250 with one fact line starting with a space (RFC 3659 §7.2)", async () => {
    const { c, dir, vdir } = await inDir();
    writeFileSync(path.join(dir, "data.bin"), Buffer.alloc(77));
    const r = await c.cmd("MLST data.bin");
    expect(r.code).toBe(250);
    expect(r.lines).toHaveLength(3);
    expect(r.lines[1]).toMatch(new RegExp(`^ type=file;size=77;modify=\\d{14};perm=adfrw; ${vdir}/data\\.bin$`));
    const d = await c.cmd("MLST");
    expect(d.code).toBe(250);
    expect(d.lines[1]).toMatch(new RegExp(`^ type=dir;modify=\\d{14};perm=flcdmpe; ${vdir}$`));
    expect((await c.cmd("MLST nope")).code).toBe(550);
  });
});

describe("transfer parameters", () => {
  it("TYPE accepts A, A N, I, L 8 (also written L8); refuses E and A T with 504, nonsense and extra parameters with 501", async () => {
    const c = await login();
    for (const t of ["A", "a", "A N", "I", "i", "L 8", "L8", "l8"]) expect((await c.cmd(`TYPE ${t}`)).code, t).toBe(200);
    for (const t of ["E", "A T", "L 7", "L7"]) expect((await c.cmd(`TYPE ${t}`)).code, t).toBe(504);
    expect((await c.cmd("TYPE Q")).code).toBe(501);
    // A parameter where none belongs, or one too many: a syntax error, and the type stays as it was.
    for (const t of ["I X", "A N X", "L 8 8"]) expect((await c.cmd(`TYPE ${t}`)).code, t).toBe(501);
  });

  it("MODE S and STRU F are accepted; other modes/structures 504; nonsense 501", async () => {
    const c = await login();
    expect((await c.cmd("MODE S")).code).toBe(200);
    expect((await c.cmd("MODE B")).code).toBe(504);
    expect((await c.cmd("MODE X")).code).toBe(501);
    expect((await c.cmd("STRU F")).code).toBe(200);
    expect((await c.cmd("STRU R")).code).toBe(504);
    expect((await c.cmd("STRU X")).code).toBe(501);
  });

  it("ALLO takes a byte count with 200; nonsense is 501", async () => {
    const c = await login();
    expect((await c.cmd("ALLO 1000")).code).toBe(200);
    expect((await c.cmd("ALLO 1000 R 10")).code).toBe(200);
    expect((await c.cmd("ALLO lots")).code).toBe(501);
  });

  it("REST takes a non-negative offset with 350; nonsense 501", async () => {
    const c = await login();
    expect((await c.cmd("REST 100")).code).toBe(350);
    expect((await c.cmd("REST 0")).code).toBe(350);
    expect((await c.cmd("REST -1")).code).toBe(501);
    expect((await c.cmd("REST x")).code).toBe(501);
  });

  it("PASV answers 227 with this host's address and a port (RFC 959 §4.1.2)", async () => {
    const c = await login();
    const r = await c.cmd("PASV");
    expect(r.code).toBe(227);
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text)!;
    expect(m.slice(1, 5).join(".")).toBe("127.0.0.1");
    expect(Number(m[5]) * 256 + Number(m[6])).toBeGreaterThan(0);
  });

  it("EPSV answers 229 (|||port|); EPSV 1 too; EPSV 2 on IPv4 → 522; EPSV x → 501 (RFC 2428 §3)", async () => {
    const c = await login();
    expect((await c.cmd("EPSV")).text).toMatch(/\(\|\|\|\d+\|\)$/);
    expect((await c.cmd("EPSV 1")).code).toBe(229);
    expect((await c.cmd("EPSV 2")).all).toBe("522 Network protocol not supported, use (1)");
    expect((await c.cmd("EPSV 7")).all).toBe("522 Network protocol not supported, use (1)");
    expect((await c.cmd("EPSV x")).code).toBe(501);
  });

  it("after EPSV ALL, PASV PORT and EPRT are refused (RFC 2428 §4)", async () => {
    const c = await login();
    expect((await c.cmd("EPSV ALL")).code).toBe(200);
    expect((await c.cmd("PASV")).code).toBe(503);
    expect((await c.cmd("PORT 127,0,0,1,4,1")).code).toBe(503);
    expect((await c.cmd("EPRT |1|127.0.0.1|1025|")).code).toBe(503);
    expect((await c.cmd("EPSV")).code).toBe(229);
  });

  it("PORT and EPRT accept the client's own address on ports >= 1024", async () => {
    const c = await login();
    expect((await c.cmd("PORT 127,0,0,1,4,0")).code).toBe(200);
    expect((await c.cmd("EPRT |1|127.0.0.1|1024|")).code).toBe(200);
  });

  it("PORT and EPRT refuse a foreign host (no FTP bounce) and privileged ports", async () => {
    const c = await login();
    expect((await c.cmd("PORT 10,1,2,3,4,1")).code).toBe(500);
    expect((await c.cmd("EPRT |1|192.0.2.1|2000|")).code).toBe(500);
    expect((await c.cmd("PORT 127,0,0,1,0,25")).code).toBe(500);
    expect((await c.cmd("EPRT |1|127.0.0.1|25|")).code).toBe(500);
  });

  it("PORT and EPRT refuse malformed arguments with 501 and unknown protocols with 522", async () => {
    const c = await login();
    expect((await c.cmd("PORT 1,2,3")).code).toBe(501);
    expect((await c.cmd("PORT 127,0,0,1,300,1")).code).toBe(501);
    expect((await c.cmd("EPRT 127.0.0.1:2000")).code).toBe(501);
    expect((await c.cmd("EPRT |3|127.0.0.1|2000|")).all).toBe("522 Network protocol not supported, use (1)");
  });

  it("EPRT with IPv6 on an IPv4 control connection → 522 naming protocol 1 (RFC 2428 §2), not a bounce refusal", async () => {
    const c = await login();
    expect((await c.cmd("EPRT |2|::1|2000|")).all).toBe("522 Network protocol not supported, use (1)");
    expect((await c.cmd("EPRT |2|2001:db8::1|2000|")).all).toBe("522 Network protocol not supported, use (1)");
    expect((await c.cmd("EPRT |9|::1|2000|")).all).toBe("522 Network protocol not supported, use (1)");
    // The protocol number decides, not the address's form: an IPv4-mapped address is still protocol 2.
    expect((await c.cmd("EPRT |2|::ffff:127.0.0.1|2000|")).all).toBe("522 Network protocol not supported, use (1)");
    // The session goes on, and a good EPRT still works.
    expect((await c.cmd("EPRT |1|127.0.0.1|2000|")).code).toBe(200);
  });

  it("ABOR with no transfer answers 225", async () => {
    const c = await login();
    expect((await c.cmd("ABOR")).code).toBe(225);
  });

  it("ABOR with no transfer closes a pending passive port", async () => {
    const c = await login();
    const port = await c.epsvPort();
    expect((await c.cmd("ABOR")).code).toBe(225);
    const { connectData } = await import("../helpers/raw-ftp.js");
    await expect(connectData("127.0.0.1", port)).rejects.toThrow();
  });
});

describe("listings", () => {
  async function fill(dir: string) {
    writeFileSync(path.join(dir, "b.txt"), "bbbb");
    writeFileSync(path.join(dir, "测试文件.txt"), "x");
    writeFileSync(path.join(dir, "with space.txt"), "");
    writeFileSync(path.join(dir, "-dash"), "d");
    mkdirSync(path.join(dir, "adir"));
  }

  it("LIST sends ls -l lines over the data connection: 150 then 226", async () => {
    const { c, dir } = await inDir();
    await fill(dir);
    const r = await c.retrieve("LIST");
    expect(r.prelim.code).toBe(150);
    expect(r.final.code).toBe(226);
    const lines = r.data.toString("utf8").split("\r\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(5);
    const byName = new Map(lines.map((l) => [l.replace(/^(\S+\s+){8}/, ""), l]));
    expect([...byName.keys()].sort()).toEqual(["-dash", "adir", "b.txt", "with space.txt", "测试文件.txt"].sort());
    expect(byName.get("b.txt")).toMatch(/^-rw-r--r-- 1 alice alice +4 [A-Z][a-z]{2} [ \d]\d (\d\d:\d\d| \d{4}) b\.txt$/);
    expect(byName.get("adir")).toMatch(/^drwx/);
  });

  it("LIST of a file lists just that file; LIST -la is read as options; LIST of a missing path → 550", async () => {
    const { c, dir } = await inDir();
    await fill(dir);
    const one = await c.retrieve("LIST b.txt");
    expect(one.data.toString().trim()).toMatch(/ b\.txt$/);
    const la = await c.retrieve("LIST -la");
    expect(la.final.code).toBe(226);
    expect(la.data.toString().trim().split("\r\n")).toHaveLength(5);
    const dash = await c.retrieve("LIST -dash");
    expect(dash.data.toString().trim()).toMatch(/ -dash$/);
    const missing = await c.retrieve("LIST nope");
    expect(missing.prelim.code).toBe(550);
  });

  it("NLST sends bare names", async () => {
    const { c, dir } = await inDir();
    await fill(dir);
    const r = await c.retrieve("NLST", { how: "PASV" });
    expect(r.final.code).toBe(226);
    expect(r.data.toString("utf8").split("\r\n").filter(Boolean).sort()).toEqual(
      ["-dash", "adir", "b.txt", "with space.txt", "测试文件.txt"].sort(),
    );
  });

  it("MLSD sends fact lines (RFC 3659 §7); MLSD of a file → 501", async () => {
    const { c, dir } = await inDir();
    await fill(dir);
    const r = await c.retrieve("MLSD");
    expect(r.final.code).toBe(226);
    const lines = r.data.toString("utf8").split("\r\n").filter(Boolean);
    expect(lines.some((l) => /^type=file;size=4;modify=\d{14};perm=adfrw; b\.txt$/.test(l))).toBe(true);
    expect(lines.some((l) => /^type=dir;modify=\d{14};perm=flcdmpe; adir$/.test(l))).toBe(true);
    expect(lines.some((l) => l.endsWith("; 测试文件.txt"))).toBe(true);
    expect(lines.some((l) => l.endsWith("; with space.txt"))).toBe(true);
    const f = await c.retrieve("MLSD b.txt");
    expect(f.prelim.code).toBe(501);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("LIST writes ls's type letter for a FIFO (p) and a socket (s); MLSD types them as OS.unix=", async () => {
    const { c, dir } = await inDir();
    execFileSync("mkfifo", ["-m", "644", path.join(dir, "pipe")]);
    const unix = net.createServer();
    await new Promise<void>((res) => unix.listen(path.join(dir, "sock"), res));
    try {
      const r = await c.retrieve("LIST");
      expect(r.final.code).toBe(226);
      const lines = r.data.toString("utf8").split("\r\n").filter(Boolean);
      expect(lines.find((l) => l.endsWith(" pipe"))).toMatch(/^prw-r--r-- /);
      expect(lines.find((l) => l.endsWith(" sock"))).toMatch(/^s[rwx-]{9} /);
      const m = await c.retrieve("MLSD");
      const facts = m.data.toString("utf8").split("\r\n").filter(Boolean);
      expect(facts.find((l) => l.endsWith(" pipe"))).toMatch(/^type=OS\.unix=fifo;size=0;modify=\d{14};perm=df; pipe$/);
      expect(facts.find((l) => l.endsWith(" sock"))).toMatch(/^type=OS\.unix=socket;size=0;modify=\d{14};perm=df; sock$/);
      expect((await c.cmd("MLST pipe")).lines[1]).toMatch(/^ type=OS\.unix=fifo;/);
    } finally {
      unix.close();
    }
  });

  describe("wildcards in LIST and NLST", () => {
    async function globDir() {
      const { c, dir } = await inDir();
      for (const n of ["a.txt", "b.txt", "c.log", ".hidden.txt", "f1.txt", "f2.txt", "fx.txt", "测试.txt"]) writeFileSync(path.join(dir, n), n);
      mkdirSync(path.join(dir, "sub"));
      writeFileSync(path.join(dir, "sub", "in.txt"), "in");
      writeFileSync(path.join(dir, "sub", "in.bin"), "bin");
      return { c, dir };
    }
    const names = (r: { data: Buffer }) => r.data.toString("utf8").split("\r\n").filter(Boolean);

    it("NLST *.txt sends the matching names, dot files left out", async () => {
      const { c } = await globDir();
      const r = await c.retrieve("NLST *.txt");
      expect(r.final.code).toBe(226);
      expect(names(r)).toEqual(["a.txt", "b.txt", "f1.txt", "f2.txt", "fx.txt", "测试.txt"]);
    });

    it("LIST *.txt sends ls -l lines of the matches; ? and [...] work too", async () => {
      const { c } = await globDir();
      const r = await c.retrieve("LIST *.txt");
      expect(r.final.code).toBe(226);
      const lines = names(r);
      expect(lines).toHaveLength(6);
      expect(lines[0]).toMatch(/^-rw-r--r-- 1 alice alice +5 .* a\.txt$/);
      expect(names(await c.retrieve("NLST f?.txt"))).toEqual(["f1.txt", "f2.txt", "fx.txt"]);
      expect(names(await c.retrieve("NLST f[0-9].txt"))).toEqual(["f1.txt", "f2.txt"]);
      expect(names(await c.retrieve("NLST f[!0-9].txt"))).toEqual(["fx.txt"]);
      expect(names(await c.retrieve("LIST -l s*"))).toEqual([expect.stringMatching(/^drwx.* sub$/)]);
    });

    it("matches in the last segment of a path; NLST names keep the directory as written", async () => {
      const { c } = await globDir();
      const l = await c.retrieve("LIST sub/*.txt");
      expect(l.final.code).toBe(226);
      expect(names(l)).toEqual([expect.stringMatching(/ in\.txt$/)]);
      expect(names(await c.retrieve("NLST sub/*.txt"))).toEqual(["sub/in.txt"]);
      // A file named without a pattern comes back as written too (mget of one name sends it back in a RETR).
      expect(names(await c.retrieve("NLST sub/in.txt"))).toEqual(["sub/in.txt"]);
      expect(names(await c.retrieve("NLST ./sub/in.*"))).toEqual(["./sub/in.bin", "./sub/in.txt"]);
      // Each NLST name can be sent back as it is (what mget does).
      expect((await c.retrieve("RETR sub/in.txt")).data.toString()).toBe("in");
    });

    it("hidden names only for a pattern that starts with a dot", async () => {
      const { c } = await globDir();
      expect(names(await c.retrieve("NLST .*.txt"))).toEqual([".hidden.txt"]);
      expect(names(await c.retrieve("NLST *hidden*"))).toEqual([]);
    });

    it("no match is 450 (RFC 959's reply for LIST and NLST), and the session goes on", async () => {
      const { c } = await globDir();
      const n = await c.retrieve("NLST *.none");
      expect(n.prelim.all).toBe("450 *.none: No files found");
      const l = await c.retrieve("LIST sub/*.none");
      expect(l.prelim.code).toBe(450);
      // A missing directory before the pattern is a missing path.
      expect((await c.retrieve("LIST nodir/*.txt")).prelim.code).toBe(550);
      // Without a wildcard a missing name is still 550.
      expect((await c.retrieve("NLST none.txt")).prelim.code).toBe(550);
      expect((await c.cmd("NOOP")).code).toBe(200);
    });

    it("a name that exists is listed as it is, wildcard characters and all", async () => {
      const { c, dir } = await globDir();
      writeFileSync(path.join(dir, "*.txt"), "star");
      expect(names(await c.retrieve("NLST *.txt"))).toEqual(["*.txt"]);
      // An escaped star matches only a star.
      expect(names(await c.retrieve("NLST \\*.*"))).toEqual(["*.txt"]);
    });

    it("is for LIST and NLST only: RETR, DELE, SIZE and MLSD take the name literally", async () => {
      const { c, dir } = await globDir();
      expect((await c.retrieve("RETR *.txt")).prelim.code).toBe(550);
      expect((await c.cmd("DELE *.txt")).code).toBe(550);
      expect((await c.cmd("SIZE a*")).code).toBe(550);
      expect((await c.retrieve("MLSD s*")).prelim.code).toBe(550);
      expect(existsSync(path.join(dir, "a.txt"))).toBe(true);
    });

    it("never reaches outside the home: .. stops at /, links leading out are left out", async () => {
      const { c, dir } = await globDir();
      symlinkSync("/etc", path.join(dir, "etc-link"));
      symlinkSync("/etc/hostname", path.join(dir, "host-link.txt"));
      // From the home's root, ../../* is the home's own entries.
      expect((await c.cmd("CWD /")).code).toBe(250);
      const up = names(await c.retrieve("NLST ../../*"));
      expect(up.length).toBeGreaterThan(0);
      for (const n of up) expect(existsSync(path.join(home, n.replace(/^(\.\.\/)+/, "")))).toBe(true);
      await c.cmd(`CWD ${path.basename(dir)}`);
      expect(names(await c.retrieve("NLST *link*"))).toEqual([]);
      expect((await c.retrieve("NLST etc-link/*")).prelim.code).toBe(550);
      expect((await c.retrieve("LIST /etc/pass*")).prelim.code).toBe(550);
    });
  });

  it("lists an empty directory as no lines", async () => {
    const { c } = await inDir();
    const r = await c.retrieve("LIST");
    expect(r.final.code).toBe(226);
    expect(r.data.length).toBe(0);
  });
});
