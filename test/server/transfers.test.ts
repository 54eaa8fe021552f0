// Transfers over raw sockets: every way of opening the data connection, TYPE A conversion, REST, APPE, ABOR, a data
// connection that never comes, a broken one, and a client that disconnects mid-upload.
import { execFileSync } from "node:child_process";
import { randomBytes, createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { connectData, RawFtp, readAll, type DataHow } from "../helpers/raw-ftp.js";
import { until, withTimeout } from "../helpers/util.js";

let srv: RunningServer;
let home: string;
const open: RawFtp[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }], { dataTimeoutMs: 500 });
  home = srv.homeOf("alice");
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
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

let dirCount = 0;
async function inDir(type: "A" | "I" = "I"): Promise<{ c: RawFtp; dir: string }> {
  const name = `x${dirCount++}`;
  const dir = path.join(home, name);
  mkdirSync(dir);
  const c = await login();
  expect((await c.cmd(`CWD /${name}`)).code).toBe(250);
  expect((await c.cmd(`TYPE ${type}`)).code).toBe(200);
  return { c, dir };
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("data connections", () => {
  const hows: DataHow[] = ["PASV", "EPSV", "PORT", "EPRT"];
  for (const how of hows) {
    it(`STOR then RETR through ${how}, byte for byte`, async () => {
      const { c, dir } = await inDir();
      const data = randomBytes(300_000);
      const up = await c.store("STOR blob.bin", data, { how });
      expect(up.prelim.code).toBe(150);
      expect(up.final.code).toBe(226);
      expect(sha(readFileSync(path.join(dir, "blob.bin")))).toBe(sha(data));
      const down = await c.retrieve("RETR blob.bin", { how });
      expect(down.prelim.code).toBe(150);
      expect(down.final.code).toBe(226);
      expect(sha(down.data)).toBe(sha(data));
    });
  }

  it("moves 0-byte and 1-byte files", async () => {
    const { c, dir } = await inDir();
    expect((await c.store("STOR empty", Buffer.alloc(0))).final.code).toBe(226);
    expect(statSync(path.join(dir, "empty")).size).toBe(0);
    expect((await c.store("STOR one", "Z")).final.code).toBe(226);
    expect((await c.retrieve("RETR empty")).data.length).toBe(0);
    expect((await c.retrieve("RETR one")).data.toString()).toBe("Z");
  });

  it("STOR over an existing file replaces it", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "a much longer old content");
    expect((await c.store("STOR f", "new")).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "f"), "utf8")).toBe("new");
  });

  it("moves files with UTF-8 names, spaces and a leading dash", async () => {
    const { c, dir } = await inDir();
    for (const name of ["测试文件.txt", "with  space .txt", "-leading-dash", " leading space"]) {
      expect((await c.store(`STOR ${name}`, name)).final.code, name).toBe(226);
      expect(readFileSync(path.join(dir, name), "utf8")).toBe(name);
      expect((await c.retrieve(`RETR ${name}`)).data.toString("utf8")).toBe(name);
    }
  });

  it("RETR of a missing file → 550 and the passive port is closed", async () => {
    const { c } = await inDir();
    const port = await c.epsvPort();
    expect((await c.cmd("RETR nope")).code).toBe(550);
    await expect(connectData("127.0.0.1", port)).rejects.toThrow();
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("RETR of a directory → 550; STOR onto a directory → 550", async () => {
    const { c, dir } = await inDir();
    mkdirSync(path.join(dir, "d"));
    expect((await c.retrieve("RETR d")).prelim.code).toBe(550);
    expect((await c.store("STOR d", "x")).prelim.code).toBe(550);
    expect(statSync(path.join(dir, "d")).isDirectory()).toBe(true);
  });

  it("a data set-up is used once: a second RETR needs a new PASV", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "x");
    expect((await c.retrieve("RETR f")).final.code).toBe(226);
    expect((await c.cmd("RETR f")).code).toBe(425);
  });

  it("a data connection that never arrives → 425 after the data timeout, and nothing is created", async () => {
    const { c, dir } = await inDir();
    await c.epsvPort();
    const started = Date.now();
    const r = await c.cmd("STOR never.bin", 5000);
    expect(r.code).toBe(425);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(existsSync(path.join(dir, "never.bin"))).toBe(false);
    writeFileSync(path.join(dir, "f"), "x");
    await c.cmd("PASV");
    expect((await c.cmd("RETR f", 5000)).code).toBe(425);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("an active connection to a port nobody listens on → 425", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "x");
    // Find a free port, then close it so the connection is refused.
    const a = await c.active("EPRT");
    a.close();
    await new Promise((r) => setTimeout(r, 20));
    expect((await c.cmd("RETR f", 5000)).code).toBe(425);
  });

  it("hangs up unserved on a passive data connection from another address; the RETR, left without one, gets 425", async () => {
    // The server only ever sees 127.0.0.1 here; 127.0.0.2 is another loopback address on Linux. The transfer waits on
    // for the client's own connection, which never comes here, so it ends at the data timeout (test/security/bounce
    // has the client's own connection served after such a one).
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "secret");
    const port = await c.epsvPort();
    const net = await import("node:net");
    const foreign = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" });
    foreign.on("error", () => undefined);
    sockets.push(foreign);
    const got = readAll(foreign, 5000).catch(() => Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 50));
    const r = await c.cmd("RETR f");
    expect(r.code).toBe(425);
    expect((await got).toString()).toBe("");
  });
});

describe("TYPE A", () => {
  it("sends LF line ends as CRLF", async () => {
    const { c, dir } = await inDir("A");
    writeFileSync(path.join(dir, "t.txt"), "one\ntwo\n\nthree");
    const r = await c.retrieve("RETR t.txt");
    expect(r.final.code).toBe(226);
    expect(r.data.toString("latin1")).toBe("one\r\ntwo\r\n\r\nthree");
  });

  it("stores CRLF line ends as LF", async () => {
    const { c, dir } = await inDir("A");
    expect((await c.store("STOR t.txt", "one\r\ntwo\r\n\r\nthree\r\n")).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "t.txt"), "latin1")).toBe("one\ntwo\n\nthree\n");
  });

  it("TYPE I moves the same bytes unchanged", async () => {
    const { c, dir } = await inDir("I");
    const raw = "a\r\nb\nc\r";
    expect((await c.store("STOR b.txt", raw)).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "b.txt"), "latin1")).toBe(raw);
    expect((await c.retrieve("RETR b.txt")).data.toString("latin1")).toBe(raw);
  });

  it("converts a large text file both ways without losing a line end at chunk borders", async () => {
    const { c, dir } = await inDir("A");
    const text = Array.from({ length: 60_000 }, (_, i) => `line ${i} ${"x".repeat(i % 37)}`).join("\n") + "\n";
    writeFileSync(path.join(dir, "big.txt"), text);
    const down = await c.retrieve("RETR big.txt");
    expect(down.data.toString("latin1")).toBe(text.replace(/\n/g, "\r\n"));
    expect((await c.store("STOR back.txt", down.data)).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "back.txt"), "latin1")).toBe(text);
  });
});

describe("REST and APPE", () => {
  it("REST applies to the next RETR even with other commands between (RFC 3659 §5)", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "0123456789");
    expect((await c.cmd("REST 4")).code).toBe(350);
    expect((await c.cmd("PWD")).code).toBe(257);
    expect((await c.cmd("NOOP")).code).toBe(200);
    expect((await c.cmd("TYPE I")).code).toBe(200);
    expect((await c.cmd("SIZE f")).code).toBe(213);
    const r = await c.retrieve("RETR f", { how: "PASV" });
    expect(r.final.code).toBe(226);
    expect(r.data.toString()).toBe("456789");
    // Used once: the next RETR starts at 0.
    expect((await c.retrieve("RETR f")).data.toString()).toBe("0123456789");
  });

  it("REST at the end sends nothing; REST past the end → 554", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "0123456789");
    await c.cmd("REST 10");
    const atEnd = await c.retrieve("RETR f");
    expect(atEnd.final.code).toBe(226);
    expect(atEnd.data.length).toBe(0);
    await c.cmd("REST 11");
    expect((await c.retrieve("RETR f")).prelim.code).toBe(554);
    // The refused REST is used up as well.
    expect((await c.retrieve("RETR f")).data.toString()).toBe("0123456789");
  });

  it("REST+STOR keeps the prefix and writes from the offset", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "0123456789");
    expect((await c.cmd("REST 4")).code).toBe(350);
    expect((await c.cmd("NOOP")).code).toBe(200);
    const r = await c.store("STOR f", "abc");
    expect(r.final.code).toBe(226);
    expect(readFileSync(path.join(dir, "f"), "utf8")).toBe("0123abc");
  });

  it("REST+STOR at exactly the end appends; past the end → 554 and the file is unchanged", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "01234");
    await c.cmd("REST 5");
    expect((await c.store("STOR f", "56789")).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "f"), "utf8")).toBe("0123456789");
    await c.cmd("REST 20");
    expect((await c.store("STOR f", "zzz")).prelim.code).toBe(554);
    expect(readFileSync(path.join(dir, "f"), "utf8")).toBe("0123456789");
    await c.cmd("REST 1");
    expect((await c.store("STOR new", "zzz")).prelim.code).toBe(554);
    expect(existsSync(path.join(dir, "new"))).toBe(false);
  });

  it("resumes a large binary download and upload with REST", async () => {
    const { c, dir } = await inDir();
    const data = randomBytes(2 * 1024 * 1024 + 17);
    writeFileSync(path.join(dir, "src"), data);
    const cut = 1_000_003;
    await c.cmd(`REST ${cut}`);
    const tail = await c.retrieve("RETR src");
    expect(sha(Buffer.concat([data.subarray(0, cut), tail.data]))).toBe(sha(data));
    writeFileSync(path.join(dir, "dst"), data.subarray(0, cut));
    await c.cmd(`REST ${cut}`);
    expect((await c.store("STOR dst", data.subarray(cut))).final.code).toBe(226);
    expect(sha(readFileSync(path.join(dir, "dst")))).toBe(sha(data));
  });

  it("APPE appends to an existing file and creates a missing one", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "abc");
    expect((await c.store("APPE f", "def")).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "f"), "utf8")).toBe("abcdef");
    expect((await c.store("APPE g", "new")).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "g"), "utf8")).toBe("new");
  });

  it("APPE ignores a pending REST", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "f"), "abc");
    await c.cmd("REST 1");
    expect((await c.store("APPE f", "def")).final.code).toBe(226);
    expect(readFileSync(path.join(dir, "f"), "utf8")).toBe("abcdef");
  });
});

describe("ABOR and broken connections", () => {
  it("ABOR during an upload → 426 then 226 (RFC 959 §4.1.3), and what arrived is kept", async () => {
    const { c, dir } = await inDir();
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR aborted.bin")).code).toBe(150);
    const sock = await dc.get();
    sockets.push(sock);
    sock.write(Buffer.alloc(10_000, 1));
    await until(() => existsSync(path.join(dir, "aborted.bin")) && statSync(path.join(dir, "aborted.bin")).size === 10_000, 5000, "upload to land");
    c.sendRaw(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from("ABOR\r\n")]));
    const first = await c.read();
    const second = await c.read();
    expect([first.code, second.code]).toEqual([426, 226]);
    expect(statSync(path.join(dir, "aborted.bin")).size).toBe(10_000);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("ABOR during a download the client does not read → 426 then 226", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "big"), Buffer.alloc(32 * 1024 * 1024));
    const dc = await c.dataConnection("PASV");
    expect((await c.cmd("RETR big")).code).toBe(150);
    const sock = await dc.get();
    sockets.push(sock);
    sock.pause();
    await new Promise((r) => setTimeout(r, 100));
    const first = await c.cmd("ABOR");
    const second = await c.read();
    expect([first.code, second.code]).toEqual([426, 226]);
    await withTimeout(new Promise((r) => sock.once("close", r).resume()), 5000, "data connection not closed after ABOR");
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("STAT and NOOP are answered during a transfer", async () => {
    const { c } = await inDir();
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR slow")).code).toBe(150);
    const sock = await dc.get();
    sockets.push(sock);
    sock.write("some");
    expect((await c.cmd("NOOP")).code).toBe(200);
    const st = await c.cmd("STAT");
    expect(st.code).toBe(211);
    expect(st.all).toContain("STOR");
    sock.end();
    expect((await c.read()).code).toBe(226);
  });

  it("a data connection broken during a download → 426", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "big"), Buffer.alloc(32 * 1024 * 1024));
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("RETR big")).code).toBe(150);
    const sock = await dc.get();
    await new Promise<void>((resolve) => sock.once("data", () => resolve()));
    sock.resetAndDestroy();
    expect((await c.read(10_000)).code).toBe(426);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("a data connection broken during an upload → 426, and the partial file stays for a resume", async () => {
    const { c, dir } = await inDir();
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR partial.bin")).code).toBe(150);
    const sock = await dc.get();
    const part = randomBytes(50_000);
    sock.write(part);
    const file = path.join(dir, "partial.bin");
    await until(() => existsSync(file) && statSync(file).size === part.length, 5000, "upload to land");
    sock.resetAndDestroy();
    expect((await c.read(10_000)).code).toBe(426);
    expect(sha(readFileSync(file))).toBe(sha(part));
    // Resume with REST.
    const rest = randomBytes(30_000);
    await c.cmd(`REST ${part.length}`);
    expect((await c.store("STOR partial.bin", rest)).final.code).toBe(226);
    expect(sha(readFileSync(file))).toBe(sha(Buffer.concat([part, rest])));
  });

  it("a client that disconnects mid-upload leaves its partial file", async () => {
    const { c, dir } = await inDir();
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR gone.bin")).code).toBe(150);
    const sock = await dc.get();
    const part = randomBytes(70_000);
    sock.write(part);
    const file = path.join(dir, "gone.bin");
    await until(() => existsSync(file) && statSync(file).size === part.length, 5000, "upload to land");
    c.sock.destroy();
    sock.destroy();
    await c.closed;
    // Give the server time to finish its clean-up, then check the file is still whole.
    await new Promise((r) => setTimeout(r, 300));
    expect(sha(readFileSync(file))).toBe(sha(part));
    const c2 = await login();
    expect((await c2.cmd(`SIZE ${path.basename(dir)}/gone.bin`)).code).toBe(550); // TYPE A by default
    await c2.cmd("TYPE I");
    expect((await c2.cmd(`SIZE /${path.basename(dir)}/gone.bin`)).all).toBe(`213 ${part.length}`);
  });

  it("a client that disconnects mid-overwrite leaves what it sent in place of the old file", async () => {
    const { c, dir } = await inDir();
    const file = path.join(dir, "over.bin");
    writeFileSync(file, Buffer.alloc(1000, 7));
    const dc = await c.dataConnection("EPSV");
    expect((await c.cmd("STOR over.bin")).code).toBe(150);
    const sock = await dc.get();
    const part = randomBytes(40_000);
    sock.write(part);
    // The new bytes go to a temporary file beside the target until the upload ends.
    await until(
      () => readdirSync(dir).some((n) => n !== "over.bin" && statSync(path.join(dir, n)).size === part.length),
      5000,
      "upload to land",
    );
    c.sock.destroy();
    sock.destroy();
    await c.closed;
    await until(() => statSync(file).size === part.length, 5000, "partial upload to replace the file");
    expect(sha(readFileSync(file))).toBe(sha(part));
  });
});

describe("timing of the data connection", () => {
  it("accepts upload data the client sent (and ended) before STOR arrived", async () => {
    const { c, dir } = await inDir();
    const sock = await c.epsv();
    sockets.push(sock);
    sock.end("sent early");
    await new Promise((r) => setTimeout(r, 100));
    expect((await c.cmd("STOR early.txt")).code).toBe(150);
    expect((await c.read()).code).toBe(226);
    expect(readFileSync(path.join(dir, "early.txt"), "utf8")).toBe("sent early");
  });

  it("waits for a passive connection made after the command", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "late.txt"), "late");
    const port = await c.epsvPort();
    c.send("RETR late.txt");
    await new Promise((r) => setTimeout(r, 200));
    expect(c.pending).toBe("");
    const sock = await connectData("127.0.0.1", port);
    expect((await c.read()).code).toBe(150);
    expect((await readAll(sock)).toString()).toBe("late");
    expect((await c.read()).code).toBe(226);
  });
});

describe("special files in a home", () => {
  it("refuses RETR, STOR and APPE of a FIFO with 550 instead of hanging", async () => {
    const { c, dir } = await inDir();
    execFileSync("mkfifo", [path.join(dir, "pipe")]);
    expect((await c.retrieve("RETR pipe")).prelim.code).toBe(550);
    expect((await c.store("STOR pipe", "x")).prelim.code).toBe(550);
    expect((await c.store("APPE pipe", "x")).prelim.code).toBe(550);
    expect((await c.cmd("SIZE pipe")).code).toBe(550);
    expect((await c.cmd("NOOP")).code).toBe(200);
  });

  it("a symlink loop is refused, and left out of listings", async () => {
    const { c, dir } = await inDir();
    symlinkSync("loop", path.join(dir, "loop"));
    writeFileSync(path.join(dir, "real.txt"), "r");
    expect((await c.cmd("CWD loop")).code).toBe(550);
    expect((await c.retrieve("RETR loop")).prelim.code).toBe(550);
    expect((await c.retrieve("NLST")).data.toString()).toBe("real.txt\r\n");
  });

  it("leaves names with CR or LF (made on the disk) out of listings and STAT, so they cannot forge lines", async () => {
    const { c, dir } = await inDir();
    writeFileSync(path.join(dir, "evil\r\n213 End of status"), "x");
    writeFileSync(path.join(dir, "evil2\nfake.txt"), "x");
    writeFileSync(path.join(dir, "ok.txt"), "x");
    const st = await c.cmd("STAT .");
    expect(st.code).toBe(213);
    expect(st.lines).toHaveLength(3);
    expect(st.lines[1]).toMatch(/ ok\.txt$/);
    expect((await c.cmd("NOOP")).all).toBe("200 NOOP ok");
    expect((await c.retrieve("NLST")).data.toString()).toBe("ok.txt\r\n");
    expect((await c.retrieve("MLSD")).data.toString().split("\r\n").filter(Boolean)).toHaveLength(1);
  });

  it("lists a directory of 3000 entries completely", async () => {
    const { c, dir } = await inDir();
    for (let i = 0; i < 3000; i++) writeFileSync(path.join(dir, `f${String(i).padStart(4, "0")}`), "");
    const names = (await c.retrieve("NLST")).data.toString().split("\r\n").filter(Boolean);
    expect(names).toHaveLength(3000);
    expect(names[0]).toBe("f0000");
    expect(names[2999]).toBe("f2999");
    const mlsd = (await c.retrieve("MLSD")).data.toString().split("\r\n").filter(Boolean);
    expect(mlsd).toHaveLength(3000);
  });
});
