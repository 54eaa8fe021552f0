// Access control (RFC 959 §4.1.1): USER, PASS, QUIT.

import * as fsp from "node:fs/promises";
import { MyftpError } from "../../core/errors.js";
import { isWithin } from "../../core/paths.js";
import type { QuotaLedger } from "../../core/quota.js";
import { LocalStorage } from "../../storage/local.js";
import type { Session } from "../session.js";

export function user(s: Session, arg: string): void {
  if (s.user) {
    s.reply(530, "Can't change to another user");
    return;
  }
  s.pendingUser = arg;
  s.reply(331, `Password required for ${arg}`);
}

export async function pass(s: Session, arg: string): Promise<void> {
  if (s.user) {
    s.reply(503, "Already logged in");
    return;
  }
  const name = s.pendingUser;
  if (name === null) {
    s.reply(503, "Login with USER first");
    return;
  }
  s.pendingUser = null;
  const record = await s.server.authenticate(s, name, arg);
  if (s.isClosed) return;
  if (!record) {
    s.reply(530, "Login incorrect");
    return;
  }
  if (s.server.sessionsOf(record.name) >= s.server.options.maxSessionsPerUser) {
    s.log.warn({ event: "user-limit", user: record.name }, "too many sessions for user");
    s.reply(421, `Too many sessions for user ${record.name} (limit ${s.server.options.maxSessionsPerUser}); try later`);
    s.close("per-user limit");
    return;
  }
  // Counted before anything asynchronous, so logins racing each other cannot all pass the limit; the count drops
  // when the session closes, which is why a home that cannot be opened ends the session.
  s.server.registerLogin(s, record.name);
  let storage: LocalStorage;
  let ledger: QuotaLedger;
  try {
    // The home must be there already (`myftpd user add` makes it): opening makes any missing directories, and a home
    // missing because its volume is not mounted would then be made, and written to, on the file system below.
    try {
      await fsp.stat(record.home);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      s.log.error(
        { event: "home-missing", user: record.name, home: record.home },
        "login refused: the home directory does not exist (is its volume mounted?); create it, or give the user another home with: myftpd user set NAME --home DIR",
      );
      s.reply(421, "Your home directory is not available; closing control connection");
      s.close("home missing");
      return;
    }
    storage = await LocalStorage.open(record.home);
    const held = s.server.options.protectedPaths.find((p) => isWithin(p, storage.root));
    if (held) {
      s.log.error(
        { event: "home-holds-server-files", user: record.name, home: storage.root, holds: held },
        "login refused: the home holds the server's own files; give the user another home",
      );
      s.reply(421, "Your home directory cannot be used; closing control connection");
      s.close("home holds server files");
      return;
    }
    const onUnreadable = (dir: string, err: unknown) =>
      s.log.warn(
        { event: "usage-unreadable", user: record.name, dir, code: (err as NodeJS.ErrnoException).code },
        "a directory in the home cannot be read: the files below it are not counted in the usage",
      );
    ledger = await s.server.quota.acquire({
      ...record,
      home: storage.root,
      storedHome: record.home,
      scan: () => storage.usage({ removeLeftovers: true, onUnreadable }),
      recount: () => storage.usage({ onUnreadable }),
    });
  } catch (err) {
    s.log.error({ err, user: record.name }, "cannot open home directory");
    s.reply(421, "Cannot open your home directory; closing control connection");
    s.close("home unavailable");
    return;
  }
  if (s.isClosed) {
    s.server.quota.release(ledger);
    return;
  }
  s.user = { name: record.name, home: record.home, storage, ledger };
  s.onClose(() => s.server.quota.release(ledger));
  s.cwd = "/";
  s.log.info({ event: "login", user: record.name }, "login succeeded");
  s.reply(230, `User ${record.name} logged in`);
}

/**
 * RFC 959 §4.1.1: with a transfer in progress the connection stays open for its result, then closes. QUIT is queued
 * like any other command, so it runs only after the transfer (and whatever the client sent before QUIT) has replied.
 */
export function quit(s: Session): void {
  s.reply(221, "Goodbye");
  s.close("quit");
}

export function requireUser(s: Session): NonNullable<Session["user"]> {
  if (!s.user) throw new MyftpError("bad-sequence", "Not logged in");
  return s.user;
}
