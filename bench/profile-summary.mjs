#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (from node --cpu-prof): where the time went, by self time per
// function and by origin (myftp code, dependencies, Node internals, native, GC, idle).
// usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N]
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith("--"));
const topIdx = args.indexOf("--top");
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 30;
if (!file) {
  process.stderr.write("usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N]\n");
  process.exit(2);
}
const prof = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Self time per node from the sample stream.
const self = new Map();
const deltas = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) {
  const dt = deltas[i + 1] ?? 0;
  self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
}
const total = [...self.values()].reduce((a, b) => a + b, 0);

function origin(cf) {
  const u = cf.url ?? "";
  const name = cf.functionName;
  if (name === "(idle)") return "idle";
  if (name === "(garbage collector)") return "gc";
  if (name === "(program)") return "program (native, unattributed)";
  if (u.includes("/dist/")) return "myftp";
  if (u.includes("node_modules")) return `dep ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1]}`;
  if (u.startsWith("node:")) return "node internals";
  if (u === "") return "native";
  return "other";
}

const fnSelf = new Map();
const originSelf = new Map();
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame;
  const key = `${cf.functionName || "(anonymous)"} ${cf.url ? `${cf.url.replace(/^file:\/\/.*\/dist\//, "dist/")}:${cf.lineNumber + 1}` : ""}`;
  fnSelf.set(key, (fnSelf.get(key) ?? 0) + t);
  const o = origin(cf);
  originSelf.set(o, (originSelf.get(o) ?? 0) + t);
}

// Inclusive time of myftp functions (self + descendants), to see which of our paths are heavy.
const incl = new Map();
for (const [id, t] of self) {
  const seen = new Set();
  for (let cur = id, guard = 0; cur !== undefined && guard < 10000; cur = parent.get(cur), guard++) {
    const cf = byId.get(cur).callFrame;
    if (!(cf.url ?? "").includes("/dist/")) continue;
    const key = `${cf.functionName || "(anonymous)"} ${cf.url.replace(/^file:\/\/.*\/dist\//, "dist/")}:${cf.lineNumber + 1}`;
    if (seen.has(key)) continue;
    seen.add(key);
    incl.set(key, (incl.get(key) ?? 0) + t);
  }
}

const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
const ms = (t) => `${(t / 1000).toFixed(0).padStart(7)} ms`;
const busy = total - (originSelf.get("idle") ?? 0);
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s not idle\n`);
console.log("by origin (self time):");
for (const [k, t] of [...originSelf].sort((a, b) => b[1] - a[1])) console.log(`  ${pct(t)} ${ms(t)}  ${k}`);
console.log(`\ntop ${top} functions by self time:`);
for (const [k, t] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(t)} ${ms(t)}  ${k}`);
console.log(`\ntop ${top} myftp functions by inclusive time:`);
for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(t)} ${ms(t)}  ${k}`);
