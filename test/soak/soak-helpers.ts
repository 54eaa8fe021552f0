// Shared parts of the soaks (test/soak/*.test.ts): the reply codes the RFCs allow and those a soak's own traffic
// explains, a seeded random source, the disk figures of a home, the server process's figures, the record of
// violations with short transcripts, the FIFO check on the admission log, the check of the server's log, and the
// client both soaks drive (SoakClient: each soak says how it connects and what one operation is).

import { lstatSync, readdirSync, readFileSync } from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import { runMyftpd, type RunningProcess } from "../helpers/myftpd.js";
import { announcedPort, connectData, portRefused, RawFtp, type Reply } from "../helpers/raw-ftp.js";
import { sleep, withTimeout } from "../helpers/util.js";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const TEMP_PREFIX = ".myftp-upload-";

/** Codes RFC 959 §5.4 (and RFC 2428, 3659) allow per command, plus 421 anywhere (service closing). */
export const ALLOWED: Record<string, number[]> = {
  GREETING: [220, 421, 120],
  USER: [230, 331, 332, 421, 500, 501, 530],
  PASS: [230, 202, 332, 421, 500, 501, 503, 530],
  TYPE: [200, 421, 500, 501, 504, 530],
  PASV: [227, 421, 425, 500, 501, 502, 530],
  EPSV: [229, 421, 425, 500, 501, 502, 530],
  STOR: [554, 110, 125, 150, 226, 250, 421, 425, 426, 450, 451, 452, 500, 501, 530, 532, 550, 551, 552, 553],
  APPE: [554, 110, 125, 150, 226, 250, 421, 425, 426, 450, 451, 452, 500, 501, 502, 530, 550, 551, 552, 553],
  RETR: [554, 110, 125, 150, 226, 250, 421, 425, 426, 450, 451, 500, 501, 530, 550],
  REST: [350, 421, 500, 501, 502, 530],
  SIZE: [213, 421, 500, 501, 550],
  DELE: [250, 421, 450, 500, 501, 502, 530, 550],
  RNFR: [350, 421, 450, 500, 501, 502, 530, 550],
  RNTO: [250, 421, 450, 500, 501, 502, 503, 530, 532, 550, 553],
  MKD: [257, 421, 500, 501, 502, 530, 550],
  RMD: [250, 421, 500, 501, 502, 530, 550],
  // RFC 959 lists 450 for a missing directory; 550, as for every other file action, is what servers answer.
  LIST: [125, 150, 226, 250, 421, 425, 426, 450, 451, 500, 501, 502, 530, 550],
  MLSD: [125, 150, 226, 250, 421, 425, 426, 450, 451, 500, 501, 502, 530, 550],
  ABOR: [225, 226, 421, 500, 501, 502],
  NOOP: [200, 421, 500],
  SITE: [200, 202, 421, 500, 501, 530],
  QUIT: [221, 500],
  // RFC 2228 §5 and RFC 4217 (and RFC 2389 for FEAT).
  FEAT: [211, 500, 502],
  AUTH: [234, 334, 421, 431, 500, 501, 502, 504, 534],
  PBSZ: [200, 421, 500, 501, 502, 503, 530],
  PROT: [200, 421, 431, 500, 501, 502, 503, 504, 530, 534, 536],
  CCC: [200, 421, 500, 502, 533, 534],
};

/** Codes the soak's own traffic can explain, per command (the rest of ALLOWED is a defect here). */
export const EXPLAINED: Record<string, number[]> = {
  GREETING: [220, 421],
  USER: [331],
  PASS: [230],
  TYPE: [200],
  PASV: [227],
  EPSV: [229],
  // 450: another session of the user uploads the same file; 550/553: a directory in the path is gone or a name is
  // a directory; 552: over the quota; 426: the data connection was cut by us; 554 (RFC 3659 §5.5): a REST taken from
  // SIZE is past the end of a file another session has since shortened.
  STOR: [150, 226, 426, 450, 550, 552, 553, 554],
  APPE: [150, 226, 426, 450, 550, 552, 553, 554],
  RETR: [150, 226, 426, 550, 554],
  REST: [350],
  SIZE: [213, 550],
  DELE: [250, 450, 550],
  RNFR: [350, 450, 550],
  RNTO: [250, 450, 550, 553],
  MKD: [257, 550],
  RMD: [250, 550],
  LIST: [150, 226, 426, 550],
  MLSD: [150, 226, 426, 550],
  ABOR: [225, 226],
  NOOP: [200],
  SITE: [200],
  QUIT: [221],
  FEAT: [211],
  AUTH: [234],
  PBSZ: [200],
  PROT: [200],
  // FEAT does not list CCC; the server refuses it by policy (README: "CCC → 533").
  CCC: [502, 533],
};

/**
 * A download whose file another session of the user cut back meanwhile (an APPE, or a STOR at the end, over the
 * quota is truncated back in place) ends with 451 (RFC 959: local error in processing), not with a short 226.
 */
export function shrank(verb: string, r: Reply): boolean {
  return verb === "RETR" && r.code === 451 && /shrank/.test(r.text);
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes of regular files under dir, upload temporaries apart; tolerant of entries that vanish during the walk. */
export function homeBytes(dir: string): { bytes: number; temps: string[] } {
  let bytes = 0;
  const temps: string[] = [];
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      const full = path.join(d, name);
      let st;
      try {
        st = lstatSync(full);
      } catch {
        continue;
      }
      if (st.isDirectory()) stack.push(full);
      else if (name.startsWith(TEMP_PREFIX)) temps.push(path.relative(dir, full));
      else if (st.isFile()) bytes += st.size;
    }
  }
  return { bytes, temps };
}

export function procStatus(pid: number): { rss: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * KiB;
  return { rss, fds: readdirSync(`/proc/${pid}/fd`).length };
}

export class Soak {
  readonly violations: string[] = [];
  readonly codes = new Map<string, number>();
  readonly pasvPorts: number[] = [];
  ops = 0;
  constructor(
    readonly seed: number,
    readonly port: number,
    readonly dataDir: string,
    readonly round: number,
  ) {}

  readonly transcripts = new Map<string, string[]>();

  note(who: string, line: string): void {
    let t = this.transcripts.get(who);
    if (!t) this.transcripts.set(who, (t = []));
    t.push(line);
    if (t.length > 16) t.shift();
  }

  fail(who: string, what: string): void {
    const t = (this.transcripts.get(who) ?? []).join(" | ");
    if (this.violations.length < 200) this.violations.push(`[seed ${this.seed} round ${this.round}] ${who}: ${what}\n    last: ${t}`);
  }

  check(who: string, verb: string, r: Reply): Reply {
    this.note(who, `<${r.all}`);
    this.codes.set(`${verb} ${r.code}`, (this.codes.get(`${verb} ${r.code}`) ?? 0) + 1);
    if (!ALLOWED[verb]!.includes(r.code)) this.fail(who, `${verb} answered ${r.code}, which the RFCs do not allow: ${r.all}`);
    else if (!EXPLAINED[verb]!.includes(r.code) && !shrank(verb, r)) this.fail(who, `${verb} answered ${r.code}, not explained: ${r.all}`);
    return r;
  }

  home(user: string): string {
    return path.join(this.dataDir, "home", user);
  }

  checkDisk(who: string, user: string, quota: number): void {
    const { bytes } = homeBytes(this.home(user));
    if (bytes > quota) this.fail(who, `home of ${user} holds ${bytes} bytes of files, past its quota ${quota}`);
  }
}

/** Queued connections must be started in the order they were queued (each client address has one connection at a time). */
export function fifoViolations(log: string): { queued: number; violations: string[] } {
  const pending: string[] = [];
  const out: string[] = [];
  let queued = 0;
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) continue;
    let e: { event?: string; peer?: string };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue;
    }
    if (!e.peer) continue;
    if (e.event === "queued") {
      pending.push(e.peer);
      queued++;
    }
    else if (e.event === "queue-timeout") pending.splice(pending.indexOf(e.peer), 1);
    else if (e.event === "session-open") {
      const i = pending.indexOf(e.peer);
      if (i > 0) out.push(`session for ${e.peer} started before earlier waiters ${pending.slice(0, i).join(", ")}`);
      if (i >= 0) pending.splice(i, 1);
    }
  }
  return { queued, violations: out };
}

/**
 * Problems in the server's output: JSON log lines at error level or above, and any other line that is not one of
 * the start-up lines (`ours` tells those apart).
 */
export function logProblems(log: string, seed: number, ours: (line: string) => boolean): string[] {
  const problems: string[] = [];
  for (const line of log.split("\n")) {
    if (line.startsWith("{")) {
      const e = JSON.parse(line) as { level?: number };
      if ((e.level ?? 0) >= 50) problems.push(`[seed ${seed}] server logged an error: ${line}`);
    } else if (line.trim() !== "" && !ours(line)) {
      problems.push(`[seed ${seed}] server wrote: ${line}`);
    }
  }
  return problems;
}

/**
 * The checks once a round's clients are done: no upload temporaries left once the uploads cut off have ended (waited
 * for, bounded), each user's SITE QUOTA equal to the bytes in the home and within the quota (asked from a session
 * of `localNet`.N), no passive port still accepting, the server still running. Returns what failed.
 */
export async function roundEndProblems(
  soak: Soak,
  proc: RunningProcess,
  users: readonly { name: string; quota: number }[],
  localNet: string,
): Promise<string[]> {
  const problems: string[] = [];
  const at = `[seed ${soak.seed} round ${soak.round}]`;
  // Interrupted uploads finish on the server after their client left: wait (bounded) for their temporaries to go.
  let left: string[] = [];
  for (let i = 0; i < 100; i++) {
    left = users.flatMap((u) => homeBytes(soak.home(u.name)).temps.map((t) => `${u.name}/${t}`));
    if (left.length === 0) break;
    await sleep(100);
  }
  if (left.length > 0) problems.push(`${at} upload temporaries left with no upload running: ${left.join(", ")}`);

  for (const [i, u] of users.entries()) {
    const c = await RawFtp.login(soak.port, u.name, "pw", { localAddress: `${localNet}.${i + 1}` });
    const used = await c.usedBytes();
    await c.quit();
    const disk = homeBytes(soak.home(u.name)).bytes;
    if (used !== disk) problems.push(`${at} ${u.name}: SITE QUOTA says ${used}, the home holds ${disk}`);
    if (used > u.quota) problems.push(`${at} ${u.name}: used ${used} past the quota ${u.quota}`);
  }

  // No passive listener outlives its session.
  for (const port of soak.pasvPorts.slice(-60)) {
    if (!(await portRefused(port))) problems.push(`${at} passive port ${port} still accepts after every session ended`);
  }
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) problems.push(`server exited during round ${soak.round}`);
  return problems;
}

/** How long a soak client waits for any one reply or read of a data connection. */
export const READ_MS = 20_000;

export interface SoakUser {
  name: string;
  quota: number;
}

/**
 * One soak client: its own seeded random source and local address (`localNet`.N), replies checked against the
 * tables, connections retried after a full queue's 421 (a bounded number of times), passive data connections, SIZE,
 * SITE QUOTA, the replies to ABOR+NOOP, and the run of `ops` operations then QUIT. A soak says how a connection is
 * secured (beforeLogin, afterLogin, open) and what one operation is (op).
 */
export abstract class SoakClient {
  protected c: RawFtp | null = null;
  protected readonly rng: () => number;
  constructor(
    protected readonly soak: Soak,
    protected readonly index: number,
    protected readonly user: SoakUser,
    private readonly localNet: string,
    readonly who: string,
  ) {
    this.rng = mulberry32(soak.seed * 1000 + index);
  }

  protected abstract op(): Promise<void>;

  /** A new control connection (plain, to the soak's port, unless a soak says otherwise). */
  protected open(): Promise<RawFtp> {
    return RawFtp.open(this.soak.port, { localAddress: this.addr });
  }

  /** Runs between the greeting and USER. */
  protected async beforeLogin(_c: RawFtp): Promise<void> {}

  /** Runs after TYPE I. */
  protected async afterLogin(_c: RawFtp): Promise<void> {}

  protected get addr(): string {
    return `${this.localNet}.${this.index + 1}`;
  }

  protected int(min: number, max: number): number {
    return min + Math.floor(this.rng() * (max - min + 1));
  }

  protected pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rng() * xs.length)]!;
  }

  protected async cmd(verb: string, line: string): Promise<Reply> {
    this.soak.note(this.who, `>${line}`);
    return this.soak.check(this.who, verb, await this.c!.cmd(line, READ_MS));
  }

  protected async read(verb: string): Promise<Reply> {
    return this.soak.check(this.who, verb, await this.c!.read(READ_MS));
  }

  /** Connects (retrying after a 421 from a full queue, a bounded number of times) and logs in. */
  protected async connect(): Promise<boolean> {
    for (let attempt = 0; attempt < 300; attempt++) {
      const c = await this.open();
      this.c = c;
      const g = await this.read("GREETING");
      if (g.code === 220) {
        await this.beforeLogin(c);
        await this.cmd("USER", `USER ${this.user.name}`);
        await this.cmd("PASS", "PASS pw");
        await this.cmd("TYPE", "TYPE I");
        await this.afterLogin(c);
        return true;
      }
      await withTimeout(c.closed, READ_MS, "closed after 421");
      this.c = null;
      await sleep(this.int(10, 60));
    }
    return false;
  }

  /** QUIT on `c`, and its close. */
  protected async quit(c: RawFtp): Promise<void> {
    this.soak.note(this.who, ">QUIT");
    this.soak.check(this.who, "QUIT", await c.cmd("QUIT", READ_MS));
    await withTimeout(c.closed, READ_MS, "server did not close after QUIT");
  }

  /** A passive data connection, by EPSV or PASV at random. */
  protected async data(): Promise<net.Socket> {
    let port: number;
    if (this.rng() < 0.5) port = announcedPort((await this.cmd("EPSV", "EPSV")).text);
    else port = announcedPort((await this.cmd("PASV", "PASV")).text);
    this.soak.pasvPorts.push(port);
    return connectData("127.0.0.1", port, this.addr);
  }

  protected async sizeOf(name: string): Promise<number | null> {
    const r = await this.cmd("SIZE", `SIZE ${name}`);
    return r.code === 213 ? Number(r.text.trim()) : null;
  }

  protected async quota(): Promise<void> {
    const r = await this.cmd("SITE", "SITE QUOTA");
    const m = /used (\d+) of (\d+) bytes/.exec(r.text);
    if (!m) return this.soak.fail(this.who, `SITE QUOTA unreadable: ${r.all}`);
    const used = Number(m[1]);
    if (Number(m[2]) !== this.user.quota) this.soak.fail(this.who, `SITE QUOTA limit ${m[2]}, expected ${this.user.quota}`);
    if (used > this.user.quota) this.soak.fail(this.who, `SITE QUOTA used ${used} past the quota ${this.user.quota}`);
    this.soak.checkDisk(this.who, this.user.name, this.user.quota);
  }

  /**
   * Moves the first part of a transfer that is then cut `how`: `part()` written for STOR, the first bytes (or the
   * end) read for RETR; a download that ABOR is to stop is left flowing.
   */
  protected async moveSome(kind: "STOR" | "RETR", d: net.Socket, how: string, part: () => Buffer): Promise<void> {
    if (kind === "STOR") {
      const bytes = part();
      await withTimeout(
        new Promise<void>((resolve) => {
          d.write(bytes, () => resolve());
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
  }

  /** ABOR then NOOP during a `kind` transfer: every reply before NOOP's 200 must belong to the transfer or to ABOR. */
  protected async abortWithNoop(kind: "STOR" | "RETR"): Promise<void> {
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
  }

  /** `ops` operations (reconnecting after a cut control connection), then QUIT. */
  async run(ops: number): Promise<void> {
    for (let i = 0; i < ops; i++) {
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
      await this.quit(this.c!);
    } catch (err) {
      this.soak.fail(this.who, `QUIT: ${(err as Error).message}`);
      this.c?.sock.destroy();
    }
  }
}

/** The server's descriptors and RSS over two identical rounds: they must not grow. */
export function growthProblems(
  seed: number,
  start: { fds: number },
  r1: { fds: number; rss: number },
  r2: { fds: number; rss: number },
): string[] {
  const problems: string[] = [];
  if (r2.fds > r1.fds + 4) problems.push(`[seed ${seed}] fds grew from ${r1.fds} to ${r2.fds} between identical rounds (start ${start.fds})`);
  if (r1.fds > start.fds + 16) problems.push(`[seed ${seed}] fds ${r1.fds} after round 1 against ${start.fds} at the start`);
  if (r2.rss > Math.max(r1.rss * 1.5, r1.rss + 64 * MiB)) problems.push(`[seed ${seed}] RSS grew from ${r1.rss} to ${r2.rss}`);
  return problems;
}

/** After the server stopped: `myftpd user list --json` must give each user the bytes their home holds. */
export async function storedUsageProblems(seed: number, dataDir: string): Promise<string[]> {
  const listed = await runMyftpd(["user", "list", "--json", "--data", dataDir]);
  if (listed.code !== 0) return [`[seed ${seed}] myftpd user list exited ${listed.code}: ${listed.stderr}`];
  const problems: string[] = [];
  for (const u of JSON.parse(listed.stdout) as { name: string; usedBytes: number | null }[]) {
    const disk = homeBytes(path.join(dataDir, "home", u.name)).bytes;
    if (u.usedBytes !== disk) problems.push(`[seed ${seed}] user list: ${u.name} used ${u.usedBytes}, the home holds ${disk}`);
  }
  return problems;
}
