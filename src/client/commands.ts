// The shell's command table: one row per command (aliases are extra names on the row), with its usage,
// help text, argument counts, what its arguments complete to, and the handler.
import { open as openLocal, readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join as joinLocal, resolve as resolveLocal } from "node:path";
import { posix } from "node:path";
import { ClientError, isFtpReplyError, replyText, toClientError } from "./errors.js";
import { hasGlob, matchNames, splitPattern } from "./glob.js";
import { mirrorDown, mirrorUp } from "./mirror.js";
import { formatBytes, type ProgressReporter } from "./progress.js";
import { getSegmented, hasSegmentState, refuseUnfinished } from "./segments.js";
import type { FtpSession, RemoteEntry, ConnectOptions } from "./session.js";
import { getFile, getStream, putFile, type TransferOptions } from "./transfer.js";

export interface ShellSettings {
  resume: boolean;
  retries: number;
  limitRate: number | undefined;
  /** Default connection count for get (-n overrides). */
  segments: number;
}

export interface ShellContext {
  session: FtpSession | undefined;
  readonly connectOptions: ConnectOptions;
  readonly settings: ShellSettings;
  readonly progress: ProgressReporter;
  /** Where `get REMOTE -` writes the file's bytes. */
  readonly stdout: NodeJS.WritableStream;
  /** Run `run` with standard output holding a file's bytes: progress and notes go to standard error meanwhile. */
  withStdoutTaken<T>(run: () => Promise<T>): Promise<T>;
  /** Results (listings, pwd): always printed. */
  out(line: string): void;
  /** Information about what happened; silent with --quiet. */
  note(line: string): void;
  /** Connect to a URL, replacing any current session. */
  open(url: string): Promise<void>;
  /** Give up an `open` under way (Ctrl-C); false when none is. */
  cancelOpen?(): boolean;
  /** Ask the shell to stop after this command. */
  quit(): void;
  /** Ask for a password without echo (set by an interactive shell). */
  prompt?: (question: string) => Promise<string>;
}

export type ArgKind = "remote" | "local" | "command" | "none";

export interface CommandSpec {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly usage: string;
  readonly help: string;
  readonly min: number;
  readonly max: number;
  readonly connected: boolean;
  /** Completion for each argument position; the last one repeats. */
  readonly args: readonly ArgKind[];
  run(ctx: ShellContext, args: string[]): Promise<void>;
}

export function transferOptions(ctx: ShellContext): TransferOptions {
  return {
    resume: ctx.settings.resume,
    retries: ctx.settings.retries,
    limitRate: ctx.settings.limitRate,
    progress: ctx.progress,
    note: (l) => ctx.note(l),
  };
}

function session(ctx: ShellContext): FtpSession {
  if (!ctx.session) throw new ClientError("usage", "not connected (use: open ftp://user@host[:port])");
  return ctx.session;
}

/** One line of `ls` output: type, size, modification time, name ("/" after directories). */
export function formatEntry(e: RemoteEntry): string {
  const type = e.type === "dir" ? "d" : e.type === "link" ? "l" : e.type === "file" ? "-" : "?";
  const when = e.mtime ? e.mtime.toISOString().slice(0, 16).replace("T", " ") : e.rawDate.padEnd(16).slice(0, 16);
  return `${type} ${String(e.size).padStart(12)}  ${when}  ${e.name}${e.type === "dir" ? "/" : ""}`;
}

function sortEntries(entries: RemoteEntry[]): RemoteEntry[] {
  return [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Pull "-n N" / "--flag" options off the front of an argument list. */
export function takeOptions(args: string[], spec: Record<string, "flag" | "number">): { opts: Record<string, number | boolean>; rest: string[] } {
  const opts: Record<string, number | boolean> = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      rest.push(...args.slice(i + 1));
      break;
    }
    const kind = spec[a];
    if (kind === undefined) {
      if (a.startsWith("-") && a.length > 1 && !/^-\d/.test(a)) throw new ClientError("usage", `unknown option ${a}`);
      rest.push(a);
      continue;
    }
    if (kind === "flag") opts[a] = true;
    else {
      const v = args[++i];
      const n = v === undefined ? Number.NaN : Number(v);
      if (!Number.isInteger(n) || n < 1) throw new ClientError("usage", `${a} needs a whole number of at least 1`);
      opts[a] = n;
    }
  }
  return { opts, rest };
}

/** Local destination for a download: into LOCAL if it is a directory, else LOCAL itself. */
async function localTarget(remote: string, local: string | undefined): Promise<string> {
  const name = posix.basename(remote);
  if (local === undefined) return resolveLocal(name);
  const st = await stat(local).catch(() => undefined);
  return st?.isDirectory() ? joinLocal(local, name) : local;
}

async function download(ctx: ShellContext, remote: string, local: string | undefined, n: number): Promise<void> {
  await fetchInto(ctx, session(ctx), remote, await localTarget(remote, local), n);
}

/**
 * Download `remote` into `target`: a file (in N ranges with n > 1, or where a segmented run left its record), or as a
 * stream into standard output (`-`) or into a device or FIFO that is there (`/dev/null`), which cannot be resumed
 * from before the run or cut to size.
 */
export async function fetchInto(ctx: ShellContext, s: FtpSession, remote: string, target: string, n: number): Promise<void> {
  const st = target === "-" ? undefined : await stat(target).catch(() => undefined);
  const stream = target === "-" || (st !== undefined && !st.isFile() && !st.isDirectory());
  if (stream && n > 1) throw new ClientError("usage", `get -n ${n} needs a regular file to write its ranges into, not ${target === "-" ? "standard output" : target}`);
  if (target === "-") {
    await ctx.withStdoutTaken(() => getStream(s, remote, ctx.stdout, "standard output", transferOptions(ctx)));
  } else if (stream) {
    let out;
    try {
      out = (await openLocal(target, "w")).createWriteStream();
    } catch (err) {
      throw toClientError(err, { action: `get ${remote}` });
    }
    try {
      await getStream(s, remote, out, target, transferOptions(ctx));
    } finally {
      await new Promise<void>((r) => out.end(() => r()));
    }
  } else if (n > 1 || (ctx.settings.resume && (await hasSegmentState(target)))) {
    await getSegmented(s, remote, target, Math.max(n, 2), transferOptions(ctx));
  } else await getFile(s, remote, target, transferOptions(ctx));
}

/**
 * Upload a local file, as `put` and `mput` do (the one-shot `put` too): one a killed segmented download left
 * unfinished is refused before anything is sent, as `mirror --reverse` skips it.
 */
async function uploadFile(s: FtpSession, local: string, remote: string, opts: TransferOptions): Promise<void> {
  await refuseUnfinished(local, `put ${local}`);
  await putFile(s, local, remote, opts);
}

/** Remote names matching a pattern, with the directory part kept. */
async function remoteGlob(s: FtpSession, pattern: string): Promise<string[]> {
  if (!hasGlob(pattern)) return [pattern];
  const { dir, base } = splitPattern(pattern);
  const entries = await s.list(dir);
  const names = matchNames(
    entries.filter((e) => e.type === "file").map((e) => e.name),
    base,
  );
  return names.map((n) => (dir === "" ? n : posix.join(dir, n)));
}

async function localGlob(pattern: string): Promise<string[]> {
  if (!hasGlob(pattern)) return [pattern];
  const { dir, base } = splitPattern(pattern);
  const entries = await readdir(dir === "" ? "." : dir, { withFileTypes: true });
  const names = matchNames(
    entries.filter((e) => e.isFile()).map((e) => e.name),
    base,
  );
  return names.map((n) => (dir === "" ? n : joinLocal(dir, n)));
}

/** Run each item; report failures and go on; fail at the end if any failed. */
async function each(ctx: ShellContext, items: string[], what: string, fn: (item: string) => Promise<void>): Promise<void> {
  let failed = 0;
  let first: ClientError | undefined;
  for (const [index, item] of items.entries()) {
    try {
      await fn(item);
    } catch (err) {
      failed++;
      const e = toClientError(err, { action: `${what} ${item}` });
      // Ctrl-C stops the whole command, not only the item it came during.
      if (ctx.session?.aborted && items.length > 1)
        throw new ClientError(e.kind, `${what}: interrupted at ${item} (${index + 1} of ${items.length}); the rest not done`, { cause: err });
      first ??= e;
      if (items.length > 1) ctx.note(e.message);
    }
  }
  if (first) throw items.length > 1 ? new ClientError(first.kind, `${what}: ${failed} of ${items.length} failed; first: ${first.message}`) : first;
}

/** The directory `lcd` means: the home for none, "~" or "~/…"; else the path as given. */
export function localDir(dir: string | undefined, home = process.env.HOME || homedir()): string {
  if (dir === undefined || dir === "~") return home;
  if (dir.startsWith("~/")) return joinLocal(home, dir.slice(2));
  return dir;
}

/** A failed chdir, naming the directory asked for (Node's error carries the current directory as its path). */
function chdirError(err: unknown, dir: string): ClientError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new ClientError("local", `lcd: no such local directory: ${dir}`, { cause: err });
  if (code === "ENOTDIR") return new ClientError("local", `lcd: not a directory: ${dir}`, { cause: err });
  if (code === "EACCES" || code === "EPERM") return new ClientError("local", `lcd: permission denied: ${dir}`, { cause: err });
  return new ClientError("local", `lcd: cannot change to ${dir}: ${(err as Error).message}`, { cause: err });
}

const R: ArgKind = "remote";
const L: ArgKind = "local";

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: "open", aliases: [], usage: "open URL", min: 1, max: 1, connected: false, args: ["none"],
    help: "Connect and log in: ftp://user[:password]@host[:port][/dir] (ftps:// for implicit TLS).",
    run: async (ctx, [url]) => ctx.open(url!),
  },
  {
    name: "close", aliases: ["disconnect"], usage: "close", min: 0, max: 0, connected: true, args: [],
    help: "Log out and close the connection.",
    run: async (ctx) => {
      const s = session(ctx);
      await s.sendIgnoringError("QUIT").catch(() => undefined);
      s.close();
      ctx.session = undefined;
    },
  },
  {
    name: "ls", aliases: ["dir"], usage: "ls [PATH]", min: 0, max: 1, connected: true, args: [R],
    help: "List a remote directory (type, size, modification time, name).",
    run: async (ctx, [path]) => {
      for (const e of sortEntries(await session(ctx).list(path ?? ""))) ctx.out(formatEntry(e));
    },
  },
  {
    name: "pwd", aliases: [], usage: "pwd", min: 0, max: 0, connected: true, args: [],
    help: "Print the remote working directory.",
    run: async (ctx) => ctx.out(await session(ctx).pwd()),
  },
  {
    name: "cd", aliases: ["cwd"], usage: "cd [DIR]", min: 0, max: 1, connected: true, args: [R],
    help: "Change the remote working directory (to / without an argument).",
    run: async (ctx, [dir]) => session(ctx).cd(dir ?? "/"),
  },
  {
    name: "mkdir", aliases: ["mdir"], usage: "mkdir DIR...", min: 1, max: Infinity, connected: true, args: [R],
    help: "Create remote directories.",
    run: async (ctx, dirs) => each(ctx, dirs, "mkdir", async (d) => void (await session(ctx).send(`MKD ${d}`))),
  },
  {
    name: "rmdir", aliases: [], usage: "rmdir DIR...", min: 1, max: Infinity, connected: true, args: [R],
    help: "Remove empty remote directories.",
    run: async (ctx, dirs) => each(ctx, dirs, "rmdir", async (d) => void (await session(ctx).send(`RMD ${d}`))),
  },
  {
    name: "rm", aliases: ["delete", "del"], usage: "rm FILE...", min: 1, max: Infinity, connected: true, args: [R],
    help: "Delete remote files (patterns allowed).",
    run: async (ctx, args) => {
      const s = session(ctx);
      // "--" ends the options, as for get and put: "rm -- -x" removes the file named -x.
      const pats = args[0] === "--" ? args.slice(1) : args;
      if (pats.length === 0) throw new ClientError("usage", "usage: rm FILE...");
      const files: string[] = [];
      for (const p of pats) files.push(...(await remoteGlob(s, p)));
      if (files.length === 0) throw new ClientError("remote", `rm: nothing matches ${pats.join(" ")}`);
      await each(ctx, files, "rm", async (f) => void (await s.send(`DELE ${f}`)));
    },
  },
  {
    name: "chmod", aliases: [], usage: "chmod MODE PATH...", min: 2, max: Infinity, connected: true, args: ["none", R],
    help: "Set the permission bits of remote files or directories (SITE CHMOD); MODE is octal, as in 644 or 0750.",
    run: async (ctx, [mode, ...paths]) => {
      // Checked before anything is sent: a symbolic mode (u+x) or a typo is one usage error, not a refusal per path.
      if (!/^[0-7]{1,4}$/.test(mode!)) throw new ClientError("usage", `chmod: invalid mode ${mode}: 1 to 4 octal digits expected, as in 644 or 0750`);
      const s = session(ctx);
      await each(ctx, paths, "chmod", async (p) => {
        try {
          await s.send(`SITE CHMOD ${mode} ${p}`);
        } catch (err) {
          // Unknown to the server (SITE itself, or its CHMOD): said as such rather than as a refusal of this path.
          if (isFtpReplyError(err) && [500, 502, 504].includes(err.code))
            throw new ClientError("remote", `the server has no SITE CHMOD (${err.code} ${replyText(err.message)})`, { cause: err, ftpCode: err.code });
          throw err;
        }
      });
    },
  },
  {
    name: "mv", aliases: ["rename"], usage: "mv FROM TO", min: 2, max: 2, connected: true, args: [R, R],
    help: "Rename or move a remote file or directory.",
    run: async (ctx, [from, to]) => {
      try {
        await session(ctx).client.rename(from!, to!);
      } catch (err) {
        throw toClientError(err, { action: `mv ${from} ${to}` });
      }
    },
  },
  {
    name: "get", aliases: ["recv"], usage: "get [-n N] REMOTE [LOCAL]", min: 1, max: 2, connected: true, args: [R, L],
    help: "Download a file, resuming a partial local copy; -n N fetches N ranges over N connections; LOCAL - is standard output.",
    run: async (ctx, argv) => {
      const { opts, rest } = takeOptions(argv, { "-n": "number" });
      if (rest.length < 1 || rest.length > 2) throw new ClientError("usage", "usage: get [-n N] REMOTE [LOCAL]");
      await download(ctx, rest[0]!, rest[1], (opts["-n"] as number | undefined) ?? ctx.settings.segments);
    },
  },
  {
    name: "put", aliases: ["send"], usage: "put LOCAL [REMOTE]", min: 1, max: 2, connected: true, args: [L, R],
    help: "Upload a file, resuming a partial remote copy.",
    run: async (ctx, [local, remote]) => {
      const target = remote === undefined || remote.endsWith("/") ? `${remote ?? ""}${basename(local!)}` : remote;
      await uploadFile(session(ctx), local!, target, transferOptions(ctx));
    },
  },
  {
    name: "mget", aliases: [], usage: "mget PATTERN...", min: 1, max: Infinity, connected: true, args: [R],
    help: "Download every remote file matching the patterns into the local directory.",
    run: async (ctx, args) => {
      const s = session(ctx);
      // "--" ends the options, as for get and put: "mget -- -x" fetches the file named -x.
      const pats = args[0] === "--" ? args.slice(1) : args;
      if (pats.length === 0) throw new ClientError("usage", "usage: mget PATTERN...");
      const files: string[] = [];
      for (const p of pats) files.push(...(await remoteGlob(s, p)));
      if (files.length === 0) throw new ClientError("remote", `mget: nothing matches ${pats.join(" ")}`);
      await each(ctx, files, "mget", (f) => download(ctx, f, undefined, 1));
    },
  },
  {
    name: "mput", aliases: [], usage: "mput PATTERN...", min: 1, max: Infinity, connected: true, args: [L],
    help: "Upload every local file matching the patterns into the remote directory.",
    run: async (ctx, pats) => {
      const files: string[] = [];
      for (const p of pats) files.push(...(await localGlob(p)));
      if (files.length === 0) throw new ClientError("local", `mput: nothing matches ${pats.join(" ")}`);
      await each(ctx, files, "mput", async (f) => void (await uploadFile(session(ctx), f, basename(f), transferOptions(ctx))));
    },
  },
  {
    name: "mirror", aliases: [], usage: "mirror [-R] [--parallel N] [--delete] SOURCE TARGET", min: 2, max: Infinity, connected: true, args: [R, L],
    help: "Copy a remote tree into a local directory, only changed files; -R (--reverse) copies local to remote.",
    run: async (ctx, argv) => {
      const { opts, rest } = takeOptions(argv, { "-R": "flag", "--reverse": "flag", "--parallel": "number", "-P": "number", "--delete": "flag" });
      if (rest.length !== 2) throw new ClientError("usage", "usage: mirror [-R] [--parallel N] [--delete] SOURCE TARGET");
      const mo = { ...transferOptions(ctx), parallel: ((opts["--parallel"] ?? opts["-P"]) as number | undefined) ?? 1, delete: opts["--delete"] === true };
      if (opts["-R"] || opts["--reverse"]) await mirrorUp(session(ctx), rest[0]!, rest[1]!, mo);
      else await mirrorDown(session(ctx), rest[0]!, rest[1]!, mo);
    },
  },
  {
    name: "lcd", aliases: [], usage: "lcd [DIR]", min: 0, max: 1, connected: false, args: [L],
    help: "Change the local working directory (to your home without an argument; ~ and ~/DIR are under your home).",
    run: async (ctx, [dir]) => {
      const target = localDir(dir);
      try {
        process.chdir(target);
      } catch (err) {
        throw chdirError(err, target);
      }
      ctx.note(`local directory now ${process.cwd()}`);
    },
  },
  {
    name: "lpwd", aliases: [], usage: "lpwd", min: 0, max: 0, connected: false, args: [],
    help: "Print the local working directory.",
    run: async (ctx) => ctx.out(process.cwd()),
  },
  {
    name: "lls", aliases: ["ldir"], usage: "lls [DIR]", min: 0, max: 1, connected: false, args: [L],
    help: "List a local directory.",
    run: async (ctx, [dir]) => {
      const base = dir ?? ".";
      let names: string[];
      try {
        names = (await readdir(base)).sort();
      } catch (err) {
        throw toClientError(err, { action: "lls" });
      }
      for (const n of names) {
        const st = await stat(joinLocal(base, n)).catch(() => undefined);
        if (!st) continue;
        const e: RemoteEntry = { name: n, type: st.isDirectory() ? "dir" : st.isFile() ? "file" : "other", size: st.size, mtime: st.mtime, rawDate: "" };
        ctx.out(formatEntry(e));
      }
    },
  },
  {
    name: "quota", aliases: ["avbl"], usage: "quota [PATH]", min: 0, max: 1, connected: true, args: [R],
    help: "Show the space left for you on the server (AVBL) and your quota (SITE QUOTA).",
    run: async (ctx, [path]) => {
      const s = session(ctx);
      const avbl = await s.available(path);
      const site = await s.siteQuota();
      if (avbl.bytes !== undefined) ctx.out(`available: ${avbl.bytes} bytes (${formatBytes(avbl.bytes)})`);
      if (site.ok) for (const l of site.reply.split(/\r?\n/)) ctx.out(l.replace(/^\d{3}[ -]?/, "").trimEnd());
      if (avbl.bytes === undefined && !site.ok)
        throw new ClientError("remote", `quota: the server reports no quota (AVBL: ${avbl.reply}; SITE QUOTA: ${site.reply})`);
    },
  },
  {
    name: "hash", aliases: [], usage: "hash REMOTE...", min: 1, max: Infinity, connected: true, args: [R],
    help: "Show the server's hash of remote files (SHA-256 where offered).",
    run: async (ctx, files) => {
      const s = session(ctx);
      await each(ctx, files, "hash", async (f) => {
        const r = await s.remoteHash(f);
        if (!r) throw new ClientError("remote", "the server has no HASH command");
        ctx.out(`${r.algorithm} ${r.hex} ${f}`);
      });
    },
  },
  {
    name: "help", aliases: ["?"], usage: "help [COMMAND]", min: 0, max: 1, connected: false, args: ["command"],
    help: "List the commands, or show one command's usage.",
    run: async (ctx, [name]) => {
      if (name) {
        const c = findCommand(name);
        if (!c) throw new ClientError("usage", `help: no such command: ${name}`);
        ctx.out(`${c.usage}${c.aliases.length ? `   (also: ${c.aliases.join(", ")})` : ""}`);
        ctx.out(`  ${c.help}`);
        return;
      }
      const width = Math.max(...COMMANDS.map((c) => c.usage.length));
      for (const c of COMMANDS) ctx.out(`${c.usage.padEnd(width)}  ${c.help}`);
    },
  },
  {
    name: "quit", aliases: ["bye", "exit"], usage: "quit", min: 0, max: 0, connected: false, args: [],
    help: "Close the connection and leave.",
    run: async (ctx) => {
      if (ctx.session) {
        await ctx.session.sendIgnoringError("QUIT").catch(() => undefined);
        ctx.session.close();
        ctx.session = undefined;
      }
      ctx.quit();
    },
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  const n = name.toLowerCase();
  return COMMANDS.find((c) => c.name === n || c.aliases.includes(n));
}

export function commandNames(): string[] {
  return COMMANDS.flatMap((c) => [c.name, ...c.aliases]).sort();
}
