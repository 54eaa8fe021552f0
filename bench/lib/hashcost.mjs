// What one password check costs, for S4's note: myftpd's argon2id (its own parameters, through the
// library it uses) and the system's yescrypt (the hash vsftpd and pure-ftpd check for the bench user).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function argon2Cost(n = 9) {
  const mod = path.join(ROOT, "dist", "users", "password.js");
  if (!existsSync(mod)) return null;
  try {
    const { ARGON2_PARAMS } = await import(pathToFileURL(mod).href);
    const { hash, verify } = await import("@node-rs/argon2");
    const phc = await hash("bench-password", ARGON2_PARAMS);
    const times = [];
    for (let i = 0; i < n; i++) {
      const t = process.hrtime.bigint();
      await verify(phc, "bench-password");
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const p = ARGON2_PARAMS;
    return { ms: median(times), what: `argon2id m=${p.memoryCost} KiB, t=${p.timeCost}, p=${p.parallelism}` };
  } catch (e) {
    return { ms: null, what: `argon2id: ${e.message}` };
  }
}

export function yescryptCost(user, n = 9) {
  const code = `
import crypt, sys, time, json
h = next(l.split(":")[1] for l in open("/etc/shadow") if l.startswith(sys.argv[1] + ":"))
ts = []
for _ in range(${n}):
    t = time.perf_counter(); crypt.crypt("x", h); ts.append((time.perf_counter() - t) * 1000)
ts.sort()
print(json.dumps({"ms": ts[len(ts) // 2], "prefix": h[:7]}))
`;
  const r = spawnSync("/usr/bin/python3", ["-W", "ignore", "-c", code, user], { encoding: "utf8", timeout: 60000 });
  if (r.status !== 0) return null;
  try {
    const o = JSON.parse(r.stdout.trim());
    return { ms: o.ms, what: `yescrypt (${o.prefix}…, the system's hash of ${user})` };
  } catch {
    return null;
  }
}
