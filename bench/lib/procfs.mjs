// What a server costs, read from /proc: CPU seconds and PSS summed over its process tree.
//
// Forking servers (vsftpd, pure-ftpd) run one or two processes per session. A session process that
// has exited and been reaped by its parent has its CPU time folded into that parent's cutime/cstime,
// so summing utime+stime+cutime+cstime over the live tree counts every process exactly once, dead or
// alive, as long as the tree reaps its own children (all these servers do).
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

let clkTck = 100;
try {
  clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  /* keep the Linux default */
}

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); field N is rest[N - 3].
    return {
      pid,
      ppid: Number(rest[1]),
      ticks: Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]),
    };
  } catch {
    return null; // gone
  }
}

/** The root pid and all its live descendants. */
export function processTree(rootPid) {
  const children = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(st.pid);
  }
  const out = [];
  const todo = [rootPid];
  for (let guard = 0; todo.length > 0 && guard < 1_000_000; guard++) {
    const p = todo.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) todo.push(c);
  }
  return out;
}

/** CPU seconds (user + system, including reaped children) of a server's whole tree. */
export function treeCpuSeconds(rootPid) {
  let ticks = 0;
  for (const pid of processTree(rootPid)) {
    const st = readStat(pid);
    if (st) ticks += st.ticks;
  }
  return ticks / clkTck;
}

/** Proportional set size in KiB summed over a server's tree, and how many processes it has. */
export function treePssKiB(rootPid) {
  let kib = 0;
  const pids = processTree(rootPid);
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
      if (m) kib += Number(m[1]);
    } catch {
      /* exited meanwhile */
    }
  }
  return { kib, processes: pids.length };
}

// ------------------------------------------------------------------------------------------------
// Exact CPU accounting where the kernel offers it: each server runs in a cgroup of its own, so every
// process it ever forks is counted, even session processes that exit unreaped or get reparented to
// init (vsftpd's per-session processes do). Falls back to the /proc tree sum above.

function findCgroupCpu() {
  const candidates = [
    { dir: "/sys/fs/cgroup/cpuacct", file: "cpuacct.usage", scale: 1e-9, parse: (s) => Number(s) },
    { dir: "/sys/fs/cgroup/unified", file: "cpu.stat", scale: 1e-6, parse: (s) => Number(/usage_usec (\d+)/.exec(s)?.[1]) },
    { dir: "/sys/fs/cgroup", file: "cpu.stat", scale: 1e-6, parse: (s) => Number(/usage_usec (\d+)/.exec(s)?.[1]) },
  ];
  for (const c of candidates) {
    try {
      if (Number.isFinite(c.parse(readFileSync(`${c.dir}/${c.file}`, "utf8"))) && existsSync(`${c.dir}/cgroup.procs`)) return c;
    } catch {
      /* not this one */
    }
  }
  return null;
}

const CGROUP = process.getuid?.() === 0 ? findCgroupCpu() : null;

/** CPU meter for one server: cgroup when possible, else the process-tree sum. */
export class CpuMeter {
  constructor(name) {
    this.name = name;
    this.pid = null;
    this.dir = null;
    if (CGROUP) {
      const dir = `${CGROUP.dir}/myftp-bench-${process.pid}-${name}`;
      try {
        mkdirSync(dir, { recursive: true });
        this.dir = dir;
      } catch {
        this.dir = null;
      }
    }
  }

  get method() {
    return this.dir ? "cgroup" : "proc-tree";
  }

  /** Puts a freshly spawned server (before it forks any session) into the meter's cgroup. */
  attach(pid) {
    this.pid = pid;
    if (!this.dir) return;
    try {
      writeFileSync(`${this.dir}/cgroup.procs`, String(pid));
    } catch {
      this.release();
    }
  }

  seconds() {
    if (this.dir) {
      try {
        return CGROUP.parse(readFileSync(`${this.dir}/${CGROUP.file}`, "utf8")) * CGROUP.scale;
      } catch {
        /* fall through */
      }
    }
    return this.pid ? treeCpuSeconds(this.pid) : 0;
  }

  /** Pids still in the cgroup (empty without a cgroup). */
  members() {
    if (!this.dir) return [];
    try {
      return readFileSync(`${this.dir}/cgroup.procs`, "utf8").split("\n").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** Removes the cgroup once its processes are gone (retries for up to 5 s while exits are reaped). */
  release() {
    if (!this.dir) return;
    const dir = this.dir;
    this.dir = null;
    for (let i = 0; i < 250; i++) {
      try {
        rmdirSync(dir);
        return;
      } catch {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  }
}

/** Removes empty cgroups left by earlier bench runs that died before cleaning up (only ours, by name). */
export function removeStaleCgroups() {
  if (!CGROUP) return;
  let names = [];
  try {
    names = readdirSync(CGROUP.dir).filter((n) => /^myftp-bench-\d+-/.test(n));
  } catch {
    return;
  }
  for (const n of names) {
    const owner = Number(n.split("-")[2]);
    let alive = false;
    try {
      process.kill(owner, 0);
      alive = true;
    } catch {
      /* owner gone */
    }
    if (alive) continue;
    try {
      rmdirSync(`${CGROUP.dir}/${n}`); // fails (and is left alone) unless empty
    } catch {
      /* not empty */
    }
  }
}

/** Busy CPU seconds of the whole machine, to tell how much of a run went to processes not ours. */
export function machineBusySeconds() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user already.
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
  return busy / clkTck;
}
