// `myftpd user ...`: administration of the user store in a data directory. Every command validates all of its
// input before it changes anything, so a refused command leaves the store and the disk as they were.

import { chmodSync, existsSync, lstatSync, readlinkSync, realpathSync, rmdirSync, rmSync, statSync } from "node:fs";
import * as path from "node:path";
import { makeDirsSync } from "../core/dirs.js";
import { isWithin } from "../core/paths.js";
import { formatSize, parseSize } from "../core/units.js";
import { sumTree } from "../storage/local.js";
import { hashPassword } from "../users/password.js";
import { SqliteUserStore } from "../users/sqlite-store.js";
import { isValidUserName, UserExistsError, type UserRecord } from "../users/store.js";
import { DataDirBusyError, lockDataDir } from "./pid-lock.js";
import { promptHiddenLines, readStdinLine } from "./prompt.js";

export const DEFAULT_QUOTA = 1024 ** 3;

/**
 * The longest password (UTF-8 bytes) user add and passwd take. The server reads command lines of up to 4096 bytes, and
 * "PASS " + the password + CRLF must fit: a longer one could be stored but never used to log in. 1024 leaves room
 * for any client.
 */
export const MAX_PASSWORD_BYTES = 1024;

/** A refusal with a message for the operator; the CLI exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function storePath(dataDir: string): string {
  return path.join(dataDir, "users.db");
}

/**
 * How a command uses the store: "create" makes the data directory and the store when missing (`serve`, `user add`),
 * "write" and "read" need an existing one and create nothing ("read" opens it read-only, so it works on a data
 * directory this user cannot write).
 */
export type StoreAccess = "create" | "write" | "read";

/** Prints a warning of a user command on stderr. */
export function warnOnStderr(message: string): void {
  process.stderr.write(`myftpd: warning: ${message}\n`);
}

/** An error of SQLite or the file system about the store, turned into a message for the operator. */
export function storeFailure(file: string, err: unknown, access: StoreAccess): Error {
  const code = (err as { code?: unknown }).code;
  const c = typeof code === "string" ? code : "";
  if (c.startsWith("SQLITE_READONLY") || c === "EROFS" || c === "EACCES" || c === "EPERM" || c.startsWith("SQLITE_CANTOPEN") || c.startsWith("SQLITE_PERM")) {
    const what = access === "read" ? "read" : "write";
    return new Error(
      `cannot ${what} the user store ${file}: the data directory or the file is not ${what === "read" ? "readable" : "writable"} for this user, or the file system is read-only (${(err as Error).message}); nothing changed`,
    );
  }
  if (c.startsWith("SQLITE_NOTADB") || c.startsWith("SQLITE_CORRUPT")) {
    return new Error(
      `the user store ${file} is damaged or not a user store (${(err as Error).message}): restore it from a backup, or move it away to start with no users; nothing changed`,
    );
  }
  return err as Error;
}

/**
 * Why `dataDir` cannot be a data directory: the path, or a path above it, is something other than a directory (a
 * file, a link to one); undefined when it is a directory or can be made one.
 */
export function dataDirProblem(dataDir: string): string | undefined {
  for (const p of pathAndAbove(dataDir)) {
    let isDir: boolean | undefined;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      // missing (or below a file): look further up
    }
    if (isDir === true) return undefined;
    if (isDir === false) {
      return p === path.resolve(dataDir)
        ? `the data directory ${dataDir} is not a directory`
        : `the data directory ${dataDir} cannot be made, since ${p} is not a directory`;
    }
  }
  return undefined;
}

/** `p` made absolute, then each directory above it, up to the root. */
function* pathAndAbove(p: string): Generator<string> {
  for (let cur = path.resolve(p); ; ) {
    yield cur;
    const parent = path.dirname(cur);
    if (parent === cur) return;
    cur = parent;
  }
}

export function openStore(dataDir: string, access: StoreAccess, warn: (message: string) => void = warnOnStderr): SqliteUserStore {
  const file = storePath(dataDir);
  if (access === "create") {
    try {
      makeDirsSync(dataDir, 0o700);
    } catch (err) {
      throw storeFailure(file, err, access);
    }
  } else if (!existsSync(file)) {
    // existsSync says false as well where the data directory cannot be searched: that store is there, unreadable.
    try {
      statSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EPERM") throw storeFailure(file, err, "read");
    }
    throw new UsageError(
      `the data directory ${dataDir} has no user store (${path.basename(file)}): check --data or --config; only "myftpd user add" and "myftpd serve" create one`,
    );
  }
  let store: SqliteUserStore;
  try {
    store = new SqliteUserStore(file, { readonly: access === "read" });
  } catch (err) {
    throw storeFailure(file, err, access);
  }
  for (const l of store.loosened) {
    const was = `mode 0${l.mode.toString(8)}`;
    warn(
      l.error === undefined
        ? `${l.file} was readable by others (${was}): changed it to 0600`
        : `${l.file} is readable by others (${was}) and could not be changed to 0600 (${l.error}): chmod 600 it`,
    );
  }
  return store;
}

/**
 * A symbolic link in the path of `home` (the home itself or a directory above it) that leads nowhere, a missing
 * target or a loop, described for a refusal; undefined when there is none. mkdir cannot make a home through it.
 */
function brokenLinkIn(home: string): string | undefined {
  for (const p of pathAndAbove(home)) {
    let isLink = false;
    try {
      isLink = lstatSync(p).isSymbolicLink();
    } catch {
      // missing or unreadable: look further up
    }
    if (isLink) {
      try {
        statSync(p);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        let target = "?";
        try {
          target = readlinkSync(p);
        } catch {
          // gone meanwhile
        }
        const why = code === "ELOOP" ? "a loop of links" : code === "ENOENT" ? "which does not exist" : `which cannot be reached (${code})`;
        return `${p} is a symbolic link to ${target}, ${why}`;
      }
    }
  }
  return undefined;
}

/**
 * Creates a home directory that is missing, mode 0750 whatever the umask (an existing one is left as it is). Logins
 * need it to exist: the server does not create homes (see the login's home-missing refusal).
 */
export function makeHome(home: string): void {
  let created: string | undefined;
  try {
    created = makeDirsSync(home, 0o750);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTDIR") {
      throw new UsageError(`home ${home} cannot be made a directory: it, or a path above it, is a file; nothing changed`);
    }
    const broken = code === "ENOENT" || code === "ELOOP" ? brokenLinkIn(home) : undefined;
    if (broken !== undefined) throw new UsageError(`home ${home} cannot be made a directory: ${broken}; nothing changed`);
    throw new Error(`cannot make the home ${home}: ${(err as Error).message}; nothing changed`);
  }
  if (created !== undefined) chmodSync(home, 0o750);
}

export function defaultHome(dataDir: string, name: string): string {
  return path.join(dataDir, "home", name);
}

function checkName(name: string): void {
  if (!isValidUserName(name)) {
    throw new UsageError(
      `invalid user name "${name}": use 1-64 letters, digits, ".", "_" or "-", not starting with "." or "-"`,
    );
  }
}

function quotaOf(text: string | undefined): number | null | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSize(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function obtainPassword(fromStdin: boolean): Promise<string> {
  let pw: string;
  if (fromStdin) {
    pw = await readStdinLine();
  } else {
    if (!process.stdin.isTTY) throw new UsageError("stdin is not a terminal: use --password-stdin to pipe the password");
    // One read of the terminal for both, with echo off throughout.
    const [first, again] = await promptHiddenLines(["Password: ", "Repeat password: "]);
    pw = first!;
    if (pw !== again) throw new UsageError("passwords do not match; nothing changed");
  }
  if (pw.length === 0) throw new UsageError("empty password refused; nothing changed");
  // Bytes that are not UTF-8 arrive as U+FFFD: such a password could not be sent (the server answers a command line
  // that is not UTF-8 with 501), and every such byte would be the same character in it.
  if (pw.includes("\uFFFD")) {
    throw new UsageError(
      "password refused: it holds bytes that are not UTF-8 (or the character U+FFFD); FTP clients send it in UTF-8, so use a UTF-8 terminal or input; nothing changed",
    );
  }
  const bytes = Buffer.byteLength(pw, "utf8");
  if (bytes > MAX_PASSWORD_BYTES) {
    throw new UsageError(
      `password of ${bytes} bytes refused: at most ${MAX_PASSWORD_BYTES} bytes (UTF-8), so that it fits in the server's command line limit; nothing changed`,
    );
  }
  return pw;
}

async function withStore<T>(dataDir: string, access: StoreAccess, fn: (store: SqliteUserStore) => Promise<T>): Promise<T> {
  const store = openStore(dataDir, access);
  try {
    return await fn(store);
  } catch (err) {
    // Only SQLite's errors are about the store: a home that cannot be removed, say, speaks for itself.
    const code = (err as { code?: unknown }).code;
    throw typeof code === "string" && code.startsWith("SQLITE_") ? storeFailure(storePath(dataDir), err, access) : err;
  } finally {
    store.close();
  }
}

/** A path with the links in its existing part resolved (the rest, missing or unreadable, is kept as written). */
export function canonicalPath(p: string): string {
  const rest: string[] = [];
  let head = path.resolve(p);
  for (let i = 0; i < 4096; i++) {
    try {
      return path.join(realpathSync.native(head), ...rest.reverse());
    } catch {
      const parent = path.dirname(head);
      if (parent === head) break;
      rest.push(path.basename(head));
      head = parent;
    }
  }
  return path.resolve(p);
}

/** True when one path is the other or lies inside it. */
function nested(a: string, b: string): boolean {
  return isWithin(a, b) || isWithin(b, a);
}

/**
 * Users whose homes overlap (made before homes were checked), one group per outermost shared directory: the users
 * of a home together with everyone whose home is inside it. Looks up each home's parent directories, so it stays
 * fast with many users.
 */
export function overlappingHomes(users: readonly UserRecord[]): UserRecord[][] {
  const byHome = new Map<string, UserRecord[]>();
  for (const u of users) {
    const home = canonicalPath(u.home);
    const list = byHome.get(home);
    if (list) list.push(u);
    else byHome.set(home, [u]);
  }
  const groups = new Map<string, UserRecord[]>();
  for (const [home, here] of byHome) {
    // The outermost home above this one, if any.
    let top: string | null = null;
    let dir = home;
    for (let i = 0; i < 4096; i++) {
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
      if (byHome.has(dir)) top = dir;
    }
    if (top !== null) {
      const group = groups.get(top) ?? [...byHome.get(top)!];
      group.push(...here);
      groups.set(top, group);
    } else if (here.length > 1 && !groups.has(home)) {
      groups.set(home, [...here]);
    }
  }
  return [...groups.values()];
}

/** The first other user whose home is `mine` (a canonicalPath), lies inside it or holds it. */
async function overlappingUser(store: SqliteUserStore, name: string, mine: string): Promise<UserRecord | undefined> {
  for (const u of await store.list()) if (u.name !== name && nested(mine, canonicalPath(u.home))) return u;
  return undefined;
}

/**
 * Refuses a home that is another user's home, lies inside one, or holds one: a user's usage is the bytes in the home,
 * counted against that user's quota by that user's sessions, so in a shared or nested home the other user's uploads
 * would pass that count by, and purging one home would remove the other. Refuses a home that holds the data
 * directory or its TLS folder too: the session could read the password hashes and the key, or replace them.
 */
async function checkHomeApart(store: SqliteUserStore, dataDir: string, name: string, home: string): Promise<void> {
  if (existsSync(home) && !isDirectory(home)) {
    throw new UsageError(`home ${home} exists and is not a directory; nothing changed`);
  }
  // Before the password is asked for: mkdir would fail on these after.
  const long = path.resolve(home).split(path.sep).find((part) => Buffer.byteLength(part) > 255);
  if (long !== undefined || Buffer.byteLength(path.resolve(home)) > 4095) {
    const what = long !== undefined ? `a name in it is ${Buffer.byteLength(long)} bytes long` : `it is ${Buffer.byteLength(path.resolve(home))} bytes long`;
    throw new UsageError(
      `home ${home.length > 300 ? `${home.slice(0, 300)}...` : home} is too long: ${what}, where the file system takes names of up to 255 bytes in paths of up to 4095; nothing changed`,
    );
  }
  const broken = brokenLinkIn(home);
  if (broken !== undefined) {
    throw new UsageError(`home ${home} cannot be made a directory: ${broken}; create the target or give another --home; nothing changed`);
  }
  const mine = canonicalPath(home);
  const u = await overlappingUser(store, name, mine);
  if (u) {
    throw new UsageError(
      `home ${home} overlaps the home of user ${u.name} (${u.home}): homes may not be shared or nested, since each one's usage counts against one user's quota; nothing changed`,
    );
  }
  if (serverFilesHeldBy(dataDir, mine) !== undefined) {
    throw new UsageError(
      `home ${home} would hold the server's own files in ${dataDir} (the user store, the TLS key): use a directory that does not contain them; nothing changed`,
    );
  }
}

/**
 * The data directory (the user store) or its tls/ folder (the TLS key), whichever the home `mine` (a canonicalPath)
 * holds, compared after resolving links; a home may hold neither.
 */
function serverFilesHeldBy(dataDir: string, mine: string): string | undefined {
  return [dataDir, path.join(dataDir, "tls")].find((p) => isWithin(canonicalPath(p), mine));
}

/**
 * Refuses to purge a home that is the root directory or holds the data directory or its TLS folder (a home set so by
 * an older version, or written straight into the store): removing it would remove the user store, every other home
 * and the TLS key with it. Compared after resolving links, like checkHomeApart.
 */
function checkPurgeable(dataDir: string, home: string): void {
  const mine = canonicalPath(home);
  const holds = serverFilesHeldBy(dataDir, mine);
  if (mine === path.parse(mine).root || holds !== undefined) {
    const why = mine === path.parse(mine).root ? "it is the root directory" : `it holds ${holds}, the server's own files`;
    throw new UsageError(`refusing to purge ${home}: ${why}; nothing changed`);
  }
}

export interface AddOptions {
  home?: string;
  quota?: string;
  passwordStdin?: boolean;
}

/** --home as given: none, or a path made absolute. An empty one would be the current directory, so it is refused. */
function homeOption(home: string | undefined): string | undefined {
  if (home === undefined) return undefined;
  if (home.trim() === "") throw new UsageError("--home needs a directory, got an empty one; nothing changed");
  return path.resolve(home);
}

export async function userAdd(dataDir: string, name: string, opts: AddOptions): Promise<string> {
  checkName(name);
  const quotaBytes = quotaOf(opts.quota);
  const home = homeOption(opts.home) ?? path.resolve(defaultHome(dataDir, name));
  // A refused first add (an empty password, a home that will not do) leaves no new store behind: a mistyped --data
  // must not turn into a data directory the other commands accept.
  const dirExisted = existsSync(dataDir);
  const storeExisted = existsSync(storePath(dataDir));
  try {
    return await addToStore(dataDir, name, home, quotaBytes, opts);
  } catch (err) {
    if (!storeExisted) {
      for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(storePath(dataDir) + suffix, { force: true });
      if (!dirExisted) {
        try {
          rmdirSync(dataDir); // only when nothing else was made in it
        } catch {
          // not empty (a home was made in it), or gone: left as it is
        }
      }
    }
    throw err;
  }
}

async function addToStore(dataDir: string, name: string, home: string, quotaBytes: ReturnType<typeof quotaOf>, opts: AddOptions): Promise<string> {
  return withStore(dataDir, "create", async (store) => {
    if (await store.get(name)) throw new UsageError(`user ${name} already exists; nothing changed`);
    await checkHomeApart(store, dataDir, name, home);
    const password = await obtainPassword(opts.passwordStdin === true);
    const passwordHash = await hashPassword(password);
    makeHome(home);
    try {
      await store.add({ name, passwordHash, home, quotaBytes: quotaBytes === undefined ? DEFAULT_QUOTA : quotaBytes });
    } catch (err) {
      if (err instanceof UserExistsError) throw new UsageError(`user ${name} already exists; nothing changed`);
      throw err;
    }
    return `added user ${name} (home ${home}, quota ${formatSize(quotaBytes === undefined ? DEFAULT_QUOTA : quotaBytes)})`;
  });
}

export function formatUserTable(users: UserRecord[]): string {
  const rows = [["NAME", "HOME", "USED", "QUOTA"]];
  for (const u of users) {
    const used = u.usedBytes === null ? "-" : `${formatSize(u.usedBytes)}${u.usageDirty ? "*" : ""}`;
    rows.push([u.name, u.home, used, formatSize(u.quotaBytes)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
  return users.some((u) => u.usageDirty && u.usedBytes !== null)
    ? `${table}\n* an upload is running, or one was cut off by a crash: the server counts the home again at the next login`
    : table;
}

export async function userList(dataDir: string, json: boolean): Promise<string> {
  return withStore(dataDir, "read", async (store) => {
    const users = await store.list();
    if (json) {
      return JSON.stringify(
        users.map((u) => ({ name: u.name, home: u.home, usedBytes: u.usedBytes, usageDirty: u.usageDirty, quotaBytes: u.quotaBytes })),
        null,
        2,
      );
    }
    return users.length === 0 ? "no users" : formatUserTable(users);
  });
}

export async function userDel(dataDir: string, name: string, purge: boolean): Promise<string> {
  checkName(name);
  return withStore(dataDir, "write", async (store) => {
    const u = await store.get(name);
    if (!u) throw new UsageError(`no user ${name}; nothing changed`);
    const home = path.resolve(u.home);
    if (purge) checkPurgeable(dataDir, home);
    const other = purge ? await overlappingUser(store, name, canonicalPath(home)) : undefined;
    if (other) {
      throw new UsageError(
        `refusing to purge ${home}: it overlaps the home of user ${other.name} (${other.home}); nothing changed`,
      );
    }
    // A home that is a symbolic link: rm removes the link, not the directory it leads to, nor the files in it.
    const target = purge ? linkTarget(home) : undefined;
    await store.remove(name);
    if (purge) rmSync(home, { recursive: true, force: true });
    if (target !== undefined) {
      return `deleted user ${name} and removed ${home}, a symbolic link; the directory it led to, ${target}, is kept with its files: remove it yourself if it has to go`;
    }
    return purge ? `deleted user ${name} and removed ${home}` : `deleted user ${name} (home ${home} kept)`;
  });
}

export async function userPasswd(dataDir: string, name: string, passwordStdin: boolean): Promise<string> {
  checkName(name);
  return withStore(dataDir, "write", async (store) => {
    if (!(await store.get(name))) throw new UsageError(`no user ${name}; nothing changed`);
    const password = await obtainPassword(passwordStdin);
    await store.update(name, { passwordHash: await hashPassword(password) });
    return `password of ${name} changed`;
  });
}

export async function userSet(dataDir: string, name: string, opts: { home?: string; quota?: string }): Promise<string> {
  checkName(name);
  const quotaBytes = quotaOf(opts.quota);
  if (opts.home === undefined && quotaBytes === undefined) throw new UsageError("nothing to change: give --home or --quota");
  const home = homeOption(opts.home);
  return withStore(dataDir, "write", async (store) => {
    if (!(await store.get(name))) throw new UsageError(`no user ${name}; nothing changed`);
    if (home) await checkHomeApart(store, dataDir, name, home);
    if (home) makeHome(home);
    await store.update(name, { home, quotaBytes });
    const parts = [home ? `home ${home}` : null, quotaBytes !== undefined ? `quota ${formatSize(quotaBytes)}` : null];
    return `updated ${name}: ${parts.filter(Boolean).join(", ")}`;
  });
}

/** Where `p` leads when it is a symbolic link (resolved to the end); undefined when it is not one. */
function linkTarget(p: string): string | undefined {
  try {
    if (!lstatSync(p).isSymbolicLink()) return undefined;
  } catch {
    return undefined;
  }
  return canonicalPath(p);
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Recounts the bytes in homes and stores the figures (fixes drift). */
export async function userRescan(dataDir: string, name: string | undefined, all: boolean): Promise<string> {
  if (!all && name === undefined) throw new UsageError("give a user name or --all");
  if (all && name !== undefined) throw new UsageError("give either a user name or --all, not both");
  if (name !== undefined) checkName(name);
  return withStore(dataDir, "write", async (store) => {
    const users = all ? await store.list() : [await store.get(name!)].filter((u): u is UserRecord => u !== undefined);
    if (users.length === 0) throw new UsageError(all ? "no users" : `no user ${name}`);
    // With no server on the data directory (its lock is free, and held for the rescan), nothing is writing in the
    // homes: what a crash left of interrupted uploads is settled as the server's recount at login does (an upload's
    // temporary file put in place of its target, other temporary names removed), and the figure is clean. With a
    // server running, its uploads' temporary files are live: they are left alone and a dirty mark is kept.
    let unlock: (() => void) | null = null;
    try {
      unlock = lockDataDir(dataDir, { role: "rescan" });
    } catch (err) {
      if (!(err instanceof DataDirBusyError)) throw err;
    }
    try {
      return await rescanUsers(store, users, unlock !== null);
    } finally {
      unlock?.();
    }
  });
}

/** Counts each user's home and stores the figure; `settle` when no server runs (see userRescan). */
async function rescanUsers(store: SqliteUserStore, users: UserRecord[], settle: boolean): Promise<string> {
  const lines: string[] = [];
  for (const u of users) {
    if (!isDirectory(u.home)) {
      process.stderr.write(
        `myftpd: error: ${u.name}: home ${u.home} does not exist or is not a directory (is its volume mounted?); usage not changed\n`,
      );
      process.exitCode = 1;
      lines.push(`${u.name}: not counted (home ${u.home} missing)`);
      continue;
    }
    const used = await sumTree(u.home, settle, (dir, err) => {
      // The figure is still stored (it is the best known), but the files below such a directory are not in it.
      process.stderr.write(
        `myftpd: warning: ${u.name}: cannot read ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ` +
          "the files below it are not counted\n",
      );
      process.exitCode = 1;
    });
    // With a server running, a figure marked dirty stays so: an upload may be writing right now (the server clears
    // the mark when its uploads end), and should the server stop before that, the next login counts again.
    const dirty = u.usageDirty && !settle;
    await store.setUsage(u.name, used, dirty);
    const before = u.usedBytes === null ? "not counted" : `${u.usedBytes} bytes`;
    const due = dirty ? "; an upload is running in the server, so it counts again at the next login" : "";
    lines.push(`${u.name}: ${used} bytes (${formatSize(used)}); was ${before}${due}`);
  }
  return lines.join("\n");
}
