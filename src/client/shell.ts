// The interactive shell: reads command lines (from a terminal with prompt, history and completion, or
// from a script on stdin without either), runs them one at a time, reports failures and goes on.
import { appendFile, chmod, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { Writable } from "node:stream";
import { createInterface, type Interface } from "node:readline";
import { ClientError, ExitCode, toClientError, type ExitCodeValue } from "./errors.js";
import { commandNames, findCommand, type ArgKind, type ShellContext } from "./commands.js";
import type { FtpSession } from "./session.js";
import { hasControl, printable } from "./progress.js";

/** Split a command line into words: whitespace separates, quotes group, backslash escapes. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: '"' | "'" | undefined;
  const chars = [...line];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < chars.length) cur += chars[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < chars.length) {
      cur += chars[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new ClientError("usage", `unbalanced ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

/** scheme://user:password@ in a command line: the password goes before the line is kept in the history. */
const URL_PASSWORD = /([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\s/@:]*):[^\s/]*@/g;

/**
 * A command line as the history keeps it: URLs without their passwords (`open ftp://alice@host`, which asks for the
 * password again when it is run from the history).
 */
export function historyLine(line: string): string {
  return quotedWordsWithoutPasswords(line.replace(URL_PASSWORD, "$1@"));
}

/** scheme://user:password@ at the start of a word's value (a password ends at the authority's end, the first "/"). */
const VALUE_PASSWORD = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/@:]*):[^/]*@/;

/**
 * A password with spaces in it can only be typed in quotes or after backslashes, where the plain pattern does not
 * reach: each such word that holds a URL with a password is written again without it.
 */
function quotedWordsWithoutPasswords(line: string): string {
  let out = "";
  let i = 0;
  while (i < line.length) {
    if (/\s/.test(line[i]!)) {
      out += line[i++];
      continue;
    }
    // One word: up to the next whitespace outside quotes (or the end, for an unbalanced quote).
    const start = i;
    let quote: string | undefined;
    while (i < line.length && (quote !== undefined || !/\s/.test(line[i]!))) {
      const c = line[i]!;
      if (quote) {
        if (c === quote) quote = undefined;
        else if (c === "\\" && quote === '"') i++;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === "\\") i++;
      i++;
    }
    const raw = line.slice(start, i);
    let value: string | undefined;
    if (/["'\\]/.test(raw)) {
      try {
        value = tokenize(quote ? raw + quote : raw)[0];
      } catch {
        value = undefined;
      }
    }
    out += value !== undefined && VALUE_PASSWORD.test(value) ? quoteWord(value.replace(VALUE_PASSWORD, "$1@")) : raw;
  }
  return out;
}

/** The history file is private: created with mode 0600, and an older one readable by others is made so. */
async function appendHistory(file: string, line: string): Promise<void> {
  await appendFile(file, `${historyLine(line)}\n`, { mode: 0o600 });
}

/**
 * The lines of the history file, after making it private: readable by its owner only, and without the passwords an
 * older myftp wrote into it.
 */
async function loadHistory(file: string): Promise<string[]> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) return [];
  if ((st.mode & 0o077) !== 0) await chmod(file, st.mode & 0o700).catch(() => undefined);
  const text = await readFile(file, "utf8").catch(() => "");
  const masked = text.split("\n").map(historyLine).join("\n");
  if (masked !== text) await writeFile(file, masked, { mode: 0o600 }).catch(() => undefined);
  return masked.split("\n");
}

/** Quote a word for the command line if it needs it. */
export function quoteWord(w: string): string {
  return /[\s"'\\]/.test(w) ? `"${w.replace(/(["\\])/g, "\\$1")}"` : w;
}

/** The word being typed at the end of the line, as the user typed it (raw) and as it means (value). */
export function lastWord(line: string): { raw: string; value: string; index: number } {
  let quote: string | undefined;
  let start = 0;
  let index = 0;
  let inWord = false;
  const chars = [...line];
  let pos = 0;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
      if (!inWord) {
        start = pos;
        inWord = true;
      }
    } else if (c === "\\") {
      if (!inWord) {
        start = pos;
        inWord = true;
      }
      pos += c.length;
      i++;
      if (i < chars.length) pos += chars[i]!.length;
      continue;
    } else if (/\s/.test(c)) {
      if (inWord) index++;
      inWord = false;
    } else if (!inWord) {
      start = pos;
      inWord = true;
    }
    pos += c.length;
  }
  const raw = inWord ? line.slice(start) : "";
  let value: string;
  try {
    value = tokenize(quote ? raw + quote : raw)[0] ?? "";
  } catch {
    value = raw;
  }
  return { raw, value, index };
}

export interface Completion {
  complete(line: string): Promise<[string[], string]>;
}

type Lister = (dir: string) => Promise<{ name: string; dir: boolean }[]>;

/** Candidates for the last word of `line`: command names first, then remote or local paths. */
export function createCompleter(remote: Lister | undefined, local: Lister): Completion {
  return {
    async complete(line) {
      const { raw, value, index } = lastWord(line);
      if (index === 0) {
        const hits = commandNames().filter((n) => n.startsWith(value.toLowerCase()));
        return [hits.map((h) => `${h} `), raw];
      }
      const cmd = findCommand(line.trimStart().split(/\s+/)[0] ?? "");
      if (!cmd) return [[], raw];
      const argIndex = index - 1;
      const kind: ArgKind = cmd.args[Math.min(argIndex, cmd.args.length - 1)] ?? "none";
      if (kind === "command") return [commandNames().filter((n) => n.startsWith(value)), raw];
      const lister = kind === "remote" ? remote : kind === "local" ? local : undefined;
      if (!lister) return [[], raw];
      const slash = value.lastIndexOf("/");
      const dir = slash === -1 ? "" : value.slice(0, slash + 1);
      const prefix = value.slice(slash + 1);
      let entries: { name: string; dir: boolean }[];
      try {
        entries = await lister(dir);
      } catch {
        return [[], raw];
      }
      const hits = entries
        // A name with control characters is not offered: put on the line it would drive the terminal.
        .filter((e) => e.name.startsWith(prefix) && !hasControl(e.name))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        // A directory's "/" goes inside the quotes: `"my dir/"` runs as typed, and Tab again completes below it.
        .map((e) => (e.dir ? quoteWord(`${dir}${e.name}/`) : `${quoteWord(dir + e.name)} `));
      return [hits, raw];
    },
  };
}

/** Remote directory listings for completion, cached briefly; nothing while a command runs. */
export function remoteLister(getSession: () => FtpSession | undefined, isBusy: () => boolean): Lister {
  const cache = new Map<string, { at: number; names: { name: string; dir: boolean }[] }>();
  return async (dir) => {
    const s = getSession();
    if (!s || s.closed || isBusy()) return [];
    const key = `${s.cwd}\0${dir}`;
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < 5000) return hit.names;
    const list = await s.list(dir === "" ? "" : dir);
    const names = list.map((e) => ({ name: e.name, dir: e.type === "dir" }));
    if (cache.size > 100) cache.clear();
    cache.set(key, { at: Date.now(), names });
    return names;
  };
}

export const localLister: Lister = async (dir) => {
  const entries = await readdir(dir === "" ? "." : dir, { withFileTypes: true });
  return entries.map((e) => ({ name: e.name, dir: e.isDirectory() }));
};

export interface ShellIo {
  readonly input: NodeJS.ReadableStream & { isTTY?: boolean };
  readonly output: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  readonly interactive: boolean;
  readonly historyFile: string | undefined;
  readonly err: (line: string) => void;
}

/** A stream in front of the terminal that can be silenced while a password is typed. */
class MutableOutput extends Writable {
  muted = false;
  constructor(private readonly target: NodeJS.WritableStream & { columns?: number }) {
    super();
  }
  get columns(): number | undefined {
    return this.target.columns;
  }
  get isTTY(): boolean {
    return true;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    if (!this.muted) this.target.write(chunk);
    cb();
  }
}

export interface ShellResult {
  readonly exitCode: ExitCodeValue;
  readonly failures: number;
}

/**
 * Run the shell until end of input or quit. Each command's failure prints one line and the shell goes
 * on; the exit code is that of the first failure (0 when none).
 */
export async function runShell(ctx: ShellContext & { busy: boolean }, io: ShellIo): Promise<ShellResult> {
  let failures = 0;
  let exitCode: ExitCodeValue = ExitCode.ok;
  let quitting = false;
  const mutable = io.interactive ? new MutableOutput(io.output) : undefined;
  const completer = createCompleter(
    remoteLister(() => ctx.session, () => ctx.busy),
    localLister,
  );
  let history: string[] = [];
  if (io.interactive && io.historyFile) {
    history = (await loadHistory(io.historyFile))
      .filter((l) => l.trim() !== "")
      .slice(-500)
      .reverse();
  }
  const rl: Interface = createInterface({
    input: io.input,
    output: mutable,
    terminal: io.interactive,
    historySize: 500,
    history,
    completer: io.interactive
      ? (line: string, cb: (err: Error | null, result: [string[], string]) => void) => {
          completer.complete(line).then(
            (r) => cb(null, r),
            () => cb(null, [[], line]),
          );
        }
      : undefined,
  } as Parameters<typeof createInterface>[0]);
  ctx.quit = () => {
    quitting = true;
  };
  // The in-memory history (arrow keys) keeps no passwords either: URLs lose theirs, and an answer typed at a hidden
  // password prompt is not kept at all.
  rl.on("history", (lines: string[]) => {
    if (lines.length === 0) return;
    if (mutable?.muted) lines.shift();
    else lines[0] = historyLine(lines[0]!);
  });
  // The password prompt being answered, if any: Ctrl-C gives it up (and the command that asked), so that what is typed
  // next is not sent as the password.
  let pendingQuestion: AbortController | undefined;
  if (mutable)
    ctx.prompt = async (q) => {
      const ac = new AbortController();
      pendingQuestion = ac;
      try {
        return await hiddenQuestion(rl, mutable, q, ac.signal);
      } finally {
        if (pendingQuestion === ac) pendingQuestion = undefined;
      }
    };
  if (mutable) {
    const prompt = () => promptText(ctx);
    rl.setPrompt(prompt());
    rl.prompt();
    rl.on("line", () => rl.setPrompt(prompt()));
    // Ctrl-C stops the running command (partial files stay for a resume); at the prompt it clears the line.
    rl.on("SIGINT", () => {
      if (pendingQuestion) {
        pendingQuestion.abort();
        return;
      }
      if (ctx.busy) {
        // An open under way is given up, and the connection it would have replaced stays.
        if (!ctx.cancelOpen?.()) ctx.session?.abort();
        return;
      }
      rl.write(null, { ctrl: true, name: "e" });
      rl.write(null, { ctrl: true, name: "u" });
      io.output.write("^C\n");
      rl.prompt();
    });
  }
  for await (const line of rl) {
    const trimmed = line.trim();
    if (trimmed !== "" && !trimmed.startsWith("#")) {
      if (io.interactive && io.historyFile) await appendHistory(io.historyFile, trimmed).catch(() => undefined);
      ctx.busy = true;
      ctx.session?.resetAbort();
      try {
        await runLine(ctx, trimmed);
      } catch (err) {
        const e = toClientError(err);
        failures++;
        if (exitCode === ExitCode.ok) exitCode = e.exitCode;
        io.err(`myftp: ${e.message}`);
      } finally {
        ctx.busy = false;
      }
    }
    if (quitting) break;
    if (mutable) {
      rl.setPrompt(promptText(ctx));
      rl.prompt();
    }
  }
  rl.close();
  return { exitCode, failures };
}

/** Ask a question on the shell's terminal without echoing the answer; the signal (Ctrl-C) gives it up. */
function hiddenQuestion(rl: Interface, output: MutableOutput, question: string, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    output.muted = false;
    output.write(question);
    output.muted = true;
    const end = () => {
      signal.removeEventListener("abort", onAbort);
      output.muted = false;
      output.write("\n");
    };
    // Readline gives up the question first (dropping what was typed so far, still unechoed), then this ends the line.
    const onAbort = () => {
      end();
      reject(new ClientError("failed", "password prompt interrupted"));
    };
    rl.question("", { signal }, (answer) => {
      end();
      resolve(answer);
    });
    signal.addEventListener("abort", onAbort);
  });
}

export async function runLine(ctx: ShellContext, line: string): Promise<void> {
  const words = tokenize(line);
  if (words.length === 0) return;
  const [name, ...args] = words;
  const cmd = findCommand(name!);
  if (!cmd) throw new ClientError("usage", `unknown command: ${name} (try help)`);
  // Commands with options check their own counts once the options are taken off.
  const hasOptions = cmd.usage.includes("[-");
  if (args.length < cmd.min || (!hasOptions && args.length > cmd.max)) throw new ClientError("usage", `usage: ${cmd.usage}`);
  if (cmd.connected) {
    if (!ctx.session) throw new ClientError("usage", `${cmd.name}: not connected (use: open ftp://user@host[:port])`);
    if (ctx.session.closed) {
      ctx.note("the connection was closed; reconnecting");
      await ctx.session.reconnect();
    }
  }
  try {
    await cmd.run(ctx, args);
  } catch (err) {
    throw toClientError(err, { action: cmd.name });
  }
}

/** The shell's prompt: the remote directory shown as a terminal should show a name a server sent. */
function promptText(ctx: ShellContext): string {
  return `myftp${ctx.session ? `:${printable(ctx.session.cwd)}` : ""}> `;
}
