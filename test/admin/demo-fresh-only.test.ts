// `myftpd serve` makes user demo only on a fresh data directory (no user store yet): an admin who deleted demo, or
// every user, does not get demo back, with a new password that lets anyone who reads the output in, at the next
// start. Such a start says that nobody can log in.
import { rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { until } from "../helpers/util.js";

const dirs: string[] = [];
const procs: RunningProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function names(data: string): Promise<string[]> {
  const r = await myftpd(["user", "list", "--json", "--data", data]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { name: string }[]).map((u) => u.name);
}

describe("the demo user", () => {
  it("is made on a fresh data directory only, not again after every user was deleted", async () => {
    const top = tempDir("myftp-freshonly-");
    dirs.push(top);
    const data = path.join(top, "data");
    const first = await startServerProcess(["--log-level", "silent"], data);
    procs.push(first);
    await until(() => /created user demo/.test(first.output()), 10_000, "demo password printed");
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(await names(data)).toEqual(["demo"]);

    const del = await myftpd(["user", "del", "demo", "--purge", "--data", data]);
    expect(del.code, del.stderr).toBe(0);
    const second = await startServerProcess(["--log-level", "silent"], data);
    procs.push(second);
    await until(() => /no users: nobody can log in/.test(second.output()), 10_000, "no-users notice");
    expect(second.output()).not.toMatch(/created user demo/);
    expect(await second.stop("SIGTERM")).toBe(0);
    expect(await names(data)).toEqual([]);
  });
});
