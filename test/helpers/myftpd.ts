// Test helpers: a real myftpd on 127.0.0.1 port 0 with its own temp data dir and SQLite store, the built myftpd
// command line, and a certificate for FTPS tests.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { makeCertificate } from "../../src/cli/cert.js";
import { FtpServer, type ServerOptions } from "../../src/server/server.js";
import { hashPassword } from "../../src/users/password.js";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { diskBytes, runProcess, until, type RunResult } from "./util.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const MYFTPD_BIN = path.join(ROOT, "dist/cli/myftpd.js");
export const MYFTP_BIN = path.join(ROOT, "dist/cli/myftp.js");

export interface TestUser {
  name: string;
  password: string;
  /** Bytes; null = unlimited; default 1 GiB. */
  quota?: number | null;
  /** Home directory; default DATA/home/NAME. */
  home?: string;
}

export interface RunningServer {
  server: FtpServer;
  host: string;
  port: number;
  dataDir: string;
  users: SqliteUserStore;
  homeOf(name: string): string;
  url(user?: string, password?: string, p?: string): string;
  close(): Promise<void>;
}

export function tempDir(prefix = "myftp-test-"): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** A certificate for localhost/127.0.0.1 made by `myftpd cert`'s code, in a fresh temp dir. */
export async function testCertificate(): Promise<{ dir: string; cert: string; key: string }> {
  const dir = tempDir("myftp-tls-");
  await makeCertificate(dir, { host: "localhost", days: 2 });
  return { dir, cert: path.join(dir, "tls", "cert.pem"), key: path.join(dir, "tls", "key.pem") };
}

/** Runs the built `myftpd` with arguments (and stdin) to its end, within 30 s. */
export function runMyftpd(args: string[], input?: string): Promise<RunResult> {
  return runProcess(process.execPath, [MYFTPD_BIN, ...args], { input });
}

/** Starts an in-process server. Options override the test defaults (passive ports from the system, quiet logs). */
export async function startServer(
  users: TestUser[] = [{ name: "alice", password: "secret" }],
  options: Partial<ServerOptions> = {},
): Promise<RunningServer> {
  const dataDir = tempDir();
  const store = new SqliteUserStore(path.join(dataDir, "users.db"));
  const homes = new Map<string, string>();
  for (const u of users) {
    const home = u.home ?? path.join(dataDir, "home", u.name);
    homes.set(u.name, home);
    await store.add({
      name: u.name,
      passwordHash: await hashPassword(u.password),
      home,
      quotaBytes: u.quota === undefined ? 1024 ** 3 : u.quota,
    });
  }
  const server = new FtpServer({
    host: "127.0.0.1",
    port: 0,
    users: store,
    pasvRange: [0, 0],
    loginFailureDelayMs: 50,
    hashWorkers: 2,
    logger: pino({ level: process.env.MYFTP_TEST_LOG ?? "silent" }),
    ...options,
  });
  const port = await server.listen();
  const { mkdirSync } = await import("node:fs");
  for (const h of homes.values()) mkdirSync(h, { recursive: true });
  return {
    server,
    host: "127.0.0.1",
    port,
    dataDir,
    users: store,
    homeOf: (name) => homes.get(name) ?? path.join(dataDir, "home", name),
    url: (user = users[0]?.name ?? "alice", password = users[0]?.password ?? "secret", p = "/") =>
      `ftp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}${p}`,
    close: async () => {
      await server.close();
      store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface RunningProcess {
  child: ChildProcess;
  port: number;
  dataDir: string;
  output: () => string;
  /** Signals the server (with group, its whole process group, as Ctrl-C in a terminal does) and waits for its exit. */
  stop(signal?: NodeJS.Signals, group?: boolean): Promise<number | null>;
}

/** Runs `myftpd` as a separate process (the built bin) and waits for its listening line. */
export async function startServerProcess(
  args: string[],
  dataDir = tempDir(),
  opts: { ownGroup?: boolean; /** Run as this user and group id (the caller must be root). */ uid?: number } = {},
): Promise<RunningProcess> {
  const child = spawn(process.execPath, [MYFTPD_BIN, "serve", "--data", dataDir, "--host", "127.0.0.1", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: opts.ownGroup ?? false,
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
  });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`myftpd did not start:\n${out}`)), 15_000);
    const check = () => {
      const m = /ftp:\/\/[^\s/]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on("data", check);
    child.stderr!.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`myftpd exited with ${code}:\n${out}`));
    });
  });
  return {
    child,
    port,
    dataDir,
    output: () => out,
    stop: (signal = "SIGTERM", group = false) =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once("exit", (code) => resolve(code));
        if (group && opts.ownGroup) process.kill(-child.pid!, signal);
        else child.kill(signal);
      }),
  };
}

/**
 * Waits until the user store holds a clean usage figure for `user` equal to the bytes in the user's home (no upload
 * running, everything saved), and gives that figure; on timeout the error says what was seen last.
 */
export async function storeMatchesDisk(s: RunningServer, user: string, ms = 10_000): Promise<number> {
  let last = "";
  await until(
    async () => {
      await s.server.quota.flushAll();
      const u = await s.users.get(user);
      const disk = diskBytes(s.homeOf(user));
      last = JSON.stringify({ used: u?.usedBytes, dirty: u?.usageDirty, disk });
      return u?.usageDirty === false && u.usedBytes === disk;
    },
    ms,
    "store and disk agree",
  ).catch((e: Error) => {
    throw new Error(`${e.message}: ${last}`);
  });
  return diskBytes(s.homeOf(user));
}

/**
 * Holds the server's user lookups (every one, or with `firstOnly` the first) until `release()`: a login whose password
 * check a test keeps under way. `held()` says whether one is being held.
 */
export function holdUserLookups(s: RunningServer, firstOnly = false): { held: () => boolean; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const users = s.users as unknown as { get(name: string): Promise<unknown> };
  const get = users.get.bind(users);
  let held = false;
  users.get = async (name: string) => {
    if (!firstOnly || !held) {
      held = true;
      await gate;
    }
    return get(name);
  };
  return { held: () => held, release };
}
