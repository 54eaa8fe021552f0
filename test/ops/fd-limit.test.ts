// The open-files limit: `serve` warns when its session and queue limits can need more descriptors than the process
// may open, which is the hard limit (node raises the soft one to it as it starts).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { descriptorShortfall, descriptorsNeeded, FDS_BASE, FDS_PER_QUEUED, FDS_PER_SESSION, parseOpenFilesLimit } from "../../src/cli/fd-limit.js";
import { MYFTPD_BIN, tempDir } from "../helpers/myftpd.js";
import { until, withTimeout } from "../helpers/util.js";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe("the descriptor figures", () => {
  it("reads the soft limit on open files from /proc's text", () => {
    expect(parseOpenFilesLimit(LIMITS)).toBe(1024);
    expect(parseOpenFilesLimit(LIMITS.replace("1024   ", "unlimited"))).toBe(Number.POSITIVE_INFINITY);
    expect(parseOpenFilesLimit("Max cpu time  unlimited  unlimited  seconds\n")).toBeNull();
    expect(parseOpenFilesLimit(LIMITS.replace("1024", "many"))).toBeNull();
  });

  it("counts every session at its busiest and every queued connection", () => {
    expect(descriptorsNeeded({ maxSessions: 100, maxQueue: 100 })).toBe(FDS_BASE + 100 * FDS_PER_SESSION + 100 * FDS_PER_QUEUED);
    expect(descriptorsNeeded({ maxSessions: 10, maxQueue: 0 })).toBe(FDS_BASE + 10 * FDS_PER_SESSION);
  });

  it("says nothing when the limits fit, and the figure that fits when they do not", () => {
    const fits = { maxSessions: 34, maxQueue: 100 };
    const limit = descriptorsNeeded(fits);
    expect(descriptorShortfall(fits, limit)).toBeNull();
    expect(descriptorShortfall(fits, null)).toBeNull();
    expect(descriptorShortfall(fits, Number.POSITIVE_INFINITY)).toBeNull();
    const over = descriptorShortfall({ maxSessions: 35, maxQueue: 100 }, limit);
    expect(over).toContain(`--max-sessions 35 with --max-queue 100 may need ${limit + FDS_PER_SESSION} file descriptors`);
    expect(over).toContain(`may open ${limit} (ulimit -n)`);
    expect(over).toMatch(/lower --max-sessions to 34$/);
    // A queue that alone takes more than there is: lowering the sessions cannot be enough.
    expect(descriptorShortfall({ maxSessions: 1, maxQueue: 1000 }, 500)).toMatch(/lower --max-queue and --max-sessions$/);
  });
});

/** The hard limit on open files a shell started here has; null when it has none. */
function hardLimit(): number | null {
  const r = spawnSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" });
  const n = Number(r.stdout.trim());
  return Number.isSafeInteger(n) ? n : null;
}

const started: { child: ChildProcess; dir: string }[] = [];

afterEach(async () => {
  for (const { child, dir } of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await withTimeout(exited, 10_000, "the server did not exit on SIGTERM").catch(() => child.kill("SIGKILL"));
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Starts the bin as a shell that first ran `limits` would; resolves once it listens, with its pid and what it wrote. */
async function startBin(limits: string, args: string[]): Promise<{ pid: number; stdout: () => string; stderr: () => string }> {
  const dir = tempDir("myftp-fd-");
  // The shell execs the bin, which execs node: the process started is the server.
  const child = spawn("sh", ["-c", `${limits} && exec "$0" "$@"`, MYFTPD_BIN, "serve", "--data", path.join(dir, "data"), "--host", "127.0.0.1", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push({ child, dir });
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  await until(() => /myftpd listening on ftp:\/\//.test(err) || child.exitCode !== null, 15_000, `bin serve listening:\n${err}`);
  expect(child.exitCode, err).toBeNull();
  return { pid: child.pid!, stdout: () => out, stderr: () => err };
}

/** The server's soft and hard limits on open files. */
function openFiles(pid: number): [string, string] {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
  return [m![1]!, m![2]!];
}

describe.runIf(process.platform === "linux")("myftpd serve and the open-files limit", () => {
  it("runs with the soft limit raised to the hard one, which the warning takes as what the process may open", async (ctx) => {
    const hard = hardLimit();
    if (hard === null || hard < 128) ctx.skip(); // nothing to raise to, or too little to start with
    const soft = Math.min(256, hard! - 1);
    const server = await startBin(`ulimit -Sn ${soft}`, ["--log-level", "warn"]);
    expect(openFiles(server.pid)).toEqual([String(hard), String(hard)]);
    expect(server.stderr()).not.toContain("warning:");
  });

  it("warns, on standard error and in the log, when the limits can need more descriptors than the hard limit allows", async () => {
    const limit = descriptorsNeeded({ maxSessions: 34, maxQueue: 100 });
    const server = await startBin(`ulimit -n ${limit}`, ["--log-level", "warn", "--max-sessions", "35", "--max-queue", "100"]);
    expect(openFiles(server.pid)).toEqual([String(limit), String(limit)]);
    const text = descriptorShortfall({ maxSessions: 35, maxQueue: 100 }, limit)!;
    expect(server.stderr()).toContain(`warning: ${text}\n`);
    await until(() => server.stdout().includes('"event":"fd-limit"'), 5_000, `fd-limit log line:\n${server.stdout()}`);
    const line = JSON.parse(server.stdout().split("\n").find((l) => l.includes('"event":"fd-limit"'))!);
    expect(line.level).toBe(40); // pino's warn
    expect(line.msg).toBe(text);
  });

  it("says nothing when the limits fit in what the process may open", async () => {
    const limit = descriptorsNeeded({ maxSessions: 34, maxQueue: 100 });
    const server = await startBin(`ulimit -n ${limit}`, ["--log-level", "warn", "--max-sessions", "34", "--max-queue", "100"]);
    expect(openFiles(server.pid)).toEqual([String(limit), String(limit)]);
    expect(server.stderr()).not.toContain("warning:");
    expect(server.stdout()).not.toContain("fd-limit");
  });
});
