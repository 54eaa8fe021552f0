// Concurrency soak: a real `myftpd serve` process with --max-sessions 10 and a small queue, four users with small
// quotas, and 36 clients (9 per user, each from its own 127.0.1.x address) that each run a bounded, seeded random
// sequence of uploads (STOR, APPE, REST+STOR, some past the quota), downloads (RETR, REST+RETR), DELE, RNFR/RNTO,
// MKD/RMD, LIST/MLSD, ABOR mid-transfer, dropped data and control connections mid-transfer, SITE QUOTA and QUIT.
// Two identical rounds. Checks: every reply code is one the RFCs allow for its command and none that the situation
// cannot explain; no read hangs (every read has a timeout); usage never passes the quota (SITE QUOTA and disk); after
// each round the usage equals the bytes of regular files in the home and no upload temporary is left; queued
// connections are started in arrival order (from the server's own debug log); no passive listener outlives its
// session; file descriptors and RSS do not grow round over round; the server stays up, logs no error, and exits 0;
// `myftpd user list --json` agrees with the disk after the stop. The seed is printed with every failure
// (SOAK_SEED=N to replay one).

import { rmSync } from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runMyftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { announcedPort, connectData, RawFtp, readAll, writeAll, type Reply } from "../helpers/raw-ftp.js";
import { sleep, withTimeout } from "../helpers/util.js";
import { fifoViolations, homeBytes, KiB, logProblems, MiB, mulberry32, procStatus, roundEndProblems, shrank, Soak } from "./soak-helpers.js";

const SEED = Number(process.env.SOAK_SEED ?? 20240611);
const CLIENTS = 36;
const OPS = 24;
const USERS = [
  { name: "soak0", quota: 2 * MiB },
  { name: "soak1", quota: 3 * MiB },
  { name: "soak2", quota: 4 * MiB },
  { name: "soak3", quota: 5 * MiB },
];
const READ_MS = 20_000;

class Client {
  private c: RawFtp | null = null;
  private readonly rng: () => number;
  readonly who: string;
  constructor(
    private readonly soak: Soak,
    private readonly index: number,
    private readonly user: { name: string; quota: number },
  ) {
    this.rng = mulberry32(SEED * 1000 + index);
    this.who = `client ${index} (${user.name})`;
  }

  private get addr(): string {
    return `127.0.1.${this.index + 1}`;
  }

  private int(min: number, max: number): number {
    return min + Math.floor(this.rng() * (max - min + 1));
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rng() * xs.length)]!;
  }

  private size(): number {
    const r = this.rng();
    if (r < 0.55) return this.int(0, 32 * KiB);
    if (r < 0.9) return this.int(32 * KiB, 400 * KiB);
    return this.int(1 * MiB, 3 * MiB);
  }

  private fileName(): string {
    const f = `f${this.int(0, 5)}`;
    return this.rng() < 0.25 ? `${this.pick(["d0", "d1"])}/${f}` : f;
  }

  private async cmd(verb: string, line: string): Promise<Reply> {
    this.soak.note(this.who, `>${line}`);
    return this.soak.check(this.who, verb, await this.c!.cmd(line, READ_MS));
  }

  private async read(verb: string): Promise<Reply> {
    return this.soak.check(this.who, verb, await this.c!.read(READ_MS));
  }

  /** Connects (retrying after a 421 from a full queue, a bounded number of times) and logs in. */
  private async connect(): Promise<boolean> {
    for (let attempt = 0; attempt < 300; attempt++) {
      const c = await RawFtp.open(this.soak.port, { localAddress: this.addr });
      this.c = c;
      const g = await this.read("GREETING");
      if (g.code === 220) {
        await this.cmd("USER", `USER ${this.user.name}`);
        await this.cmd("PASS", "PASS pw");
        await this.cmd("TYPE", "TYPE I");
        return true;
      }
      await withTimeout(c.closed, READ_MS, "closed after 421");
      this.c = null;
      await sleep(this.int(10, 60));
    }
    return false;
  }

  private async data(): Promise<net.Socket> {
    let port: number;
    if (this.rng() < 0.5) port = announcedPort((await this.cmd("EPSV", "EPSV")).text);
    else port = announcedPort((await this.cmd("PASV", "PASV")).text);
    this.soak.pasvPorts.push(port);
    return connectData("127.0.0.1", port, this.addr);
  }

  private async sizeOf(name: string): Promise<number | null> {
    const r = await this.cmd("SIZE", `SIZE ${name}`);
    return r.code === 213 ? Number(r.text.trim()) : null;
  }

  private async quota(): Promise<void> {
    const r = await this.cmd("SITE", "SITE QUOTA");
    const m = /used (\d+) of (\d+) bytes/.exec(r.text);
    if (!m) return this.soak.fail(this.who, `SITE QUOTA unreadable: ${r.all}`);
    const used = Number(m[1]);
    if (Number(m[2]) !== this.user.quota) this.soak.fail(this.who, `SITE QUOTA limit ${m[2]}, expected ${this.user.quota}`);
    if (used > this.user.quota) this.soak.fail(this.who, `SITE QUOTA used ${used} past the quota ${this.user.quota}`);
    this.soak.checkDisk(this.who, this.user.name, this.user.quota);
  }

  /** STOR/APPE (after an optional REST) of `size` bytes, sent whole. */
  private async upload(verb: "STOR" | "APPE", name: string, size: number, rest?: number): Promise<void> {
    const d = await this.data();
    if (rest !== undefined) await this.cmd("REST", `REST ${rest}`);
    const pre = await this.cmd(verb, `${verb} ${name}`);
    if (pre.code !== 150) {
      d.destroy();
      return;
    }
    const writing = writeAll(d, Buffer.alloc(size, this.index)).catch(() => d.destroy());
    await this.read(verb);
    await withTimeout(writing, READ_MS, "data write after the final reply");
    d.destroy();
  }

  private async download(name: string, rest?: number): Promise<void> {
    const d = await this.data();
    if (rest !== undefined) await this.cmd("REST", `REST ${rest}`);
    const pre = await this.cmd("RETR", `RETR ${name}`);
    if (pre.code !== 150) {
      d.destroy();
      return;
    }
    await readAll(d, READ_MS).catch(() => d.destroy());
    await this.read("RETR");
  }

  private async listing(verb: "LIST" | "MLSD"): Promise<void> {
    const d = await this.data();
    const arg = this.rng() < 0.3 ? ` ${this.pick(["d0", "d1"])}` : "";
    const pre = await this.cmd(verb, `${verb}${arg}`);
    if (pre.code !== 150) {
      d.destroy();
      return;
    }
    await readAll(d, READ_MS).catch(() => d.destroy());
    await this.read(verb);
  }

  /** Starts a transfer, moves part of it, then ABOR / cuts the data connection / cuts the control connection. */
  private async interrupted(kind: "STOR" | "RETR", how: "abor" | "data" | "control"): Promise<void> {
    const name = this.fileName();
    const d = await this.data();
    const pre = await this.cmd(kind, `${kind} ${name}`);
    if (pre.code !== 150) {
      d.destroy();
      return;
    }
    if (kind === "STOR") {
      const part = Buffer.alloc(this.int(1, 128) * KiB, this.index);
      await withTimeout(
        new Promise<void>((resolve) => {
          d.write(part, () => resolve());
          d.once("error", () => resolve());
        }),
        READ_MS,
        "partial upload write",
      );
    } else {
      await withTimeout(
        new Promise<void>((resolve) => {
          d.once("data", () => resolve());
          d.once("end", () => resolve());
          d.once("close", () => resolve());
        }),
        READ_MS,
        "first bytes of a download",
      );
      if (how === "abor") d.resume();
    }
    this.soak.note(this.who, `(cut ${how})`);
    if (how === "control") {
      d.destroy();
      this.c!.sock.destroy();
      this.c = null;
      return;
    }
    if (how === "data") {
      d.destroy();
      const r = await this.c!.read(READ_MS);
      this.soak.note(this.who, `<${r.all}`);
      if (![226, 426, 552].includes(r.code) && !shrank(kind, r)) this.soak.fail(this.who, `${kind} after a cut data connection: ${r.all}`);
      return;
    }
    // ABOR then NOOP: every reply before NOOP's 200 belongs to the transfer or to ABOR.
    // Mostly in one write, so that NOOP arrives while ABOR is still stopping the transfer.
    if (this.rng() < 0.75) this.c!.sendRaw("ABOR\r\nNOOP\r\n");
    else {
      this.c!.send("ABOR");
      this.c!.send("NOOP");
    }
    for (let i = 0; ; i++) {
      const r = await this.c!.read(READ_MS);
      this.soak.note(this.who, `<${r.all}`);
      if (r.code === 200) break;
      this.soak.codes.set(`ABOR-seq ${r.code}`, (this.soak.codes.get(`ABOR-seq ${r.code}`) ?? 0) + 1);
      if ((![225, 226, 426, 552].includes(r.code) && !shrank(kind, r)) || i >= 3) {
        this.soak.fail(this.who, `reply ${r.all} to ${kind} aborted by ABOR`);
        break;
      }
    }
    d.destroy();
  }

  private async op(): Promise<void> {
    const r = this.rng() * 100;
    if (r < 16) return this.upload("STOR", this.fileName(), this.size());
    if (r < 23) return this.upload("APPE", this.fileName(), this.size());
    if (r < 29) {
      const name = this.fileName();
      const size = await this.sizeOf(name);
      const at = size === null ? 0 : this.rng() < 0.5 ? size : this.int(0, size);
      return this.upload("STOR", name, this.size(), at);
    }
    if (r < 41) return this.download(this.fileName());
    if (r < 45) {
      const name = this.fileName();
      const size = await this.sizeOf(name);
      return this.download(name, size === null ? 0 : this.int(0, size));
    }
    if (r < 52) {
      await this.cmd("DELE", `DELE ${this.fileName()}`);
      return;
    }
    if (r < 58) {
      const from = this.fileName();
      const to = this.rng() < 0.3 ? this.fileName() : path.posix.join(path.posix.dirname(from), `f${this.int(0, 5)}`);
      if ((await this.cmd("RNFR", `RNFR ${from}`)).code === 350) await this.cmd("RNTO", `RNTO ${to}`);
      return;
    }
    if (r < 62) {
      await this.cmd("MKD", `MKD ${this.pick(["d0", "d1"])}`);
      return;
    }
    if (r < 64) {
      await this.cmd("RMD", `RMD ${this.pick(["d0", "d1"])}`);
      return;
    }
    if (r < 68) return this.listing("LIST");
    if (r < 72) return this.listing("MLSD");
    if (r < 76) return this.interrupted("STOR", "abor");
    if (r < 80) return this.interrupted("RETR", "abor");
    if (r < 83) return this.interrupted("STOR", "data");
    if (r < 86) return this.interrupted("RETR", "data");
    if (r < 88) return this.interrupted("STOR", "control");
    if (r < 90) return this.interrupted("RETR", "control");
    return this.quota();
  }

  async run(): Promise<void> {
    for (let i = 0; i < OPS; i++) {
      try {
        if (!this.c && !(await this.connect())) {
          this.soak.fail(this.who, "no session slot after 300 tries");
          return;
        }
        await this.op();
        this.soak.ops++;
      } catch (err) {
        this.soak.fail(this.who, `op ${i}: ${(err as Error).message}`);
        this.c?.sock.destroy();
        this.c = null;
      }
    }
    try {
      if (!this.c && !(await this.connect())) return;
      const c = this.c!;
      await this.cmd("QUIT", "QUIT");
      await withTimeout(c.closed, READ_MS, "server did not close after QUIT");
    } catch (err) {
      this.soak.fail(this.who, `QUIT: ${(err as Error).message}`);
      this.c?.sock.destroy();
    }
  }
}

let proc: RunningProcess | null = null;
const dirs: string[] = [];

afterAll(async () => {
  await proc?.stop("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("mixed-load soak", () => {
  it(`36 clients, 4 users with small quotas, 10 sessions at once, two rounds (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const data = tempDir("myftp-soak-");
    dirs.push(data);
    for (const u of USERS) {
      const r = await runMyftpd(["user", "add", u.name, "--quota", String(u.quota), "--password-stdin", "--data", data], "pw\n");
      expect(r.code, r.stderr).toBe(0);
    }
    proc = await startServerProcess(
      [
        "--log-level", "debug",
        "--max-sessions", "10",
        "--max-queue", "6",
        "--queue-timeout", "60",
        "--pasv-range", "0-0",
        "--data-timeout", "15",
        "--hash-workers", "1",
        "--max-login-failures", "1000",
      ],
      data,
    );
    const pid = proc.child.pid!;
    const start = procStatus(pid);
    const rounds: { rss: number; fds: number; ms: number; ops: number }[] = [];
    const problems: string[] = [];

    for (let round = 1; round <= 2; round++) {
      const t0 = Date.now();
      const soak = new Soak(SEED, proc.port, data, round);
      await Promise.all(Array.from({ length: CLIENTS }, (_, i) => new Client(soak, i, USERS[i % USERS.length]!).run()));
      problems.push(...soak.violations);

      problems.push(...(await roundEndProblems(soak, proc, USERS, "127.0.2")));
      await sleep(300);
      rounds.push({ ...procStatus(pid), ms: Date.now() - t0, ops: soak.ops });
      console.log(`soak round ${round} (seed ${SEED}): ${soak.ops} ops in ${Date.now() - t0} ms; codes`, Object.fromEntries([...soak.codes].sort()));
    }
    console.log("soak process figures", { start, rounds });

    const fifo = fifoViolations(proc.output());
    console.log(`soak: ${fifo.queued} connections waited in the admission queue`);
    expect(fifo.queued, "the soak makes connections queue").toBeGreaterThan(0);
    problems.push(...fifo.violations.map((v) => `[seed ${SEED}] FIFO: ${v}`));
    const [r1, r2] = rounds as [(typeof rounds)[0], (typeof rounds)[0]];
    if (r2.fds > r1.fds + 4) problems.push(`[seed ${SEED}] fds grew from ${r1.fds} to ${r2.fds} between identical rounds (start ${start.fds})`);
    if (r1.fds > start.fds + 16) problems.push(`[seed ${SEED}] fds ${r1.fds} after round 1 against ${start.fds} at the start`);
    if (r2.rss > Math.max(r1.rss * 1.5, r1.rss + 64 * MiB)) problems.push(`[seed ${SEED}] RSS grew from ${r1.rss} to ${r2.rss}`);

    const code = await proc.stop("SIGTERM");
    if (code !== 0) problems.push(`[seed ${SEED}] server exit code ${code}`);
    problems.push(...logProblems(proc.output(), SEED, (line) => /ftp:\/\/127\.0\.0\.1:\d+/.test(line)));
    const listed = await runMyftpd(["user", "list", "--json", "--data", data]);
    expect(listed.code, listed.stderr).toBe(0);
    for (const u of JSON.parse(listed.stdout) as { name: string; usedBytes: number | null }[]) {
      const disk = homeBytes(path.join(data, "home", u.name)).bytes;
      if (u.usedBytes !== disk) problems.push(`[seed ${SEED}] user list: ${u.name} used ${u.usedBytes}, the home holds ${disk}`);
    }
    expect(problems, `seed ${SEED}`).toEqual([]);
  });
});
