// What a server costs, read from /proc: CPU seconds and PSS summed over its process tree.
//
// Forking servers (vsftpd, pure-ftpd) run one or two processes per session. A session process that
// has exited and been reaped by its parent has its CPU time folded into that parent's cutime/cstime,
// so summing utime+stime+cutime+cstime over the live tree counts every process exactly once, dead or
// alive, as long as the tree reaps its own children (all these servers do).
import { readFileSync, readdirSync } from "node:fs";
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
