// Issue 3, HASH on the worker pool (draft-bryan-ftpext-hash) and RANG (draft-bryan-ftp-range): digests are checked
// against sha256sum/sha1sum/md5sum and node:zlib's crc32 of the same bytes. The worker script loads from dist/, so
// run `npm run build` first.

import { randomBytes } from "node:crypto";
import { mkdirSync, openSync, closeSync, readFileSync, symlinkSync, writeFileSync, writeSync, ftruncateSync } from "node:fs";
import { createReadStream } from "node:fs";
import * as path from "node:path";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { runProcess } from "../helpers/util.js";

const TOOLS = { "SHA-256": "sha256sum", "SHA-1": "sha1sum", MD5: "md5sum" } as const;

/** Digest of a whole file, or of bytes [start, end] (inclusive), by the coreutils tool. */
async function toolDigest(tool: string, file: string, range?: [number, number]): Promise<string> {
  const q = `'${file.replace(/'/g, "'\\''")}'`;
  const cmd = range ? `tail -c +${range[0] + 1} ${q} | head -c ${range[1] - range[0] + 1} | ${tool}` : `${tool} < ${q}`;
  const r = await runProcess("sh", ["-c", cmd], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout.split(/\s+/)[0]!;
}

async function crcOf(file: string, range?: [number, number]): Promise<string> {
  let crc = 0;
  const stream = createReadStream(file, range ? { start: range[0], end: range[1] } : {});
  for await (const chunk of stream) crc = crc32(chunk as Buffer, crc);
  return (crc >>> 0).toString(16).padStart(8, "0");
}

async function expected(alg: string, file: string, range?: [number, number]): Promise<string> {
  return alg === "CRC32" ? crcOf(file, range) : toolDigest(TOOLS[alg as keyof typeof TOOLS], file, range);
}

function parseHash(text: string): { alg: string; start: number; end: number; digest: string; name: string } {
  const m = /^(\S+) (\d+)-(\d+) ([0-9a-f]+) (.+)$/.exec(text);
  if (!m) throw new Error(`not a HASH reply: ${text}`);
  return { alg: m[1]!, start: Number(m[2]), end: Number(m[3]), digest: m[4]!, name: m[5]! };
}

describe("HASH, OPTS HASH, RANG", () => {
  let s: RunningServer;
  let c: RawFtp;
  let home: string;
  const data = randomBytes(1024 * 1024 + 123);

  beforeAll(async () => {
    s = await startServer([{ name: "alice", password: "pw" }], { hashWorkers: 2 });
    home = s.homeOf("alice");
    writeFileSync(path.join(home, "data.bin"), data);
    writeFileSync(path.join(home, "hello.txt"), "hello world\n");
    writeFileSync(path.join(home, "empty"), "");
    writeFileSync(path.join(home, "with space.txt"), "spaces are fine\n");
    mkdirSync(path.join(home, "dir"));
    symlinkSync("/etc/hostname", path.join(home, "escape"));
    c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
  });

  afterAll(async () => {
    await c?.close();
    await s?.close();
  });

  it("FEAT lists HASH with SHA-256 selected, and RANG STREAM; the * follows OPTS HASH", async () => {
    const feat = await c.expect("FEAT", 211);
    expect(feat.lines).toContain(" HASH SHA-256*;SHA-1;MD5;CRC32");
    expect(feat.lines).toContain(" RANG STREAM");
    expect((await c.expect("OPTS HASH", 200)).text).toBe("SHA-256");
    expect((await c.expect("OPTS HASH md5", 200)).text).toBe("MD5");
    expect((await c.expect("FEAT", 211)).lines).toContain(" HASH SHA-256;SHA-1;MD5*;CRC32");
    // An unknown algorithm is refused and the selection stays.
    expect((await c.cmd("OPTS HASH SHA-512")).code).toBe(501);
    expect((await c.expect("OPTS HASH", 200)).text).toBe("MD5");
    expect((await c.expect("FEAT", 211)).lines).toContain(" HASH SHA-256;SHA-1;MD5*;CRC32");
    await c.expect("OPTS HASH SHA-256", 200);
    expect((await c.expect("FEAT", 211)).lines).toContain(" HASH SHA-256*;SHA-1;MD5;CRC32");
    // A fresh session starts at SHA-256 again.
    const other = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    expect((await other.expect("OPTS HASH", 200)).text).toBe("SHA-256");
    await other.close();
  });

  it.each(["SHA-256", "SHA-1", "MD5", "CRC32"])("%s of whole files matches the reference tools", async (alg) => {
    await c.expect(`OPTS HASH ${alg}`, 200);
    for (const name of ["data.bin", "hello.txt", "with space.txt"]) {
      const file = path.join(home, name);
      const size = readFileSync(file).length;
      const r = await c.expect(`HASH ${name}`, 213, 30_000);
      expect(parseHash(r.text)).toEqual({ alg, start: 0, end: size - 1, digest: await expected(alg, file), name });
    }
    const empty = parseHash((await c.expect("HASH empty", 213)).text);
    expect(empty.digest).toBe(await expected(alg, path.join(home, "empty")));
    await c.expect("OPTS HASH SHA-256", 200);
  });

  it("RANG limits the next HASH to [start, end] inclusive, once; RANG 1 0 resets", async () => {
    const file = path.join(home, "data.bin");
    for (const alg of ["SHA-256", "MD5", "CRC32", "SHA-1"]) {
      await c.expect(`OPTS HASH ${alg}`, 200);
      for (const [a, b] of [
        [0, 0],
        [100, 199],
        [4096, 700_000],
        [data.length - 10, data.length - 1],
      ] as [number, number][]) {
        await c.expect(`RANG ${a} ${b}`, 350);
        const h = parseHash((await c.expect("HASH data.bin", 213)).text);
        expect(h).toMatchObject({ alg, start: a, end: b });
        expect(h.digest).toBe(await expected(alg, file, [a, b]));
      }
    }
    await c.expect("OPTS HASH SHA-256", 200);
    const whole = await expected("SHA-256", file);
    // The range was used up by the HASH before: this one is the whole file.
    expect(parseHash((await c.expect("HASH data.bin", 213)).text)).toMatchObject({ start: 0, end: data.length - 1, digest: whole });
    // RANG 1 0 resets a pending range.
    await c.expect("RANG 5 10", 350);
    expect((await c.expect("RANG 1 0", 350)).code).toBe(350);
    expect(parseHash((await c.expect("HASH data.bin", 213)).text).digest).toBe(whole);
    // An end past the file stops at its last byte.
    await c.expect(`RANG 1000 ${data.length + 5000}`, 350);
    const tail = parseHash((await c.expect("HASH data.bin", 213)).text);
    expect(tail).toMatchObject({ start: 1000, end: data.length - 1 });
    expect(tail.digest).toBe(await expected("SHA-256", file, [1000, data.length - 1]));
    // A range that starts at or past the end selects nothing: refused, and the range is used up.
    await c.expect(`RANG ${data.length} ${data.length + 10}`, 350);
    expect((await c.cmd("HASH data.bin")).code).toBe(554);
    expect(parseHash((await c.expect("HASH data.bin", 213)).text).digest).toBe(whole);
    // Malformed ranges are refused.
    expect((await c.cmd("RANG 10 5")).code).toBe(501);
    expect((await c.cmd("RANG x y")).code).toBe(501);
    expect(parseHash((await c.expect("HASH data.bin", 213)).text).digest).toBe(whole);
  });

  it("errors: missing file 550, directory 553, outside the jail refused; the pool keeps answering", async () => {
    expect((await c.cmd("HASH nope.bin")).code).toBe(550);
    expect((await c.cmd("HASH dir")).code).toBe(553);
    expect((await c.cmd("HASH /")).code).toBe(553);
    // A link out of the home, and .. past the root (which stays inside: there is no such file).
    expect((await c.cmd("HASH escape")).code).toBe(550);
    expect((await c.cmd("HASH ../../../../etc/hostname")).code).toBe(550);
    expect((await c.cmd("HASH")).code).toBe(501);
    const anon = await RawFtp.connect(s.port);
    expect((await anon.cmd("HASH hello.txt")).code).toBe(530);
    await anon.close();
    const ok = parseHash((await c.expect("HASH hello.txt", 213)).text);
    expect(ok.digest).toBe(await expected("SHA-256", path.join(home, "hello.txt")));
    // Errors in a burst, interleaved with good requests from other sessions, leave the pool working.
    const others = await Promise.all([0, 1, 2].map(() => RawFtp.login(s.port, "alice", "pw", { type: "I" })));
    const replies = await Promise.all(
      others.map(async (o, i) => [await o.cmd(i % 2 ? "HASH nope" : "HASH data.bin", 30_000), await o.cmd("HASH hello.txt")]),
    );
    for (const [i, [first, second]] of replies.entries()) {
      expect(first!.code).toBe(i % 2 ? 550 : 213);
      expect(parseHash(second!.text).digest).toBe(ok.digest);
      await others[i]!.close();
    }
  });
});

describe("HASH of a 200 MiB file under load", () => {
  let s: RunningServer;
  let big: string;
  const SIZE = 200 * 1024 * 1024;

  beforeAll(async () => {
    s = await startServer([{ name: "alice", password: "pw" }], { hashWorkers: 2, maxSessionsPerUser: 30, maxConnectionsPerIp: 30 });
    const home = s.homeOf("alice");
    big = path.join(home, "big.bin");
    // Sparse, with random data in a few places so a wrong offset or length changes the digest.
    const fd = openSync(big, "w");
    try {
      ftruncateSync(fd, SIZE);
      for (const at of [0, 37 * 1024 * 1024 + 5, 100 * 1024 * 1024, SIZE - 1024 * 1024]) writeSync(fd, randomBytes(1024 * 1024), 0, 1024 * 1024, at);
    } finally {
      closeSync(fd);
    }
    mkdirSync(path.join(home, "many"));
    for (let i = 0; i < 300; i++) writeFileSync(path.join(home, "many", `f${String(i).padStart(3, "0")}`), "");
  });

  afterAll(async () => {
    await s?.close(); // removes the data dir with the big file
  });

  it("20 concurrent HASH requests are all right while another session keeps listing directories", async () => {
    const plan = Array.from({ length: 20 }, (_, i) => ({
      alg: ["SHA-256", "MD5", "CRC32", "SHA-1"][i % 4]!,
      range: i % 5 === 4 ? ([30 * 1024 * 1024, 120 * 1024 * 1024 - 1] as [number, number]) : undefined,
    }));
    const wanted = new Map<string, string>();
    for (const p of plan) {
      const key = `${p.alg} ${p.range ?? ""}`;
      if (!wanted.has(key)) wanted.set(key, await expected(p.alg, big, p.range));
    }
    const sessions = await Promise.all(plan.map(() => RawFtp.login(s.port, "alice", "pw", { type: "I" })));
    const lister = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
    try {
      for (const [i, p] of plan.entries()) {
        await sessions[i]!.expect(`OPTS HASH ${p.alg}`, 200);
        if (p.range) await sessions[i]!.expect(`RANG ${p.range[0]} ${p.range[1]}`, 350);
      }
      let hashing = true;
      let maxBusy = 0;
      const pool = s.server.hashPool;
      const hashes = Promise.all(sessions.map((c) => c.cmd("HASH big.bin", 120_000))).finally(() => (hashing = false));
      let listings = 0;
      let listingsWhileHashing = 0;
      for (let i = 0; i < 500 && (hashing || listings < 3); i++) {
        maxBusy = Math.max(maxBusy, pool.busy);
        const { data, final: reply } = await lister.retrieve(i % 2 ? "NLST many" : "LIST /many");
        expect(reply.code).toBe(226);
        expect(data.toString().split("\r\n").filter(Boolean)).toHaveLength(300);
        listings++;
        if (hashing) listingsWhileHashing++;
      }
      const replies = await hashes;
      // The hashing ran on the fixed-size pool, and the control loop kept serving the lister meanwhile.
      expect(maxBusy).toBeGreaterThan(0);
      expect(maxBusy).toBeLessThanOrEqual(2);
      expect(listingsWhileHashing).toBeGreaterThanOrEqual(1);
      for (const [i, r] of replies.entries()) {
        expect(r.code).toBe(213);
        const h = parseHash(r.text);
        const p = plan[i]!;
        expect(h.alg).toBe(p.alg);
        expect([h.start, h.end]).toEqual(p.range ?? [0, SIZE - 1]);
        expect(h.digest).toBe(wanted.get(`${p.alg} ${p.range ?? ""}`));
      }
      expect(listings).toBeGreaterThanOrEqual(3);
    } finally {
      await Promise.all([...sessions, lister].map((c) => c.close()));
    }
  }, 180_000);
});

describe("HASH for a client that has gone", () => {
  it("is withdrawn from the queue when its session ends, so it never takes a worker", async () => {
    const s = await startServer([{ name: "alice", password: "pw" }], { hashWorkers: 1, maxSessionsPerUser: 20 });
    try {
      const big = path.join(s.homeOf("alice"), "big.bin");
      const fd = openSync(big, "w");
      ftruncateSync(fd, 128 * 1024 * 1024); // sparse: cheap to make, still 128 MiB to hash
      closeSync(fd);
      const pool = s.server.hashPool;
      const gone: RawFtp[] = [];
      for (let i = 0; i < 8; i++) {
        const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
        c.send("HASH big.bin");
        gone.push(c);
      }
      for (let i = 0; i < 200 && pool.queued < 7; i++) await new Promise((r) => setTimeout(r, 10));
      expect(pool.queued).toBe(7); // one runs on the only worker, seven wait
      await Promise.all(gone.map((c) => c.close()));
      for (let i = 0; i < 200 && s.server.sessionCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(s.server.sessionCount).toBe(0);
      expect(pool.queued).toBe(0);
      // The pool still serves the next client.
      const c = await RawFtp.login(s.port, "alice", "pw", { type: "I" });
      writeFileSync(path.join(s.homeOf("alice"), "small.txt"), "abc");
      expect(parseHash((await c.expect("HASH small.txt", 213, 30_000)).text).end).toBe(2);
      await c.close();
    } finally {
      await s.close();
    }
  }, 60_000);
});

describe("HASH requests of several users", () => {
  let s: RunningServer;

  beforeAll(async () => {
    s = await startServer(
      [
        { name: "alice", password: "pw" },
        { name: "bob", password: "pw" },
      ],
      { hashWorkers: 1, maxSessionsPerUser: 10 },
    );
    // Sparse: hashing reads 512 MiB (long enough for the requests below to queue) without the disk holding it.
    const fd = openSync(path.join(s.homeOf("alice"), "big.bin"), "w");
    try {
      ftruncateSync(fd, 512 * 1024 * 1024);
    } finally {
      closeSync(fd);
    }
    writeFileSync(path.join(s.homeOf("bob"), "small.txt"), "bob's");
  });

  afterAll(async () => {
    await s?.close();
  });

  it("take turns on the workers: one user's queued requests do not keep another's waiting behind them all", async () => {
    const pool = s.server.hashPool;
    const alice = await Promise.all(Array.from({ length: 4 }, () => RawFtp.login(s.port, "alice", "pw", { type: "I" })));
    const bob = await RawFtp.login(s.port, "bob", "pw", { type: "I" });
    const answered: string[] = [];
    const asked: Promise<void>[] = [];
    try {
      // alice's four go in one by one: the first runs on the only worker, the other three queue behind it.
      for (const [i, c] of alice.entries()) {
        asked.push(c.cmd("HASH big.bin", 60_000).then((r) => void answered.push(`alice${i}:${r.code}`)));
        for (let n = 0; n < 500 && pool.busy + pool.queued < i + 1; n++) await new Promise((r) => setTimeout(r, 5));
        expect(pool.busy + pool.queued).toBe(i + 1);
      }
      expect(answered, "alice's first HASH ended before the others queued").toEqual([]);
      asked.push(bob.cmd("HASH small.txt", 60_000).then((r) => void answered.push(`bob:${r.code}`)));
      await Promise.all(asked);
      // bob's comes after one more of alice's, not after all of hers.
      expect(answered).toEqual(["alice0:213", "alice1:213", "bob:213", "alice2:213", "alice3:213"]);
    } finally {
      for (const c of [...alice, bob]) await c.close();
    }
  });
});
