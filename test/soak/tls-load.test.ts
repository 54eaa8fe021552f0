// FTPS concurrency soak: a real `myftpd serve` process with a certificate, an implicit FTPS port,
// --require-tls-session-reuse, --transfer-processes 2, --max-sessions 10 and a small queue; four users with small
// quotas and 24 clients (6 per user: 2 plain, 2 explicit FTPS with AUTH TLS/PBSZ 0/PROT P, 2 implicit FTPS, each from
// its own 127.0.3.x address), each running a bounded, seeded random sequence of uploads below and above 256 KiB
// (STOR, APPE, REST+STOR, some past the quota), downloads (RETR, REST+RETR), LIST/MLSD, DELE, RNFR/RNTO, ABOR
// mid-transfer, data and control connections dropped mid-transfer and mid TLS handshake (data, AUTH TLS, implicit),
// PROT C after PROT P (so large plain downloads of TLS sessions go to transfer processes), PROT P data connections
// that do not resume the control session (425), CCC, FEAT and SITE QUOTA. Two identical rounds.
// Checks, as the plain soak's (mixed-load.test.ts): reply codes allowed by the RFCs and explained by the traffic; no
// read hangs; usage within the quota and equal to the disk once uploads settle; no upload temporary left; FIFO
// admission; no passive listener outliving its session; fds and RSS not growing round over round; no error in the
// log, exit 0. And: a download of a file only its own client writes equals the disk (sha256); the number of
// transfer processes stays within --transfer-processes, and their fds do not grow either.
// SOAK_SEED=N replays one seed.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { afterAll, describe, expect, it } from "vitest";
import { runMyftpd, startServerProcess, tempDir, testCertificate, type RunningProcess } from "../helpers/myftpd.js";
import { connectData, RawFtp, readAll, secureClient, writeAll, type Reply } from "../helpers/raw-ftp.js";
import { sleep, withTimeout } from "../helpers/util.js";
import {
  fifoViolations,
  growthProblems,
  KiB,
  logProblems,
  MiB,
  procStatus,
  READ_MS,
  roundEndProblems,
  shrank,
  Soak,
  SoakClient,
  storedUsageProblems,
  type SoakUser,
} from "./soak-helpers.js";

const SEED = Number(process.env.SOAK_SEED ?? 20240612);
const CLIENTS = 24;
const OPS = Number(process.env.SOAK_OPS ?? 40);
const USERS = [
  { name: "tls0", quota: 3 * MiB },
  { name: "tls1", quota: 4 * MiB },
  { name: "tls2", quota: 5 * MiB },
  { name: "tls3", quota: 6 * MiB },
];
const MODES = ["plain", "explicit", "implicit"] as const;
type Mode = (typeof MODES)[number];
/** Offloading threshold of the server (transfer-processes.ts): sizes straddle it. */
const OFFLOAD = 256 * KiB;
/** The first bytes of a TLS ClientHello record: a handshake that starts and never finishes. */
const PARTIAL_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

class Client extends SoakClient {
  /** PROT P in effect for this connection's data connections. */
  private prot = false;
  /** An upload of the own file may still be running on the server (its control connection was cut): no sha256 check. */
  private ownDirty = false;
  /** sha256 checks made (downloads of this client's own file compared with the disk). */
  static verified = 0;
  constructor(
    soak: Soak,
    private readonly implicitPort: number,
    index: number,
    user: SoakUser,
    private readonly mode: Mode,
  ) {
    super(soak, index, user, "127.0.3", `client ${index} (${user.name}, ${mode})`);
  }

  /** A file no other client writes, renames or deletes. */
  private get own(): string {
    return `own${this.index}`;
  }

  private size(): number {
    const r = this.rng();
    if (r < 0.45) return this.int(0, 32 * KiB);
    if (r < 0.9) return this.int(200 * KiB, 420 * KiB);
    return this.int(1 * MiB, 2 * MiB);
  }

  private fileName(): string {
    const r = this.rng();
    if (r < 0.2) return this.own;
    const f = `f${this.int(0, 4)}`;
    return r < 0.4 ? `${this.pick(["d0", "d1"])}/${f}` : f;
  }

  /** Contents of an upload: distinct per client and size, so a mix-up shows. */
  private content(size: number): Buffer {
    const b = Buffer.alloc(size, this.index + 1);
    for (let i = 0; i + 4 <= size; i += 4096) b.writeUInt32BE((this.index * 7919 + size + i) >>> 0, i);
    return b;
  }

  /** A reply read outside the per-verb tables: it must be one of `codes`. */
  private async readOneOf(what: string, codes: number[], verb?: string): Promise<Reply> {
    const r = await this.c!.read(READ_MS);
    this.soak.note(this.who, `<${r.all}`);
    this.soak.codes.set(`${what} ${r.code}`, (this.soak.codes.get(`${what} ${r.code}`) ?? 0) + 1);
    if (!codes.includes(r.code) && !(verb && shrank(verb, r))) this.soak.fail(this.who, `${what}: ${r.all}`);
    return r;
  }

  protected override open(): Promise<RawFtp> {
    const implicit = this.mode === "implicit";
    return RawFtp.open(implicit ? this.implicitPort : this.soak.port, { localAddress: this.addr, implicit });
  }

  /** Secures the connection as the mode says. */
  protected override async beforeLogin(c: RawFtp): Promise<void> {
    const implicit = this.mode === "implicit";
    this.prot = implicit;
    if (this.mode === "explicit") {
      this.soak.note(this.who, ">AUTH TLS");
      this.soak.check(this.who, "AUTH", await c.authTls({}, "AUTH TLS"));
    }
    if (this.mode === "explicit" || (implicit && this.rng() < 0.5)) {
      await this.cmd("PBSZ", "PBSZ 0");
      await this.cmd("PROT", "PROT P");
      this.prot = true;
    }
  }

  /** The data connections resume the control connection's session (--require-tls-session-reuse). */
  protected override async afterLogin(c: RawFtp): Promise<void> {
    if (this.mode !== "plain") await c.waitSession();
  }

  /** The data connection as the transfer uses it: TLS (resuming the control session) under PROT P. */
  private async secure(raw: net.Socket, resume = true): Promise<net.Socket> {
    if (!this.prot) return raw;
    const session = resume ? this.c!.session : undefined;
    return secureClient(tls.connect({ socket: raw, rejectUnauthorized: false, session }), READ_MS);
  }

  /** STOR/APPE (after an optional REST) of `size` bytes, sent whole. */
  private async upload(verb: "STOR" | "APPE", name: string, size: number, rest?: number): Promise<void> {
    const raw = await this.data();
    if (rest !== undefined) await this.cmd("REST", `REST ${rest}`);
    const pre = await this.cmd(verb, `${verb} ${name}`);
    if (pre.code !== 150) {
      raw.destroy();
      return;
    }
    const body = this.content(size);
    const writing = (async () => writeAll(await this.secure(raw), body))().catch(() => raw.destroy());
    await this.read(verb);
    await withTimeout(writing, READ_MS, "data write after the final reply");
    raw.destroy();
  }

  private async download(name: string, rest?: number): Promise<void> {
    const raw = await this.data();
    if (rest !== undefined) await this.cmd("REST", `REST ${rest}`);
    const pre = await this.cmd("RETR", `RETR ${name}`);
    if (pre.code !== 150) {
      raw.destroy();
      return;
    }
    let got: Buffer | null = null;
    try {
      got = await readAll(await this.secure(raw), READ_MS);
    } catch {
      raw.destroy();
    }
    const fin = await this.read("RETR");
    if (fin.code === 226 && name === this.own && got && !this.ownDirty) {
      // Nobody else writes this file, and this client is not writing it now: the download is the disk's file.
      let disk: Buffer;
      try {
        disk = readFileSync(path.join(this.soak.home(this.user.name), name)).subarray(rest ?? 0);
      } catch (err) {
        return this.soak.fail(this.who, `RETR ${name} gave 226, but the file cannot be read: ${(err as Error).message}`);
      }
      const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
      if (sha(got) !== sha(disk)) {
        this.soak.fail(this.who, `RETR ${name} (REST ${rest ?? 0}, ${this.prot ? "TLS" : "plain"}) gave ${got.length} bytes with 226, the disk holds ${disk.length} (sha256 differs)`);
      }
      Client.verified++;
    }
  }

  private async listing(verb: "LIST" | "MLSD"): Promise<void> {
    const raw = await this.data();
    const arg = this.rng() < 0.3 ? ` ${this.pick(["d0", "d1"])}` : "";
    const pre = await this.cmd(verb, `${verb}${arg}`);
    if (pre.code !== 150) {
      raw.destroy();
      return;
    }
    try {
      await readAll(await this.secure(raw), READ_MS);
    } catch {
      raw.destroy();
    }
    await this.read(verb);
  }

  /**
   * Starts a transfer, moves part of it, then ABOR / cuts the data connection / cuts the control connection; or
   * (under PROT P) cuts the data connection in its TLS handshake, or offers no session to resume.
   */
  private async interrupted(kind: "STOR" | "RETR", how: "abor" | "data" | "control" | "handshake" | "noresume"): Promise<void> {
    if (!this.prot && (how === "handshake" || how === "noresume")) how = "data";
    const name = kind === "RETR" && this.rng() < 0.5 ? this.own : this.fileName();
    const raw = await this.data();
    const pre = await this.cmd(kind, `${kind} ${name}`);
    if (pre.code !== 150) {
      raw.destroy();
      return;
    }
    if (how === "handshake") {
      this.soak.note(this.who, "(cut the data connection's TLS handshake)");
      if (this.rng() < 0.5) raw.write(PARTIAL_HELLO);
      raw.destroy();
      await this.readOneOf(`${kind} after a cut data TLS handshake`, [425, 426]);
      return;
    }
    if (how === "noresume") {
      this.soak.note(this.who, "(data TLS without the control session)");
      // Under --require-tls-session-reuse a fresh TLS session on the data connection is refused with 425.
      const d = await this.secure(raw, false).catch(() => raw);
      readAll(d, READ_MS).catch(() => undefined);
      if (kind === "STOR") d.write(Buffer.alloc(1024, 1), () => undefined);
      await this.readOneOf(`${kind} with a data TLS session not resumed`, [425]);
      raw.destroy();
      return;
    }
    let d: net.Socket;
    try {
      d = await this.secure(raw);
    } catch (err) {
      // A short download can be over before the handshake is.
      raw.destroy();
      await this.readOneOf(`${kind} whose data TLS handshake failed (${(err as Error).message})`, [226, 425, 426], kind);
      return;
    }
    await this.moveSome(kind, d, how, () => this.content(this.int(1, 128) * KiB));
    if (how === "control") {
      if (kind === "STOR" && name === this.own) this.ownDirty = true;
      d.destroy();
      raw.destroy();
      this.c!.sock.destroy();
      this.c = null;
      return;
    }
    if (how === "data") {
      d.destroy();
      raw.destroy();
      await this.readOneOf(`${kind} after a cut data connection`, [226, 426, 552], kind);
      return;
    }
    await this.abortWithNoop(kind);
    d.destroy();
    raw.destroy();
  }

  /** The control connection cut in its TLS handshake: after AUTH TLS's 234, or on the implicit port. */
  private async cutControlHandshake(): Promise<void> {
    const c = this.c!;
    this.c = null;
    if (this.mode === "implicit") {
      await this.quit(c);
      const raw = await connectData("127.0.0.1", this.implicitPort, this.addr);
      if (this.rng() < 0.5) raw.write(PARTIAL_HELLO);
      raw.destroy();
      return;
    }
    // A new clear connection would wait in the queue behind others; AUTH TLS must come before login, so that
    // needs a fresh connection too: QUIT this one and take the next slot as connect() does.
    await this.quit(c);
    for (let attempt = 0; attempt < 300; attempt++) {
      const n = await RawFtp.open(this.soak.port, { localAddress: this.addr });
      const g = await this.soak.check(this.who, "GREETING", await n.read(READ_MS));
      if (g.code !== 220) {
        await withTimeout(n.closed, READ_MS, "closed after 421");
        await sleep(this.int(10, 60));
        continue;
      }
      this.soak.note(this.who, ">AUTH TLS (then cut the handshake)");
      n.send("AUTH TLS");
      this.soak.check(this.who, "AUTH", await n.read(READ_MS));
      if (this.rng() < 0.5) n.sendRaw(PARTIAL_HELLO);
      n.sock.destroy();
      await withTimeout(n.closed, READ_MS, "control connection did not close");
      return;
    }
  }

  /** TLS-only commands: PROT C / PROT P switches, CCC, FEAT. */
  private async protection(): Promise<void> {
    const r = this.rng();
    if (this.mode === "plain") {
      if (r < 0.5) return this.feat();
      return this.quota();
    }
    if (r < 0.5) {
      // PROT C after PROT P (and back): the next transfers go in clear, so large ones go to transfer processes.
      const level = this.prot ? "C" : "P";
      if (!this.prot || this.mode === "implicit" || this.rng() < 0.5) {
        if ((await this.cmd("PROT", `PROT ${level}`)).code === 200) this.prot = level === "P";
      } else {
        await this.cmd("PBSZ", "PBSZ 0");
        if ((await this.cmd("PROT", `PROT ${level}`)).code === 200) this.prot = level === "P";
      }
      return;
    }
    if (r < 0.75) {
      await this.cmd("CCC", "CCC");
      return;
    }
    return this.feat();
  }

  private async feat(): Promise<void> {
    const f = await this.cmd("FEAT", "FEAT");
    const lines = f.lines.slice(1, -1).map((l) => l.trim());
    for (const want of ["AUTH TLS", "PBSZ", "PROT"]) {
      if (!lines.includes(want)) this.soak.fail(this.who, `FEAT does not list ${want}: ${f.all}`);
    }
    // CCC is refused (533), so FEAT must not offer it.
    if (lines.includes("CCC")) this.soak.fail(this.who, `FEAT lists CCC, which the server refuses: ${f.all}`);
  }

  protected async op(): Promise<void> {
    const r = this.rng() * 100;
    if (r < 14) return this.upload("STOR", this.fileName(), this.size());
    if (r < 20) return this.upload("APPE", this.fileName(), this.size());
    if (r < 25) {
      const name = this.fileName();
      const size = await this.sizeOf(name);
      const at = size === null ? 0 : this.rng() < 0.5 ? size : this.int(0, size);
      return this.upload("STOR", name, this.size(), at);
    }
    if (r < 36) return this.download(this.rng() < 0.5 ? this.own : this.fileName());
    if (r < 40) {
      const name = this.rng() < 0.5 ? this.own : this.fileName();
      const size = await this.sizeOf(name);
      return this.download(name, size === null ? 0 : this.int(0, size));
    }
    if (r < 44) {
      const n = this.fileName();
      if (n !== this.own || this.rng() < 0.3) await this.cmd("DELE", `DELE ${n}`);
      return;
    }
    if (r < 48) {
      // Renames among the shared names only: the own file stays this client's.
      const from = `f${this.int(0, 4)}`;
      const to = this.rng() < 0.3 ? `${this.pick(["d0", "d1"])}/f${this.int(0, 4)}` : `f${this.int(0, 4)}`;
      if ((await this.cmd("RNFR", `RNFR ${from}`)).code === 350) await this.cmd("RNTO", `RNTO ${to}`);
      return;
    }
    if (r < 51) {
      await this.cmd("MKD", `MKD ${this.pick(["d0", "d1"])}`);
      return;
    }
    if (r < 52) {
      await this.cmd("RMD", `RMD ${this.pick(["d0", "d1"])}`);
      return;
    }
    if (r < 56) return this.listing("LIST");
    if (r < 60) return this.listing("MLSD");
    if (r < 64) return this.interrupted("STOR", "abor");
    if (r < 68) return this.interrupted("RETR", "abor");
    if (r < 71) return this.interrupted("STOR", "data");
    if (r < 74) return this.interrupted("RETR", "data");
    if (r < 76) return this.interrupted("STOR", "control");
    if (r < 78) return this.interrupted("RETR", "control");
    if (r < 81) return this.interrupted(this.pick(["STOR", "RETR"] as const), "handshake");
    if (r < 83) return this.interrupted(this.pick(["STOR", "RETR"] as const), "noresume");
    if (r < 85 && this.mode !== "plain") return this.cutControlHandshake();
    if (r < 93) return this.protection();
    return this.quota();
  }
}

/** The server's child processes (its transfer processes), with their open descriptors. */
function children(pid: number): { pid: number; fds: number }[] {
  let text = "";
  try {
    text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
  } catch {
    return [];
  }
  return text
    .trim()
    .split(/\s+/)
    .filter((s) => s !== "")
    .map((s) => {
      let fds = -1;
      try {
        fds = readdirSync(`/proc/${s}/fd`).length;
      } catch {
        // gone meanwhile
      }
      return { pid: Number(s), fds };
    });
}

let proc: RunningProcess | null = null;
const dirs: string[] = [];

afterAll(async () => {
  await proc?.stop("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("FTPS mixed-load soak", () => {
  it(`24 clients (plain, AUTH TLS, implicit TLS), 4 users with small quotas, transfer processes, two rounds (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const data = tempDir("myftp-soak-tls-");
    dirs.push(data);
    const cert = await testCertificate();
    dirs.push(cert.dir);
    for (const u of USERS) {
      const r = await runMyftpd(["user", "add", u.name, "--quota", String(u.quota), "--password-stdin", "--data", data], "pw\n");
      expect(r.code, r.stderr).toBe(0);
    }
    proc = await startServerProcess(
      [
        "--log-level", "debug",
        "--tls-cert", cert.cert,
        "--tls-key", cert.key,
        "--implicit-tls-port", "0",
        "--require-tls-session-reuse",
        "--transfer-processes", "2",
        "--max-sessions", "10",
        "--max-queue", "8",
        "--queue-timeout", "60",
        "--pasv-range", "0-0",
        "--data-timeout", "15",
        "--hash-workers", "1",
        "--max-login-failures", "1000",
      ],
      data,
    );
    const pid = proc.child.pid!;
    // The implicit port is named on a line after the one startServerProcess waits for (and in the JSON log, on
    // another pipe): wait for either, bounded.
    const portIn = (out: string) => Number(/ftps:\/\/[^\s/]+:(\d+)/.exec(out)?.[1] ?? /"implicitTlsPort":(\d+)/.exec(out)?.[1] ?? NaN);
    let implicitPort = portIn(proc.output());
    for (let i = 0; i < 500 && !(implicitPort > 0); i++) {
      await new Promise((r) => setTimeout(r, 10));
      implicitPort = portIn(proc.output());
    }
    expect(implicitPort, proc.output()).toBeGreaterThan(0);
    const start = { ...procStatus(pid), children: children(pid) };
    const rounds: { rss: number; fds: number; ms: number; ops: number; children: { pid: number; fds: number }[] }[] = [];
    const problems: string[] = [];

    for (let round = 1; round <= 2; round++) {
      const t0 = Date.now();
      const soak = new Soak(SEED, proc.port, data, round);
      await Promise.all(
        Array.from({ length: CLIENTS }, (_, i) => new Client(soak, implicitPort, i, USERS[i % USERS.length]!, MODES[Math.floor(i / USERS.length) % MODES.length]!).run(OPS)),
      );
      problems.push(...soak.violations);

      problems.push(...(await roundEndProblems(soak, proc, USERS, "127.0.4")));
      await sleep(300);
      rounds.push({ ...procStatus(pid), ms: Date.now() - t0, ops: soak.ops, children: children(pid) });
      console.log(`tls soak round ${round} (seed ${SEED}): ${soak.ops} ops in ${Date.now() - t0} ms; codes`, Object.fromEntries([...soak.codes].sort()));
    }
    console.log("tls soak process figures", JSON.stringify({ start, rounds }), `sha256 checks: ${Client.verified}`);

    const fifo = fifoViolations(proc.output());
    console.log(`tls soak: ${fifo.queued} connections waited in the admission queue`);
    problems.push(...fifo.violations.map((v) => `[seed ${SEED}] FIFO: ${v}`));
    const [r1, r2] = rounds as [(typeof rounds)[0], (typeof rounds)[0]];
    problems.push(...growthProblems(SEED, start, r1, r2));
    // Transfer processes: at most --transfer-processes of them, the same ones round over round, fds not growing.
    if (start.children.length !== 0) problems.push(`[seed ${SEED}] ${start.children.length} child processes before any transfer`);
    if (r1.children.length === 0) problems.push(`[seed ${SEED}] no transfer process started (the soak must reach them)`);
    for (const r of [r1, r2]) if (r.children.length > 2) problems.push(`[seed ${SEED}] ${r.children.length} child processes, past --transfer-processes 2`);
    if (r2.children.length > r1.children.length) problems.push(`[seed ${SEED}] child processes grew from ${r1.children.length} to ${r2.children.length}`);
    for (const c of r2.children) {
      const before = r1.children.find((x) => x.pid === c.pid);
      if (before && c.fds > before.fds + 4) problems.push(`[seed ${SEED}] transfer process ${c.pid}: fds grew from ${before.fds} to ${c.fds}`);
    }
    if (Client.verified === 0) problems.push(`[seed ${SEED}] no download was checked against the disk`);

    const code = await proc.stop("SIGTERM");
    if (code !== 0) problems.push(`[seed ${SEED}] server exit code ${code}`);
    for (const c of r2.children) {
      try {
        readFileSync(`/proc/${c.pid}/status`);
        // Still there: give it a moment (bounded) to follow the server out.
        let gone = false;
        for (let i = 0; i < 50 && !gone; i++) {
          await sleep(100);
          try {
            readFileSync(`/proc/${c.pid}/status`);
          } catch {
            gone = true;
          }
        }
        if (!gone) problems.push(`[seed ${SEED}] transfer process ${c.pid} outlived the server`);
      } catch {
        // gone
      }
    }
    problems.push(
      ...logProblems(proc.output(), SEED, (line) => /ftps?:\/\/127\.0\.0\.1:\d+/.test(line) || /^FTPS: AUTH TLS with /.test(line)),
    );
    problems.push(...(await storedUsageProblems(SEED, data)));
    expect(problems, `seed ${SEED}`).toEqual([]);
  });
});
