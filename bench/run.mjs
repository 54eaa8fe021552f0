#!/usr/bin/env node
// npm run bench [-- --quick] : myftpd side by side with the FTP servers installed here.
// See bench/README.md for what is measured and how.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeReports, formatTable } from "./lib/report.mjs";
import { argon2Cost, yescryptCost } from "./lib/hashcost.mjs";
import { machineBusySeconds, removeStaleCgroups } from "./lib/procfs.mjs";
import { CLIENT_PYTHON, SCENARIOS, clientCpuSeconds, plan as makePlan, releaseClientMeter } from "./lib/scenarios.mjs";
import { SERVER_CLASSES } from "./lib/servers.mjs";
import { buildTree, chooseWorkDir, chownTree, clearUploads, ensureUser, takeLock, warmMemory, GiB, HASH_FILE } from "./lib/setup.mjs";

/** Rounds of S3's small files each server serves before anything is measured. */
const WARM_UP_SMALL_ROUNDS = 3;
const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, "..");

const USAGE = `usage: npm run bench [-- options]   (or: node bench/run.mjs [options] after npm run build)

  --quick             smaller sizes and one repetition (under 2 minutes)
  --reps N            repetitions of every scenario (default 3; --quick 1)
  --only S1,S3        run only these scenarios
  --servers a,b       only these servers (myftpd, vsftpd, pyftpdlib, pure-ftpd)
  --profile           run myftpd under node --cpu-prof; profiles go to /tmp/myftp-bench-profiles
  --out DIR           where results go (default bench/results)
  --keep              keep the work directory (files, configs, server logs) afterwards
`;

function parseArgs(argv) {
  const o = { quick: false, reps: null, only: null, servers: null, profile: false, out: path.join(HERE, "results"), keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const [, inline] = a.split(/=(.*)/s);
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const name = a.split("=")[0];
    if (name === "--quick") o.quick = true;
    else if (name === "--reps") o.reps = Math.max(1, Math.min(20, Number(val()) || 1));
    else if (name === "--only") o.only = val().toUpperCase().split(",");
    else if (name === "--servers") o.servers = val().split(",");
    else if (name === "--profile") o.profile = true;
    else if (name === "--out") o.out = path.resolve(val());
    else if (name === "--keep") o.keep = true;
    else if (name === "--help" || name === "-h") {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  return o;
}

function machine() {
  const cpus = os.cpus();
  const osRelease = (() => {
    try {
      return /PRETTY_NAME="([^"]+)"/.exec(readFileSync("/etc/os-release", "utf8"))?.[1];
    } catch {
      return undefined;
    }
  })();
  return {
    cpu: cpus[0]?.model?.trim() ?? "?",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / GiB),
    kernel: os.release(),
    os: osRelease ?? os.type(),
    node: process.version,
    python: spawnSync(CLIENT_PYTHON, ["-V"], { encoding: "utf8" }).stdout.trim(),
  };
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const fmtSecs = (ms) => `${(ms / 1000).toFixed(1)} s`;

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const p = makePlan(opts.quick);
  if (opts.reps) for (const k of Object.keys(p.reps)) p.reps[k] = opts.reps;
  const scenarios = SCENARIOS.filter((s) => !opts.only || opts.only.includes(s.id));
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  const log = (s) => process.stdout.write(`${s}\n`);

  log(`myftp bench${opts.quick ? " (quick)" : ""}: ${scenarios.map((s) => s.id).join(" ")}`);
  // S7's 200 MiB file is made only when S7 runs.
  const hashSize = scenarios.some((s) => s.id === "S7") ? p.hashSize : 0;
  const work = chooseWorkDir(p.bigSize, hashSize);
  takeLock(work);
  removeStaleCgroups();
  const logDir = path.join(work, "logs");
  mkdirSync(logDir, { recursive: true });
  const profileDir = opts.profile ? "/tmp/myftp-bench-profiles" : null;
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const notes = [];
  const tree = buildTree(work, { ...p, hashSize });
  warmMemory(work, 2 * p.bigSize);
  log(
    `files: ${tree} (big.bin ${p.bigSize / 2 ** 20} MiB, ${p.smallCount} x ${p.smallSize / 1024} KiB in small/` +
      `${hashSize ? `, ${HASH_FILE} ${hashSize / 2 ** 20} MiB` : ""})`,
  );

  const ctx = { work, tree, logDir, profileDir, profileLabel: "warmup", user: null, password: null, systemUser: false };
  const wanted = SERVER_CLASSES.map((C) => new C(ctx)).filter((s) => !opts.servers || opts.servers.includes(s.name));
  const needSystemUser = wanted.some((s) => s.name === "vsftpd" || s.name === "pure-ftpd");
  const u = ensureUser(tree, { wantSystemUser: needSystemUser });
  Object.assign(ctx, { user: u.user, password: u.password, systemUser: u.system });
  if (u.system) chownTree(tree, u.uid, u.gid);
  for (const n of u.notes) {
    notes.push(n);
    log(`note: ${n}`);
  }

  // Probe, prepare, start.
  const status = {};
  const servers = [];
  for (const s of wanted) {
    let st = s.probe();
    if (st.available) {
      try {
        await s.prepare();
        await s.start();
        st = { ...st, pid: s.proc.pid, port: s.proc.port };
        servers.push(s);
      } catch (e) {
        st = { available: false, reason: `could not start: ${String(e.message ?? e).split("\n").slice(0, 4).join(" / ")}` };
      }
    }
    status[s.name] = st;
    log(
      st.available
        ? `server ${s.name} ${st.version}: ftp://127.0.0.1:${st.port} (pid ${st.pid})`
        : `server ${s.name}: not available (${st.reason})${st.hint ? `; to install: ${st.hint}` : ""}`,
    );
    if (s.flagsMissing?.length) {
      const n = `${s.name} does not know ${s.flagsMissing.join(", ")} yet: ran with its default limits`;
      notes.push(n);
      log(`note: ${n}`);
    }
  }

  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    for (const s of servers) {
      await s.proc.stop().catch(() => {});
      s.proc.dispose();
    }
    releaseClientMeter();
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  };
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.once(sig, () => {
      log(`\n${sig}: stopping the servers this bench started`);
      cleanup().finally(() => process.exit(130));
    });
  }

  const results = {}; // scenarioId -> serverName -> [values | {error}]
  // Bounded patience with a shared machine: total time spent waiting for quiet, and re-runs.
  const quietBudget = { leftMs: opts.quick ? 15000 : 90000 };
  const retryBudget = { left: opts.quick ? 4 : 6 };
  try {
    if (servers.length === 0) throw new Error("no server could be started");

    // Warm-up, not measured: each server serves and stores a file once, and serves three rounds of small files (a
    // long-running server has run its per-file code many times; a JIT-compiled one is only fast once it has: after
    // one round myftpd's first measured S3 run still spent 0.26 ms of CPU per file, against 0.20 in the runs after).
    const smallFiles = SCENARIOS.find((sc) => sc.id === "S3");
    for (const s of servers) {
      try {
        await SCENARIOS[0].run(s, ctx, { ...p, bigSize: p.bigSize });
        await SCENARIOS[1].run(s, ctx, p);
        for (let round = 0; round < WARM_UP_SMALL_ROUNDS; round++) await smallFiles.run(s, ctx, p);
      } catch (e) {
        log(`warm-up ${s.name}: ${e.message}`);
      }
    }

    for (const sc of scenarios) {
      results[sc.id] = Object.fromEntries(servers.map((s) => [s.name, []]));
      if (profileDir) {
        // One profile per scenario: restart myftpd so its profile covers only this scenario.
        ctx.profileLabel = sc.id;
        for (const s of servers.filter((x) => x.name === "myftpd")) {
          await s.proc.stop();
          await s.start();
        }
      }
      const reps = p.reps[sc.id];
      // A scenario some servers cannot take part in (S7: HASH) runs against the others only.
      const able = servers.filter((s) => !sc.only || sc.only.includes(s.name));
      if (able.length < servers.length) {
        log(`${sc.id}: ${servers.filter((s) => !able.includes(s)).map((s) => s.name).join(", ")} not run (${sc.na})`);
      }
      for (let rep = 0; rep < reps; rep++) {
        // Interleaved, and the order rotates each repetition so no server always goes first.
        const order = able.map((_, i) => able[(i + rep) % able.length]);
        for (const s of order) {
          let v;
          let wall = 0;
          for (let attempt = 0; attempt < 2; attempt++) {
            if (attempt > 0) log(`${sc.id} ${rep + 1}/${reps} ${s.name.padEnd(9)} others used ${v.otherCpuPct.toFixed(0)}% of the CPUs: once more`);
            v = undefined;
            try {
              if (sc.fresh || !isAlive(s)) {
                await s.proc.stop();
                ctx.inspect = Boolean(sc.inspect);
                try {
                  await s.start();
                } finally {
                  ctx.inspect = false;
                }
              }
            } catch (e) {
              v = { error: `restart failed: ${String(e.message ?? e).split("\n")[0]}` };
            }
            await waitQuiet(quietBudget);
            const t = Date.now();
            const busy0 = machineBusySeconds();
            const srv0 = s.proc.cpu.seconds();
            const cli0 = clientCpuSeconds();
            try {
              v ??= await sc.run(s, ctx, p);
            } catch (e) {
              v = { error: String(e.message ?? e).split("\n")[0] };
            }
            wall = (Date.now() - t) / 1000;
            // CPU the machine spent on processes that are neither this server nor the bench clients.
            if (s.proc.cpu.method === "cgroup") {
              const other = machineBusySeconds() - busy0 - (s.proc.cpu.seconds() - srv0) - (clientCpuSeconds() - cli0);
              v.otherCpuPct = Math.max(0, (100 * other) / (wall * os.cpus().length));
            }
            clearUploads(tree);
            if (v.error || !(v.otherCpuPct >= NOISY_PCT) || retryBudget.left <= 0) break;
            retryBudget.left--;
          }
          results[sc.id][s.name].push(v);
          if (sc.inspect && s.proc.inspectUrl) {
            // Back to a plain server for the scenarios after this one.
            await s.proc.stop();
            await s.start().catch((e) => log(`restart ${s.name}: ${e.message}`));
          }
          const shown = v.error
            ? `ERROR ${v.error}`
            : sc.metrics.map((m) => `${v[m.key]?.toFixed(m.digits)} ${m.unit}`).join(", ");
          const noise = v.otherCpuPct >= 5 ? `, other processes used ${v.otherCpuPct.toFixed(0)}% of the CPUs` : "";
          log(`${sc.id} ${rep + 1}/${reps} ${s.name.padEnd(9)} ${shown}  (${fmtSecs(wall * 1000)}${noise})`);
        }
      }
    }
  } finally {
    await cleanup();
  }

  // Medians, ratios, targets.
  const medians = {};
  for (const sc of scenarios) {
    medians[sc.id] = {};
    for (const s of servers) {
      if (sc.only && !sc.only.includes(s.name)) {
        medians[sc.id][s.name] = { na: sc.na };
        continue;
      }
      const runs = results[sc.id]?.[s.name] ?? [];
      const ok = runs.filter((r) => !r.error);
      medians[sc.id][s.name] = Object.fromEntries(sc.metrics.map((m) => [m.key, median(ok.map((r) => r[m.key]))]));
      if (ok.length === 0 && runs.length) medians[sc.id][s.name].error = runs[0].error;
    }
  }
  // S4's note: what one password check costs, measured apart from any server.
  const hashCosts = [];
  if (scenarios.some((sc) => sc.id === "S4")) {
    const a = status.myftpd?.available ? await argon2Cost() : null;
    if (a) hashCosts.push({ server: "myftpd", ...a });
    if (u.system) {
      const y = yescryptCost(u.user);
      if (y) hashCosts.push({ server: "vsftpd, pure-ftpd", ...y });
    }
  }
  const elapsed = Date.now() - t0;
  const report = {
    date: new Date().toISOString(),
    command,
    quick: opts.quick,
    elapsedSeconds: Math.round(elapsed / 1000),
    machine: machine(),
    plan: p,
    servers: status,
    notes,
    hashCosts,
    scenarios: scenarios.map((sc) => ({ id: sc.id, title: sc.title, metrics: sc.metrics, only: sc.only, na: sc.na })),
    medians,
    runs: results,
  };
  const files = writeReports(report, opts.out);
  log("");
  log(formatTable(report));
  log(`\nfull run took ${fmtSecs(elapsed)}; wrote ${files.map((f) => path.relative(ROOT, f)).join(", ")}`);
  if (profileDir) log(`myftpd CPU profiles: ${profileDir} (summarize: node bench/profile-summary.mjs FILE; or open in Chrome DevTools / speedscope)`);
}

/**
 * Waits (bounded by the run's remaining quiet budget) until processes other than ours leave the
 * CPUs mostly idle: between runs our servers are idle, so busy CPU then is someone else's.
 */
async function waitQuiet(budget) {
  const cores = os.cpus().length;
  for (let i = 0; i < 1000 && budget.leftMs > 0; i++) {
    const b0 = machineBusySeconds();
    const t = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    const pct = (100 * (machineBusySeconds() - b0)) / (((Date.now() - t) / 1000) * cores);
    budget.leftMs -= Date.now() - t;
    if (pct < QUIET_PCT) return;
  }
}
const QUIET_PCT = 15; // busy share of all CPUs below which the machine counts as quiet
const NOISY_PCT = 25; // a run during which others took this much is repeated once

function isAlive(s) {
  return s.proc.child && s.proc.child.exitCode === null && s.proc.child.signalCode === null;
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e.stack ?? e}\n`);
  process.exit(1);
});
