// What one `myftp` run shares between its commands: output streams, progress mode, connect options,
// transfer settings, and how to connect to a URL (credentials resolved from URL, env, netrc or prompt).
import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { posix } from "node:path";
import { resolveCredentials } from "./credentials.js";
import { ClientError, toClientError } from "./errors.js";
import { mirrorDown, mirrorUp } from "./mirror.js";
import { printable, ProgressReporter, type ProgressMode } from "./progress.js";
import { FtpSession, sleep, type ConnectOptions } from "./session.js";
import { fetchInto, formatEntry, transferOptions, type ShellContext, type ShellSettings } from "./commands.js";
import { refuseUnfinished } from "./segments.js";
import { putFile, putStream, type TransferOptions } from "./transfer.js";
import { displayUrl, parseFtpUrl, redactUrl, type FtpTarget } from "./url.js";

export interface RuntimeOptions {
  readonly connect: ConnectOptions;
  readonly settings: ShellSettings;
  readonly quiet: boolean;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  readonly stdin: NodeJS.ReadStream;
  readonly env: NodeJS.ProcessEnv;
}

/** Parse "1048576", "512k", "2M", "1.5MiB" into bytes per second. */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?B)?(?:\/s)?$/.exec(text.trim());
  if (!m) throw new ClientError("usage", `bad rate "${text}" (use e.g. 500k or 2M)`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  const v = Math.floor(Number(m[1]) * mult);
  if (v < 1) throw new ClientError("usage", `bad rate "${text}"`);
  return v;
}

/** 128 + SIGPIPE (13): how a shell reports a program whose output reader went away. */
export const EXIT_BROKEN_PIPE = 141;
/** 128 + SIGINT (2): how a shell reports a program stopped with Ctrl-C. */
export const EXIT_INTERRUPTED = 130;

/**
 * A line as it goes to `stream`: on a terminal, control characters (from names the server sent: an escape sequence
 * in a file name would act on the terminal) show as "?", as ls shows them; into a pipe or file the line stays whole.
 */
function shown(line: string, stream: { isTTY?: boolean }): string {
  return stream.isTTY ? printable(line) : line;
}

export function parseCount(text: string, what: string, min = 0): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new ClientError("usage", `${what} must be a whole number of at least ${min}, not "${text}"`);
  return n;
}

export class Runtime implements ShellContext {
  session: FtpSession | undefined;
  busy = false;
  readonly connectOptions: ConnectOptions;
  readonly settings: ShellSettings;
  /** Progress and notes: on standard output as lines (or a bar on standard error), all on standard error while standard output holds a file. */
  private readonly reporter: ProgressReporter;
  private readonly errReporter: ProgressReporter;
  private stdoutTaken = false;
  prompt?: (question: string) => Promise<string>;
  private readonly opts: RuntimeOptions;

  constructor(opts: RuntimeOptions) {
    this.opts = opts;
    this.connectOptions = opts.connect;
    this.settings = opts.settings;
    // Bars only when a person watches: a terminal on stderr and commands typed, not scripted.
    const mode: ProgressMode = opts.quiet ? "quiet" : opts.stderr.isTTY && opts.stdin.isTTY ? "bar" : "lines";
    // A terminal that reports no size (a pseudo-terminal nobody sized, as under `script`) is taken at $COLUMNS, as
    // other programs take it.
    const envColumns = Number.parseInt(opts.env.COLUMNS ?? "", 10);
    const term = {
      write: (s: string) => opts.stderr.write(s),
      get columns() {
        return opts.stderr.columns || (envColumns > 0 ? envColumns : undefined);
      },
    };
    this.reporter = new ProgressReporter(mode, (l) => opts.stdout.write(`${shown(l, opts.stdout)}\n`), term);
    this.errReporter = new ProgressReporter(mode, (l) => opts.stderr.write(`${shown(l, opts.stderr)}\n`), term);
    // A reader that went away (`myftp ls URL | head -1`) ends the run quietly, as SIGPIPE ends other programs: no
    // stack trace, and not a success that a script could take for a finished transfer.
    for (const stream of [opts.stdout, opts.stderr]) {
      stream.on("error", (err: NodeJS.ErrnoException) => {
        if (err.code !== "EPIPE") throw err;
        this.close();
        process.exit(EXIT_BROKEN_PIPE);
      });
    }
  }

  /**
   * Run a one-shot command. Ctrl-C ends the progress bar's line, stops the transfer (a segmented download records
   * where its ranges stopped) and exits 130; a second Ctrl-C, or a transfer that does not stop within two seconds,
   * exits at once.
   */
  private async oneShot(run: () => Promise<void>): Promise<void> {
    let interrupted = false;
    const onSigint = () => {
      if (interrupted) process.exit(EXIT_INTERRUPTED);
      interrupted = true;
      this.progress.interrupt();
      this.session?.abort();
      setTimeout(() => process.exit(EXIT_INTERRUPTED), 2000).unref();
    };
    process.on("SIGINT", onSigint);
    try {
      await run();
    } catch (err) {
      if (!interrupted) throw err;
      this.error(`myftp: ${toClientError(err).message}`);
    }
    if (!interrupted) {
      process.removeListener("SIGINT", onSigint);
      return;
    }
    this.close();
    for (const stream of [this.opts.stdout, this.opts.stderr]) await new Promise<void>((r) => stream.write("", () => r()));
    process.exit(EXIT_INTERRUPTED);
  }

  get progress(): ProgressReporter {
    return this.stdoutTaken ? this.errReporter : this.reporter;
  }

  get stdout(): NodeJS.WritableStream {
    return this.opts.stdout;
  }

  async withStdoutTaken<T>(run: () => Promise<T>): Promise<T> {
    this.stdoutTaken = true;
    try {
      return await run();
    } finally {
      this.stdoutTaken = false;
    }
  }

  get interactive(): boolean {
    return this.opts.stdin.isTTY === true;
  }

  out(line: string): void {
    this.opts.stdout.write(`${shown(line, this.opts.stdout)}\n`);
  }

  note(line: string): void {
    this.progress.note(line);
  }

  error(line: string): void {
    this.opts.stderr.write(`${shown(line, this.opts.stderr)}\n`);
  }

  quit(): void {}

  async connect(target: FtpTarget, signal?: AbortSignal): Promise<FtpSession> {
    const creds = await resolveCredentials(target.host, target.user, target.password, {
      env: this.opts.env,
      interactive: this.interactive,
      prompt: this.prompt,
      warn: (line) => this.error(line),
    });
    return await FtpSession.open(target, creds, this.connectOptions, signal);
  }

  /** The shell's `open` under way, which Ctrl-C gives up (a server that takes the connection and never answers). */
  private opening: AbortController | undefined;

  cancelOpen(): boolean {
    if (!this.opening) return false;
    this.opening.abort();
    return true;
  }

  /**
   * Connect for a one-shot command. A server that answers the connection or the login with 421 (too many users, say)
   * is transient: the connection is tried again, --retries times, waiting longer each time.
   */
  private async connectRetrying(target: FtpTarget, what: string): Promise<FtpSession> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.connect(target);
      } catch (err) {
        if (!(err instanceof ClientError) || err.ftpCode !== 421 || attempt >= this.settings.retries) throw err;
        this.note(`${what}: ${err.message}; retry ${attempt + 1}/${this.settings.retries}`);
        await sleep(Math.min(250 * 2 ** attempt, 4000));
      }
    }
  }

  async open(url: string): Promise<void> {
    const target = parseFtpUrl(url);
    const opening = new AbortController();
    this.opening = opening;
    let s: FtpSession;
    try {
      s = await this.connect(target, opening.signal);
    } finally {
      if (this.opening === opening) this.opening = undefined;
    }
    this.session?.close();
    this.session = s;
    if (target.path !== "") {
      try {
        await s.cd(target.path);
      } catch (err) {
        throw toClientError(err, { action: `cd ${target.path}` });
      }
    }
    this.note(`connected to ${displayUrl(target)}${s.tlsMode !== "none" ? ` (TLS ${s.tlsMode})` : ""}`);
  }

  transferOptions(): TransferOptions {
    return transferOptions(this);
  }

  close(): void {
    if (this.session) {
      this.session.close();
      this.session = undefined;
    }
  }

  // One-shot commands -------------------------------------------------------------------------

  async getUrl(url: string, local: string | undefined, segments: number): Promise<void> {
    await this.oneShot(() => this.get(url, local, segments));
  }

  async putUrl(local: string, url: string): Promise<void> {
    await this.oneShot(() => this.put(local, url));
  }

  async lsUrl(url: string): Promise<void> {
    await this.oneShot(() => this.ls(url));
  }

  async mirrorUrl(source: string, dest: string, reverse: boolean, parallel: number, del: boolean): Promise<void> {
    await this.oneShot(() => this.mirror(source, dest, reverse, parallel, del));
  }

  private async get(url: string, local: string | undefined, segments: number): Promise<void> {
    const target = parseFtpUrl(url);
    if (target.isDir) throw new ClientError("usage", `get: the URL names a directory, not a file: ${redactUrl(url)}`);
    // Standard output only when asked for: a remote file named "-" is fetched into ./- by default.
    const dest = local ?? (basename(target.path) === "-" ? "./-" : basename(target.path));
    const run = async () => {
      this.session = await this.connectRetrying(target, `get ${target.path}`);
      const st = dest === "-" ? undefined : await stat(dest).catch(() => undefined);
      const file = st?.isDirectory() ? join(dest, posix.basename(target.path)) : dest;
      await fetchInto(this, this.session, target.path, file, segments);
    };
    // Into standard output: what the connection says goes to standard error from the start.
    if (dest === "-") await this.withStdoutTaken(run);
    else await run();
  }

  private async put(local: string, url: string): Promise<void> {
    const target = parseFtpUrl(url);
    if (local === "-") {
      if (target.isDir) throw new ClientError("usage", `put -: the URL must name the file to write, not a directory: ${redactUrl(url)}`);
      this.session = await this.connectRetrying(target, "put standard input");
      await putStream(this.session, this.opts.stdin, target.path, "standard input", this.transferOptions());
      return;
    }
    const remote = target.isDir ? `${target.path}${basename(local)}` : target.path;
    // Refused before connecting: nothing to log in for.
    await refuseUnfinished(local, `put ${local}`);
    this.session = await this.connectRetrying(target, `put ${local}`);
    await putFile(this.session, local, remote, this.transferOptions());
  }

  private async ls(url: string): Promise<void> {
    const target = parseFtpUrl(url);
    this.session = await this.connectRetrying(target, `ls ${target.path || "."}`);
    let entries;
    try {
      entries = await this.session.list(target.path);
    } catch (err) {
      throw toClientError(err, { action: `ls ${target.path || "."}` });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) this.out(formatEntry(e));
  }

  private async mirror(source: string, dest: string, reverse: boolean, parallel: number, del: boolean): Promise<void> {
    const url = reverse ? dest : source;
    const target = parseFtpUrl(url);
    this.session = await this.connectRetrying(target, reverse ? `mirror --reverse ${source}` : `mirror ${target.path || "."}`);
    const mo = { ...this.transferOptions(), parallel, delete: del };
    const remoteDir = target.path.replace(/\/+$/, "");
    if (reverse) await mirrorUp(this.session, source, remoteDir, mo);
    else await mirrorDown(this.session, remoteDir, dest, mo);
  }
}
