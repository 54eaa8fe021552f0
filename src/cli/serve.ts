// `myftpd serve`: opens the data directory, makes sure there is someone to log in as, and runs the server until
// SIGTERM or SIGINT.

import { randomBytes } from "node:crypto";
import { existsSync, realpathSync, rmSync } from "node:fs";
import pino from "pino";
import { FtpServer } from "../server/server.js";
import { hashPassword } from "../users/password.js";
import type { SqliteUserStore } from "../users/sqlite-store.js";
import { keyTooOpen, loadTls } from "./cert.js";
import { descriptorShortfall, openFilesLimit } from "./fd-limit.js";
import { lockDataDir } from "./pid-lock.js";
import { ConfigError, type ServeSettings } from "./settings.js";
import { makeDirsSync } from "../core/dirs.js";
import { isWithin } from "../core/paths.js";
import { canonicalPath, dataDirProblem, DEFAULT_QUOTA, defaultHome, makeHome, openStore, overlappingHomes, storePath } from "./user-admin.js";

/** Bytes of log lines a reader of standard output may leave unread; past them lines are dropped and counted. */
const LOG_BACKLOG_MAX = 8 << 20;

/**
 * Where the log goes: standard output through Node's own stream. For a pipe that never blocks the process: a reader
 * that stops reading leaves lines queued on the event loop, where a write on the thread pool would leave a thread stuck
 * in write(), which holds the process at its exit (a shutdown that never ends). Past LOG_BACKLOG_MAX bytes queued,
 * lines are dropped, and how many is logged once the reader takes lines again. A reader gone for good (EPIPE) leaves
 * the log going nowhere; the server goes on.
 */
function logDestination(): { write(line: string): void } {
  const out = process.stdout;
  out.on("error", () => undefined);
  let dropped = 0;
  return {
    write(line: string) {
      if (out.destroyed) return;
      if (out.writableLength > LOG_BACKLOG_MAX) {
        dropped++;
        return;
      }
      if (dropped > 0) {
        const note = { level: 40, time: Date.now(), service: "myftpd", event: "log-dropped", lines: dropped, msg: "log lines dropped: standard output was not read" };
        out.write(`${JSON.stringify(note)}\n`);
        dropped = 0;
      }
      out.write(line);
    },
  };
}

/** Longest a starting server waits for a `myftpd user rescan` that holds the data directory. */
const RESCAN_WAIT_MS = 10 * 60_000;

/** Hosts that mean "every interface": a client reaches them through loopback. */
function reachableHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * On a fresh data directory (its user store made by this start), creates user "demo" with a random password and
 * returns it. A store whose users were all deleted stays without users: an admin who deleted demo meant it.
 */
async function ensureDemoUser(store: SqliteUserStore, dataDir: string, storeIsNew: boolean): Promise<string | null> {
  if (!storeIsNew || (await store.count()) > 0) return null;
  const password = randomBytes(12).toString("base64url");
  const home = defaultHome(dataDir, "demo");
  makeHome(home);
  await store.add({ name: "demo", passwordHash: await hashPassword(password), home, quotaBytes: DEFAULT_QUOTA });
  return password;
}

export async function serve(settings: ServeSettings): Promise<void> {
  const problem = dataDirProblem(settings.data);
  if (problem !== undefined) throw new ConfigError(`${problem}; check --data or the config file's data key`);
  // The TLS files are only read: a start refused for them leaves no data directory behind.
  const tls = loadTls(settings.data, settings.tlsCert, settings.tlsKey);
  if (!tls && (settings.requireTls || settings.requireTlsSessionReuse || settings.implicitTlsPort !== null)) {
    const flag = settings.requireTls
      ? "--require-tls"
      : settings.requireTlsSessionReuse
        ? "--require-tls-session-reuse"
        : "--implicit-tls-port";
    throw new ConfigError(`${flag} needs a certificate: run "myftpd cert" or give --tls-cert and --tls-key`);
  }
  makeDirsSync(settings.data, 0o700);
  // Held until the process exits (lockDataDir removes the file then, however the exit comes).
  lockDataDir(settings.data, {
    waitForRescanMs: RESCAN_WAIT_MS,
    onWait: (pid) => process.stderr.write(`myftpd: waiting for myftpd user rescan (PID ${pid}) to finish with the data directory\n`),
  });
  const log = pino({ level: settings.logLevel, base: { service: "myftpd" } }, logDestination());
  const fdShortfall = descriptorShortfall(settings, openFilesLimit());
  if (fdShortfall) log.warn({ event: "fd-limit" }, fdShortfall);
  if (tls && keyTooOpen(tls.key)) log.warn({ event: "tls-key-mode", file: tls.key }, "TLS key file is readable by others; chmod 600 it");
  const storeIsNew = !existsSync(storePath(settings.data));
  const store = openStore(settings.data, "create", (message) => log.warn({ event: "store-mode" }, message));
  // What no home may hold: the user store and everything else in the data directory, and the TLS files.
  const protectedPaths = [settings.data, ...(tls ? [tls.key, tls.cert] : [])].map((p) => realpathSync(p));
  const users = await store.list();
  for (const u of users) {
    if (!existsSync(u.home)) {
      log.error(
        { event: "home-missing", user: u.name, home: u.home },
        "this user's home directory does not exist (is its volume mounted?), so the user's logins are refused until it does",
      );
    }
    const home = canonicalPath(u.home);
    const held = protectedPaths.find((p) => isWithin(p, home));
    if (held) {
      log.error(
        { event: "home-holds-server-files", user: u.name, home: u.home, holds: held },
        "this user's home holds the server's own files, so the user's logins are refused; give the user another home with: myftpd user set NAME --home DIR",
      );
    }
  }
  for (const group of overlappingHomes(users)) {
    log.warn(
      { event: "home-overlap", users: group.map((u) => u.name), homes: [...new Set(group.map((u) => u.home))] },
      "two users' homes overlap, so neither quota sees the other's uploads; give one another home with: myftpd user set NAME --home DIR",
    );
  }
  const server = new FtpServer({
    host: settings.host,
    port: settings.port,
    users: store,
    pasvRange: settings.pasvRange,
    pasvAddress: settings.pasvAddress,
    idleTimeoutMs: settings.idleTimeout * 1000,
    loginTimeoutMs: settings.loginTimeout * 1000,
    dataTimeoutMs: settings.dataTimeout * 1000,
    maxSessions: settings.maxSessions,
    maxQueue: settings.maxQueue,
    queueTimeoutMs: settings.queueTimeout * 1000,
    maxSessionsPerUser: settings.maxSessionsPerUser,
    maxConnectionsPerIp: settings.maxConnectionsPerIp,
    hashWorkers: settings.hashWorkers,
    transferProcesses: settings.transferProcesses,
    maxLoginFailures: settings.maxLoginFailures,
    banMs: settings.banSeconds * 1000,
    tls: tls?.material ?? null,
    implicitTlsPort: settings.implicitTlsPort,
    requireTls: settings.requireTls,
    requireTlsSessionReuse: settings.requireTlsSessionReuse,
    protectedPaths,
    logger: log,
  });
  // Handlers go in before the listening line is printed: a supervisor may signal as soon as it sees it.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: "shutdown", signal }, "shutting down");
    // Whatever happens, be gone within 5 seconds.
    setTimeout(() => process.exit(0), 4500).unref();
    server
      .close()
      .catch((err: unknown) => log.error({ err }, "error during shutdown"))
      .finally(() => {
        store.close();
        process.exit(0);
      });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  let port: number;
  try {
    port = await server.listen();
  } catch (err) {
    // A fresh data directory stays fresh, so that the next start makes demo and prints its password.
    if (storeIsNew) {
      store.close();
      for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(storePath(settings.data) + suffix, { force: true });
    }
    throw err;
  }
  // Only now that the server listens: created before, a start that then failed (the port taken) would leave demo
  // with a password nobody ever saw, and the next start would not print one.
  const demoPassword = await ensureDemoUser(store, settings.data, storeIsNew);
  const host = reachableHost(settings.host);
  // Standard output carries the log (JSON lines) alone; the lines for the person who started the server, the demo
  // password among them, go to standard error.
  log.info(
    { event: "listening", host: settings.host, port, ...(server.implicitTlsPort !== null ? { implicitTlsPort: server.implicitTlsPort } : {}), data: settings.data },
    "listening",
  );
  const say = (line: string) => process.stderr.write(`${line}\n`);
  say(`myftpd listening on ftp://${host}:${port}/ (data ${settings.data})`);
  if (tls) {
    const rules = [settings.requireTls && "required", settings.requireTlsSessionReuse && "data must resume the session"].filter(Boolean);
    say(`FTPS: AUTH TLS with ${tls.cert}${rules.length > 0 ? ` (${rules.join("; ")})` : ""}`);
  }
  if (server.implicitTlsPort !== null) say(`implicit FTPS on ftps://${host}:${server.implicitTlsPort}/`);
  if (fdShortfall) say(`warning: ${fdShortfall}`);
  if (!demoPassword && (await store.count()) === 0) say(`no users: nobody can log in; add one with: myftpd user add NAME --data ${settings.data}`);
  if (demoPassword) {
    const how = settings.requireTls ? " (TLS required: use explicit FTPS, e.g. curl --ssl-reqd)" : "";
    say(`created user demo; log in with ftp://demo:${demoPassword}@${host}:${port}/${how}`);
  }
}
