// Uploads of one user racing near the quota: when there is room for one of them, exactly one succeeds (226) and the
// others get 552, whichever way their reservations interleave; the usage never passes the limit and is exact after.
// A real server on 127.0.0.1, a real SQLite store and disk, raw FTP clients that send each upload's data in two
// parts: the first parts of all uploads take the whole room between them, so each needs more before it can finish.

import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QuotaLedger } from "../../src/core/quota.js";
import { closedAfterEach } from "../helpers/cleanup.js";
import { startServer, storeMatchesDisk, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp, secureClient, type Reply } from "../helpers/raw-ftp.js";
import { diskBytes, sleep, until } from "../helpers/util.js";

const MiB = 1024 * 1024;
/** Room left for the uploads in every test: enough for one 6 MiB upload, not for two. */
const FREE = 10 * MiB;

const opened = closedAfterEach();

interface Mode {
  /** Transfer processes of the server (0: every upload is copied in the server process). */
  processes: number;
  ascii?: boolean;
  /** Under PROT P, over TLS data connections. */
  tls?: boolean;
}

let cert: { dir: string; cert: string; key: string } | null = null;
beforeAll(async () => {
  cert = await testCertificate();
});
afterAll(() => {
  if (cert) rmSync(cert.dir, { recursive: true, force: true });
});

async function start(quota: number, mode: Mode): Promise<RunningServer> {
  const s = await startServer([{ name: "alice", password: "secret", quota }], {
    transferProcesses: mode.processes,
    maxSessionsPerUser: 20,
    ...(mode.tls ? { tls: { cert: readFileSync(cert!.cert), key: readFileSync(cert!.key) } } : {}),
  });
  opened.servers.push(s);
  return s;
}

async function login(s: RunningServer, mode: Mode): Promise<RawFtp> {
  const c = await RawFtp.connect(s.port);
  opened.clients.push(c);
  if (mode.tls) {
    expect((await c.authTls()).code).toBe(234);
    await c.login("alice", "secret", { type: mode.ascii ? "A" : "I" });
    await c.protect();
    await c.waitSession();
  } else {
    await c.login("alice", "secret", { type: mode.ascii ? "A" : "I" });
  }
  return c;
}

/** Data that is the same bytes in ASCII mode and in binary (no CR, no LF). */
function payload(bytes: number): Buffer {
  const b = randomBytes(bytes);
  for (let i = 0; i < b.length; i++) b[i] = 0x41 + (b[i]! % 26);
  return b;
}

/** Sends the upload command on a fresh data connection; its 150 must come. Returns the data socket. */
async function begin(c: RawFtp, command: string, mode: Mode): Promise<{ sock: net.Socket; prelim: Reply }> {
  const raw = await c.epsv();
  opened.sockets.push(raw);
  const prelim = await c.cmd(command);
  expect(prelim.code, prelim.all).toBe(150);
  if (!mode.tls) return { sock: raw, prelim };
  const sock = await secureClient(tls.connect({ socket: raw, rejectUnauthorized: false, session: c.session }));
  sock.on("error", () => undefined);
  opened.sockets.push(sock);
  return { sock, prelim };
}

async function ledgerOf(s: RunningServer): Promise<QuotaLedger> {
  const l = await s.server.quota.peek("alice");
  if (!l) throw new Error("alice has no live ledger");
  return l;
}

/** Watches the live usage figure (and, where asked, the bytes in the home) for its highest value until stopped. */
function watchUsage(s: RunningServer, disk: boolean): { stop(): Promise<{ ledger: number; disk: number }> } {
  let running = true;
  let maxLedger = 0;
  let maxDisk = 0;
  const loop = (async () => {
    for (let i = 0; i < 100_000 && running; i++) {
      const l = await s.server.quota.peek("alice");
      if (l) maxLedger = Math.max(maxLedger, l.used);
      try {
        if (disk) maxDisk = Math.max(maxDisk, diskBytes(s.homeOf("alice")));
      } catch {
        // A file went away while the home was walked (a refused upload's, a temporary name): the next turn counts again.
      }
      await sleep(2);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { ledger: maxLedger, disk: maxDisk };
    },
  };
}

/** Waits until no upload of alice runs and the store holds a clean figure equal to the bytes in the home. */
const settled = (s: RunningServer) => storeMatchesDisk(s, "alice");

interface Racer {
  c: RawFtp;
  command: string;
  data: Buffer;
  /** Bytes sent before every upload has taken its share of the room. */
  first: number;
  /** Bytes of quota the first part takes (default: `first`; less where it replaces bytes the file had). */
  takes?: number;
}

/**
 * Starts the uploads one after the other (the first is the oldest), sends each its first part, waits until the
 * server has reserved all of them (the room is used up, each still needs more), then sends the rest of each and
 * collects the final replies.
 */
async function race(s: RunningServer, racers: Racer[], mode: Mode, usedBefore: number): Promise<{ codes: number[]; prelims: Reply[] }> {
  const started: { sock: net.Socket; prelim: Reply }[] = [];
  for (const r of racers) started.push(await begin(r.c, r.command, mode));
  racers.forEach((r, i) => started[i]!.sock.write(r.data.subarray(0, r.first)));
  const ledger = await ledgerOf(s);
  const reserved = usedBefore + racers.reduce((n, r) => n + (r.takes ?? r.first), 0);
  await until(() => ledger.used === reserved, 15_000, `the first parts reserved (${reserved} bytes)`).catch((e: Error) => {
    throw new Error(`${e.message}; used ${ledger.used}`);
  });
  racers.forEach((r, i) => started[i]!.sock.end(r.data.subarray(r.first)));
  const finals = await Promise.all(racers.map((r) => r.c.read(30_000)));
  return { codes: finals.map((f) => f.code), prelims: started.map((x) => x.prelim) };
}

const MODES: [string, Mode][] = [
  ["in the server process", { processes: 0 }],
  ["copied by transfer processes", { processes: 2 }],
  ["in ASCII mode", { processes: 2, ascii: true }],
  ["over TLS data connections", { processes: 2, tls: true }],
];

describe("two uploads of one user with room for one", () => {
  it.each(MODES)("STOR of two new files, %s: the older gets 226, the younger 552, and the usage is exact", async (_, mode) => {
    const s = await start(FREE, mode);
    const [a, b] = [await login(s, mode), await login(s, mode)];
    const [da, db] = [payload(6 * MiB), payload(6 * MiB)];
    const watch = watchUsage(s, true);
    const { codes } = await race(
      s,
      [
        { c: a, command: "STOR a.bin", data: da, first: 5 * MiB },
        { c: b, command: "STOR b.bin", data: db, first: 5 * MiB },
      ],
      mode,
      0,
    );
    const max = await watch.stop();
    expect(codes).toEqual([226, 552]);
    expect(readFileSync(path.join(s.homeOf("alice"), "a.bin")).equals(da)).toBe(true);
    expect(existsSync(path.join(s.homeOf("alice"), "b.bin"))).toBe(false);
    expect(await settled(s)).toBe(6 * MiB);
    expect(await a.usedBytes()).toBe(6 * MiB);
    expect(max.ledger).toBeLessThanOrEqual(FREE);
    expect(max.disk).toBeLessThanOrEqual(FREE);
    expect((await ledgerOf(s)).waiting).toBe(0);
    // The transfer processes did copy the binary plain uploads (and none of the others).
    expect(s.server.transfers.handedOver).toBe(mode.processes > 0 && !mode.ascii && !mode.tls ? 2 : 0);
  });

  it.each([0, 2])("APPE to two files (transfer processes: %i): one grows, the other keeps its old length", async (processes) => {
    const mode = { processes };
    const s = await start(2 * MiB + FREE, mode);
    const home = s.homeOf("alice");
    const [oa, ob] = [payload(MiB), payload(MiB)];
    writeFileSync(path.join(home, "a.log"), oa);
    writeFileSync(path.join(home, "b.log"), ob);
    const [a, b] = [await login(s, mode), await login(s, mode)];
    const [da, db] = [payload(6 * MiB), payload(6 * MiB)];
    const { codes } = await race(
      s,
      [
        { c: a, command: "APPE a.log", data: da, first: 5 * MiB },
        { c: b, command: "APPE b.log", data: db, first: 5 * MiB },
      ],
      mode,
      2 * MiB,
    );
    expect(codes).toEqual([226, 552]);
    expect(readFileSync(path.join(home, "a.log")).equals(Buffer.concat([oa, da]))).toBe(true);
    expect(readFileSync(path.join(home, "b.log")).equals(ob)).toBe(true);
    expect(await settled(s)).toBe(8 * MiB);
    expect(await a.usedBytes()).toBe(8 * MiB);
  });

  it.each([0, 2])("REST+STOR inside two files (transfer processes: %i): one is replaced, the other keeps its old content", async (processes) => {
    const mode = { processes };
    const s = await start(4 * MiB + FREE, mode);
    const home = s.homeOf("alice");
    const [oa, ob] = [payload(2 * MiB), payload(2 * MiB)];
    writeFileSync(path.join(home, "a.bin"), oa);
    writeFileSync(path.join(home, "b.bin"), ob);
    const [a, b] = [await login(s, mode), await login(s, mode)];
    await a.expect(`REST ${MiB}`, 350);
    await b.expect(`REST ${MiB}`, 350);
    // Each ends at 8 MiB: 6 MiB of growth. The first 6 MiB sent reach 7 MiB, 5 MiB past the old end.
    const [da, db] = [payload(7 * MiB), payload(7 * MiB)];
    const { codes } = await race(
      s,
      [
        { c: a, command: "STOR a.bin", data: da, first: 6 * MiB, takes: 5 * MiB },
        { c: b, command: "STOR b.bin", data: db, first: 6 * MiB, takes: 5 * MiB },
      ],
      mode,
      4 * MiB,
    );
    expect(codes).toEqual([226, 552]);
    expect(readFileSync(path.join(home, "a.bin")).equals(Buffer.concat([oa.subarray(0, MiB), da]))).toBe(true);
    expect(readFileSync(path.join(home, "b.bin")).equals(ob)).toBe(true);
    expect(await settled(s)).toBe(10 * MiB);
  });

  it.each([0, 2])("STOU twice (transfer processes: %i): one file stored under its name, none left of the other", async (processes) => {
    const mode = { processes };
    const s = await start(FREE, mode);
    const [a, b] = [await login(s, mode), await login(s, mode)];
    const [da, db] = [payload(6 * MiB), payload(6 * MiB)];
    const { codes, prelims } = await race(
      s,
      [
        { c: a, command: "STOU up.bin", data: da, first: 5 * MiB },
        { c: b, command: "STOU up.bin", data: db, first: 5 * MiB },
      ],
      mode,
      0,
    );
    expect(codes).toEqual([226, 552]);
    const names = prelims.map((p) => /^FILE: (.+)$/.exec(p.text)![1]!);
    expect(names[0]).not.toBe(names[1]);
    expect(readFileSync(path.join(s.homeOf("alice"), names[0]!)).equals(da)).toBe(true);
    expect(existsSync(path.join(s.homeOf("alice"), names[1]!))).toBe(false);
    expect(await settled(s)).toBe(6 * MiB);
  });

  it.each([0, 2])("announced with ALLO (transfer processes: %i): the room is reserved up front and the second gets 552", async (processes) => {
    const mode = { processes };
    const s = await start(FREE, mode);
    const [a, b] = [await login(s, mode), await login(s, mode)];
    const [da, db] = [payload(6 * MiB), payload(6 * MiB)];
    await a.expect(`ALLO ${da.length}`, 200);
    await b.expect(`ALLO ${db.length}`, 200);
    const sa = await begin(a, "STOR a.bin", mode);
    sa.sock.write(da.subarray(0, 5 * MiB));
    const rawB = await b.epsv();
    opened.sockets.push(rawB);
    const rb = await b.cmd("STOR b.bin");
    let codes: number[];
    if (rb.code === 150) {
      // The announced size was not held for the first upload: both run, and race as any two uploads do.
      rawB.write(db.subarray(0, 5 * MiB));
      const ledger = await ledgerOf(s);
      await until(() => ledger.used === FREE, 15_000, "both first parts reserved");
      sa.sock.end(da.subarray(5 * MiB));
      rawB.end(db.subarray(5 * MiB));
      codes = (await Promise.all([a.read(30_000), b.read(30_000)])).map((r) => r.code);
    } else {
      rawB.destroy();
      sa.sock.end(da.subarray(5 * MiB));
      codes = [(await a.read(30_000)).code, rb.code];
    }
    expect(codes).toEqual([226, 552]);
    expect(readFileSync(path.join(s.homeOf("alice"), "a.bin")).equals(da)).toBe(true);
    expect(existsSync(path.join(s.homeOf("alice"), "b.bin"))).toBe(false);
    expect(await settled(s)).toBe(6 * MiB);
  });
});

describe("three uploads of one user with room for one", () => {
  it.each([0, 2])("exactly one gets 226 and the usage is exact (transfer processes: %i)", async (processes) => {
    const mode = { processes };
    const s = await start(FREE, mode);
    const cs = [await login(s, mode), await login(s, mode), await login(s, mode)];
    const data = cs.map(() => payload(6 * MiB));
    const firsts = [4 * MiB, 3 * MiB, 3 * MiB];
    const watch = watchUsage(s, true);
    const { codes } = await race(
      s,
      cs.map((c, i) => ({ c, command: `STOR f${i}.bin`, data: data[i]!, first: firsts[i]! })),
      mode,
      0,
    );
    const max = await watch.stop();
    expect(codes.filter((c) => c === 226)).toHaveLength(1);
    expect(codes.filter((c) => c === 552)).toHaveLength(2);
    codes.forEach((code, i) => {
      const f = path.join(s.homeOf("alice"), `f${i}.bin`);
      if (code === 226) expect(readFileSync(f).equals(data[i]!)).toBe(true);
      else expect(existsSync(f)).toBe(false);
    });
    expect(await settled(s)).toBe(6 * MiB);
    expect(max.ledger).toBeLessThanOrEqual(FREE);
    expect(max.disk).toBeLessThanOrEqual(FREE);
  });
});

describe("an upload waiting for room a younger upload holds", () => {
  /**
   * Two 6 MiB uploads of alice's with room for one: both send their first 5 MiB, which takes the whole room, then
   * the older one sends the rest (and, with `endOlder`, ends its data) and waits for the room the younger one holds.
   */
  async function olderWaiting(s: RunningServer, mode: Mode, endOlder: boolean) {
    const [a, b] = [await login(s, mode), await login(s, mode)];
    const [da, db] = [payload(6 * MiB), payload(6 * MiB)];
    const ua = await begin(a, "STOR a.bin", mode);
    const ub = await begin(b, "STOR b.bin", mode);
    ua.sock.write(da.subarray(0, 5 * MiB));
    ub.sock.write(db.subarray(0, 5 * MiB));
    const ledger = await ledgerOf(s);
    await until(() => ledger.used === FREE, 15_000, "both first parts reserved");
    if (endOlder) ua.sock.end(da.subarray(5 * MiB));
    else ua.sock.write(da.subarray(5 * MiB));
    await until(() => ledger.waiting === 1, 15_000, "the older upload waits");
    return { a, b, ua, ub, da, db, ledger };
  }

  type End = "ABOR" | "control connection closed" | "data connection broken";
  const CASES: [End, number][] = [];
  for (const end of ["ABOR", "control connection closed", "data connection broken"] as End[]) for (const p of [0, 2]) CASES.push([end, p]);

  it.each(CASES)("ends at once on %s (transfer processes: %i), keeps what it wrote and holds nothing more", async (end, processes) => {
    const mode = { processes };
    const s = await start(FREE, mode);
    const { a, b, ub, ua, da, db, ledger } = await olderWaiting(s, mode, false);
    if (end === "ABOR") {
      a.send("ABOR");
      expect((await a.read(10_000)).code).toBe(426);
      expect((await a.read(10_000)).code).toBe(226);
    } else if (end === "control connection closed") {
      await a.close();
    } else {
      // A reset, not an orderly close: after that the upload would be complete, and would wait on.
      ua.sock.resetAndDestroy();
      expect((await a.read(10_000)).code).toBe(426);
    }
    await until(() => ledger.waiting === 0, 10_000, "the wait ended");
    // What the older upload wrote stays, for a resume: the first 5 MiB, and nothing of the part it waited with.
    await until(() => ledger.used === FREE, 10_000, "the usage counts what both wrote");
    expect(readFileSync(path.join(s.homeOf("alice"), "a.bin")).equals(da.subarray(0, 5 * MiB))).toBe(true);
    // The younger one, still without room, gets its 552, and gives back all it held.
    ub.sock.end(db.subarray(5 * MiB));
    expect((await b.read(30_000)).code).toBe(552);
    expect(existsSync(path.join(s.homeOf("alice"), "b.bin"))).toBe(false);
    expect(await settled(s)).toBe(5 * MiB);
    expect(await b.usedBytes()).toBe(5 * MiB);
    if (end !== "control connection closed") {
      // The session that waited goes on: an upload that fits now succeeds.
      expect((await a.store("STOR c.bin", payload(MiB))).final.code).toBe(226);
      expect(await settled(s)).toBe(6 * MiB);
    }
  });

  it.each([0, 2])("ends when the server shuts down (transfer processes: %i), and the stored usage matches the disk", async (processes) => {
    const mode = { processes };
    const s = await startServer([{ name: "alice", password: "secret", quota: FREE }], { transferProcesses: processes, shutdownGraceMs: 100 });
    opened.servers.push(s);
    const { a, b, da, db, ledger } = await olderWaiting(s, mode, false);
    await s.server.close();
    expect((await a.read(10_000)).code).toBe(421);
    expect(ledger.waiting).toBe(0);
    // Both were cut and keep what they wrote, 5 MiB each; the figure saved at the shutdown counts exactly that.
    const home = s.homeOf("alice");
    expect(readFileSync(path.join(home, "a.bin")).equals(da.subarray(0, 5 * MiB))).toBe(true);
    expect(readFileSync(path.join(home, "b.bin")).equals(db.subarray(0, 5 * MiB))).toBe(true);
    const u = await s.users.get("alice");
    expect({ used: u?.usedBytes, dirty: u?.usageDirty }).toEqual({ used: diskBytes(home), dirty: false });
    expect(u?.usedBytes).toBe(FREE);
  });

  it.each([0, 2])("waits a bounded time for a younger upload that holds the room and goes on (transfer processes: %i)", async (processes) => {
    const mode = { processes };
    const s = await start(FREE, mode);
    const { a, b, ub, db, ledger } = await olderWaiting(s, mode, true);
    // The younger upload neither fails nor ends: the older one gives up after its wait, refused.
    expect((await a.read(30_000)).code).toBe(552);
    expect(ledger.waiting).toBe(0);
    expect(existsSync(path.join(s.homeOf("alice"), "a.bin"))).toBe(false);
    // The room it gave back is the younger one's to take.
    ub.sock.end(db.subarray(5 * MiB));
    expect((await b.read(30_000)).code).toBe(226);
    expect(readFileSync(path.join(s.homeOf("alice"), "b.bin")).equals(db)).toBe(true);
    expect(await settled(s)).toBe(6 * MiB);
  });
});
