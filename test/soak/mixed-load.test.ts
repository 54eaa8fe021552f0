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
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runMyftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { readAll, writeAll } from "../helpers/raw-ftp.js";
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

const SEED = Number(process.env.SOAK_SEED ?? 20240611);
const CLIENTS = 36;
const OPS = 24;
const USERS = [
  { name: "soak0", quota: 2 * MiB },
  { name: "soak1", quota: 3 * MiB },
  { name: "soak2", quota: 4 * MiB },
  { name: "soak3", quota: 5 * MiB },
];

class Client extends SoakClient {
  constructor(soak: Soak, index: number, user: SoakUser) {
    super(soak, index, user, "127.0.1", `client ${index} (${user.name})`);
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
    await this.moveSome(kind, d, how, () => Buffer.alloc(this.int(1, 128) * KiB, this.index));
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
    await this.abortWithNoop(kind);
    d.destroy();
  }

  protected async op(): Promise<void> {
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
      await Promise.all(Array.from({ length: CLIENTS }, (_, i) => new Client(soak, i, USERS[i % USERS.length]!).run(OPS)));
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
    problems.push(...growthProblems(SEED, start, r1, r2));

    const code = await proc.stop("SIGTERM");
    if (code !== 0) problems.push(`[seed ${SEED}] server exit code ${code}`);
    problems.push(...logProblems(proc.output(), SEED, (line) => /ftp:\/\/127\.0\.0\.1:\d+/.test(line)));
    problems.push(...(await storedUsageProblems(SEED, data)));
    expect(problems, `seed ${SEED}`).toEqual([]);
  });
});
