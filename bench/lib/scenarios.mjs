// The seven scenarios of `npm run bench`. Each run drives one server with the stdlib Python clients in
// bench/clients/ftpbench.py and reads the server's cost from /proc.
import { spawn } from "node:child_process";
import { existsSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { CpuMeter, treePssKiB } from "./procfs.mjs";
import { GiB, HASH_FILE, MiB } from "./setup.mjs";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const CLIENT = path.resolve(HERE, "..", "clients", "ftpbench.py");
export const CLIENT_PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * PSS of a server's tree, the median of several samples 200 ms apart: a V8 heap commits and
 * releases young-generation pages as it goes, so one idle Node process swings by a few MiB.
 */
async function samplePss(pid, n) {
  const xs = [];
  let processes = 0;
  for (let i = 0; i < n; i++) {
    if (i) await sleep(200);
    const m = treePssKiB(pid);
    xs.push(m.kib);
    processes = m.processes;
  }
  xs.sort((a, b) => a - b);
  const mid = Math.floor(xs.length / 2);
  const kib = xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
  return { kib, range: [xs[0], xs[xs.length - 1]], processes };
}

/** Sizes and durations: the full run, and the smaller --quick run. */
export function plan(quick) {
  return quick
    ? {
        bigSize: 256 * MiB,
        midSize: 32 * MiB,
        smallCount: 50,
        smallSize: 16 * 1024,
        hashSize: 200 * MiB,
        reps: { S1: 1, S2: 1, S3: 1, S4: 1, S5: 1, S6: 1, S7: 1 },
        S3: { clients: 32, files: 10 },
        S4: { workers: 16, seconds: 2 },
        S5: { sessions: 300, samples: 8 },
        S6: { load: 8, seconds: 2 },
        S7: { hashes: 20, seconds: 6, baseline: 3 },
      }
    : {
        bigSize: 1 * GiB,
        midSize: 64 * MiB,
        smallCount: 50,
        smallSize: 16 * 1024,
        hashSize: 200 * MiB,
        reps: { S1: 3, S2: 3, S3: 3, S4: 3, S5: 3, S6: 3, S7: 3 },
        S3: { clients: 32, files: 50 },
        S4: { workers: 16, seconds: 10 },
        S5: { sessions: 500, samples: 15 },
        S6: { load: 8, seconds: 10 },
        S7: { hashes: 20, seconds: 10, baseline: 5 },
      };
}

/**
 * Runs the client in its own process group (it forks workers), returns its last JSON line.
 * `onLine` sees every JSON line as it arrives (S5 uses it to measure while sessions are held).
 */
let clientMeter = null;
/** CPU seconds used by all bench clients so far (cgroup or the tree of the running client). */
export function clientCpuSeconds() {
  return clientMeter ? clientMeter.seconds() : 0;
}
export function releaseClientMeter() {
  clientMeter?.release();
  clientMeter = null;
}

export function runClient(ctx, port, sub, args, { timeoutMs, onLine } = {}) {
  clientMeter ??= new CpuMeter("client");
  return new Promise((resolve, reject) => {
    const child = spawn(
      CLIENT_PYTHON,
      [CLIENT, "--port", String(port), "--user", ctx.user, sub, ...args.map(String)],
      { env: { ...process.env, MYFTP_BENCH_PASSWORD: ctx.password }, stdio: ["pipe", "pipe", "pipe"], detached: true },
    );
    clientMeter.attach(child.pid);
    let out = "";
    let err = "";
    let last = null;
    let pending = Promise.resolve();
    child.stdout.on("data", (d) => {
      out += d;
      let i;
      while ((i = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, i).trim();
        out = out.slice(i + 1);
        if (!line.startsWith("{")) continue;
        try {
          last = JSON.parse(line);
        } catch {
          continue;
        }
        if (onLine) {
          const obj = last;
          pending = pending.then(() => onLine(obj, child));
        }
      }
    });
    child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL"); // the client's own process group
      } catch {
        /* gone */
      }
    }, timeoutMs ?? 120000);
    child.on("exit", async (code, sig) => {
      clearTimeout(timer);
      try {
        await pending;
      } catch (e) {
        reject(e);
        return;
      }
      if (code === 0 && last) resolve(last);
      else reject(new Error(`client ${sub} failed (code ${code}, signal ${sig}): ${err.trim().split("\n").slice(-3).join(" | ")}`));
    });
    child.stdin.on("error", () => {});
  });
}

function check(r, what) {
  if (!r.ok) {
    const why = r.errors?.length ? r.errors.join("; ") : r.first_error ?? JSON.stringify(r);
    throw new Error(`${what} incomplete: ${why}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Each scenario: { id, title, metrics: [{ key, label, unit, better }], run(server, ctx, p) -> values }
// A scenario with `only` runs against those servers alone; the others' cells say `n/a: ${na}`.

export const SCENARIOS = [
  {
    id: "S1",
    title: "1 GiB download",
    metrics: [
      { key: "mbps", label: "S1 download", unit: "MB/s", better: "higher", digits: 0 },
      { key: "cpuPerGiB", label: "S1 server CPU", unit: "CPU s/GiB", better: "lower", digits: 2 },
    ],
    async run(server, ctx, p) {
      const c0 = server.proc.cpu.seconds();
      const r = await runClient(ctx, server.proc.port, "download", ["--path", "big.bin", "--size", p.bigSize], { timeoutMs: 180000 });
      await sleep(100);
      const cpu = server.proc.cpu.seconds() - c0;
      check(r, "download");
      return { mbps: r.bytes / r.seconds / 1e6, cpuPerGiB: cpu / (r.bytes / GiB) };
    },
  },
  {
    id: "S2",
    title: "1 GiB upload",
    metrics: [
      { key: "mbps", label: "S2 upload", unit: "MB/s", better: "higher", digits: 0 },
      { key: "cpuPerGiB", label: "S2 server CPU", unit: "CPU s/GiB", better: "lower", digits: 2 },
    ],
    async run(server, ctx, p) {
      const name = `s2-${server.name}.bin`;
      const dest = path.join(ctx.tree, "upload", name);
      const c0 = server.proc.cpu.seconds();
      try {
        const r = await runClient(
          ctx, server.proc.port, "upload",
          ["--src", path.join(ctx.tree, "big.bin"), "--path", `upload/${name}`, "--size", p.bigSize],
          { timeoutMs: 180000 },
        );
        await sleep(100);
        const cpu = server.proc.cpu.seconds() - c0;
        check(r, "upload");
        const onDisk = statSync(dest).size;
        if (onDisk !== p.bigSize) throw new Error(`uploaded file has ${onDisk} bytes, expected ${p.bigSize}`);
        return { mbps: r.bytes / r.seconds / 1e6, cpuPerGiB: cpu / (r.bytes / GiB) };
      } finally {
        rmSync(dest, { force: true });
      }
    },
  },
  {
    id: "S3",
    title: "32 ftplib clients x 50 files of 16 KiB",
    metrics: [
      { key: "filesPerSec", label: "S3 small files", unit: "files/s", better: "higher", digits: 0 },
      { key: "cpuMsPerFile", label: "S3 server CPU", unit: "CPU ms/file", better: "lower", digits: 2 },
    ],
    async run(server, ctx, p) {
      let c0 = null;
      const r = await runClient(
        ctx, server.proc.port, "files",
        ["--clients", p.S3.clients, "--files", p.S3.files, "--pool", p.smallCount, "--dir", "small", "--file-size", p.smallSize],
        {
          timeoutMs: 400000,
          // Logins are S4's business: count CPU from the moment all clients are logged in.
          onLine: (obj) => {
            if (obj.phase === "start") c0 = server.proc.cpu.seconds();
          },
        },
      );
      if (c0 === null) throw new Error("files client never started its clients");
      await sleep(200);
      const cpu = server.proc.cpu.seconds() - c0;
      check(r, "files");
      return { filesPerSec: r.files / r.seconds, cpuMsPerFile: (cpu * 1000) / r.files };
    },
  },
  {
    id: "S4",
    title: "16 workers logging in and out",
    metrics: [
      { key: "loginsPerSec", label: "S4 logins", unit: "logins/s", better: "higher", digits: 0 },
      { key: "p99ms", label: "S4 login p99", unit: "ms", better: "lower", digits: 1 },
      { key: "cpuMsPerLogin", label: "S4 server CPU", unit: "CPU ms/login", better: "lower", digits: 2 },
    ],
    async run(server, ctx, p) {
      const c0 = server.proc.cpu.seconds();
      const r = await runClient(
        ctx, server.proc.port, "logins",
        ["--workers", p.S4.workers, "--seconds", p.S4.seconds],
        { timeoutMs: (p.S4.seconds + 120) * 1000 },
      );
      await sleep(200);
      const cpu = server.proc.cpu.seconds() - c0;
      check(r, "logins");
      return { loginsPerSec: r.logins / r.seconds, p99ms: r.p99 * 1000, cpuMsPerLogin: (cpu * 1000) / r.logins };
    },
  },
  {
    id: "S5",
    title: "idle logged-in sessions",
    fresh: true, // measured on a freshly started server: earlier scenarios leave heap that hides growth
    inspect: true, // myftpd runs with --inspect on a random loopback port so S5 can trigger a full GC
    metrics: [{ key: "kibPerSession", label: "S5 memory", unit: "KiB/session", better: "lower", digits: 1 }],
    async run(server, ctx, p) {
      const pid = server.proc.pid;
      // One login first, so lazily loaded code (auth, store) is not billed to the sessions.
      await runClient(ctx, server.proc.port, "logins", ["--workers", 1, "--seconds", 0.3], { timeoutMs: 60000 });
      let before = null;
      let after = null;
      // A garbage-collected server (myftpd) is asked for a full collection before each side is measured,
      // so the figure is what the sessions retain, not garbage from logging them in.
      let gcDone = typeof server.collectGarbage === "function";
      const collect = () => (typeof server.collectGarbage === "function" ? server.collectGarbage() : false);
      const r = await runClient(ctx, server.proc.port, "idle", ["--sessions", p.S5.sessions], {
        timeoutMs: 900000,
        onLine: async (obj, child) => {
          if (obj.phase === "base") {
            await sleep(500);
            gcDone = collect() && gcDone;
            before = await samplePss(pid, p.S5.samples);
            child.stdin.write("\n");
            return;
          }
          if (!obj.ready) return;
          await sleep(500);
          gcDone = collect() && gcDone;
          server.proc.track();
          after = await samplePss(pid, p.S5.samples);
          child.stdin.end("\n");
        },
      });
      if (!before || !after) throw new Error("idle client never reported ready");
      if (r.alive_at_end !== p.S5.sessions) throw new Error(`only ${r.alive_at_end}/${p.S5.sessions} sessions still open when measured`);
      return {
        kibPerSession: (after.kib - before.kib) / p.S5.sessions,
        beforeKiB: before.kib,
        afterKiB: after.kib,
        beforeRangeKiB: before.range,
        afterRangeKiB: after.range,
        processes: after.processes,
        collectedGarbage: gcDone,
      };
    },
  },
  {
    id: "S6",
    title: "LIST latency under 8 transfers",
    metrics: [
      { key: "p99ms", label: "S6 LIST p99", unit: "ms", better: "lower", digits: 1 },
      { key: "p50ms", label: "S6 LIST p50", unit: "ms", better: "lower", digits: 1 },
      { key: "loadMBps", label: "S6 transfer load", unit: "MB/s", better: "higher", digits: 0 },
    ],
    async run(server, ctx, p) {
      try {
        const r = await runClient(
          ctx, server.proc.port, "list",
          [
            "--load", p.S6.load, "--seconds", p.S6.seconds, "--dir", "small", "--expect-entries", p.smallCount,
            "--src", path.join(ctx.tree, "big.bin"), "--load-path", "mid.bin", "--load-size", p.midSize,
          ],
          { timeoutMs: (p.S6.seconds + 180) * 1000 },
        );
        check(r, "list");
        return { p99ms: r.p99 * 1000, p50ms: r.p50 * 1000, loadMBps: r.load_bytes / r.seconds / 1e6, lists: r.lists };
      } finally {
        for (let i = 0; i < p.S6.load; i++) rmSync(path.join(ctx.tree, "upload", `s6-${i}.bin`), { force: true });
      }
    },
  },
  {
    id: "S7",
    title: "LIST latency under 20 concurrent HASH of a 200 MiB file",
    only: ["myftpd"], // the peers have no HASH command
    na: "no HASH",
    metrics: [
      { key: "p99ms", label: "S7 LIST p99 under HASH", unit: "ms", better: "lower", digits: 1 },
      { key: "p50ms", label: "S7 LIST p50 under HASH", unit: "ms", better: "lower", digits: 1 },
      { key: "maxMs", label: "S7 LIST max under HASH", unit: "ms", better: "lower", digits: 1 },
      { key: "idleP99ms", label: "S7 LIST p99 idle", unit: "ms", better: "lower", digits: 1 },
      { key: "idleP50ms", label: "S7 LIST p50 idle", unit: "ms", better: "lower", digits: 1 },
      { key: "hashWallS", label: "S7 20 HASH wall", unit: "s", better: "lower", digits: 2 },
      { key: "lists", label: "S7 LISTs under HASH", unit: "LISTs", better: "higher", digits: 0 },
    ],
    async run(server, ctx, p) {
      const r = await runClient(
        ctx, server.proc.port, "hashload",
        [
          "--hashes", p.S7.hashes, "--seconds", p.S7.seconds, "--baseline", p.S7.baseline, "--dir", "small",
          "--expect-entries", p.smallCount, "--src", path.join(ctx.tree, HASH_FILE), "--path", HASH_FILE,
        ],
        { timeoutMs: (p.S7.baseline + p.S7.seconds + 240) * 1000 },
      );
      check(r, "hashload");
      return {
        p99ms: r.p99 * 1000,
        p50ms: r.p50 * 1000,
        maxMs: r.max * 1000,
        idleP99ms: r.idle_p99 * 1000,
        idleP50ms: r.idle_p50 * 1000,
        idleMaxMs: r.idle_max * 1000,
        hashWallS: r.hash_wall,
        lists: r.lists,
        idleLists: r.idle_lists,
        probeSeconds: r.seconds,
        hashes: r.hashes,
        hashMBps: r.hash_bytes / r.load_seconds / 1e6,
        hashP50S: r.hash_p50,
        hashMaxS: r.hash_max,
        digest: r.digest,
      };
    },
  },
];
