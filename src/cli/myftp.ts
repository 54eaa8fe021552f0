#!/usr/bin/env node
// myftp: the client. `myftp [URL]` runs the shell (a script when stdin is not a terminal);
// `myftp get|put|ls|mirror …` run one command. Exit codes are listed in src/client/errors.ts.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Command, CommanderError } from "commander";
import { ExitCode, toClientError, type ExitCodeValue } from "../client/errors.js";
import { Runtime, parseCount, parseRate } from "../client/runtime.js";
import { runShell } from "../client/shell.js";

interface CommonOptions {
  tls?: boolean;
  insecure?: boolean;
  ca?: string;
  retries: string;
  quiet?: boolean;
  resume: boolean;
  limitRate?: string;
  timeout: string;
  debug?: boolean;
}

type MirrorOptions = CommonOptions & { reverse?: boolean; parallel: string; delete?: boolean };

function withCommonOptions(cmd: Command): Command {
  return cmd
    .option("--tls", "use explicit TLS (AUTH TLS) on ftp:// URLs")
    .option("--insecure", "accept any server certificate (self-signed)")
    .option("--ca <file>", "trust the certificate authority (or certificate) in this PEM file")
    .option("--retries <n>", "reconnect and resume this many times after a dropped connection", "3")
    .option("-q, --quiet", "no progress bars or per-file lines")
    .option("--no-resume", "start transfers over instead of continuing partial files")
    .option("--limit-rate <rate>", "transfer at most this many bytes per second (e.g. 500k, 2M)")
    .option("--timeout <seconds>", "give up on a server that stays silent this long", "30")
    .option("--debug", "print the control connection to stderr");
}

function makeRuntime(o: CommonOptions): Runtime {
  return new Runtime({
    connect: {
      tls: o.tls === true,
      insecure: o.insecure === true,
      caFile: o.ca,
      timeoutMs: parseCount(o.timeout, "--timeout", 1) * 1000,
      debug: o.debug === true,
    },
    settings: {
      resume: o.resume,
      retries: parseCount(o.retries, "--retries", 0),
      limitRate: o.limitRate === undefined ? undefined : parseRate(o.limitRate),
      segments: 1,
    },
    quiet: o.quiet === true,
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
}

let runtime: Runtime | undefined;

async function finish(code: ExitCodeValue): Promise<never> {
  runtime?.close();
  await new Promise<void>((r) => process.stdout.write("", () => r()));
  await new Promise<void>((r) => process.stderr.write("", () => r()));
  process.exit(code);
}

/**
 * A command's options with those given before the command name (`myftp --ca FILE get …`) filled in: the usage line
 * puts [options] first, and commander keeps those on the program. The same option after the command wins.
 */
function withProgramOptions<T extends CommonOptions>(o: T, cmd: Command): T {
  const merged: Record<string, unknown> = { ...(o as object) };
  for (const [key, value] of Object.entries(program.opts())) {
    if (program.getOptionValueSource(key) === "cli" && cmd.getOptionValueSource(key) !== "cli") merged[key] = value;
  }
  return merged as T;
}

async function oneShot(o: CommonOptions, cmd: Command, fn: (rt: Runtime) => Promise<void>): Promise<void> {
  runtime = makeRuntime(withProgramOptions(o, cmd));
  await fn(runtime);
  await finish(ExitCode.ok);
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

const program = new Command("myftp");
program
  .version(version(), "-V, --version")
  .description("FTP client: an interactive shell, or one command (get, put, ls, mirror)")
  .enablePositionalOptions()
  .exitOverride()
  .configureOutput({
    writeErr: (s) => process.stderr.write(s.startsWith("error: ") ? `myftp: ${s.slice(7)}` : s),
  });

program.addHelpText(
  "after",
  `
Without a command, myftp runs its shell (type "help" there); with stdin not a terminal it runs the
commands read from stdin. The password comes from the URL, MYFTP_PASSWORD, ~/.netrc or a prompt.

Exit codes: 0 success, 1 other failure, 2 usage (bad URL, unknown command), 3 cannot connect or TLS
failure, 4 login refused, 5 refused by the server (e.g. missing file), 6 quota full, 7 verification
failed, 8 local file problem, 130 interrupted (Ctrl-C), 141 output pipe closed.`,
);

withCommonOptions(program)
  .argument("[url]", "ftp://user@host[:port][/dir] or ftps://… to connect to")
  .action(async (url: string | undefined, o: CommonOptions) => {
    runtime = makeRuntime(o);
    const rt = runtime;
    const interactive = process.stdin.isTTY === true;
    if (url !== undefined) {
      try {
        await rt.open(url);
      } catch (err) {
        const e = toClientError(err);
        rt.error(`myftp: ${e.message}`);
        // A script has nothing to run against; a person may still `open` another server.
        if (!interactive) await finish(e.exitCode);
      }
    }
    const result = await runShell(rt, {
      input: process.stdin,
      output: process.stdout,
      interactive,
      historyFile: interactive ? join(process.env.HOME ?? homedir(), ".myftp_history") : undefined,
      err: (l) => rt.error(l),
    });
    await finish(result.exitCode);
  });

withCommonOptions(program.command("get"))
  .description("download a file (resumes a partial local copy, verifies the result)")
  .argument("<url>", "ftp://user@host[:port]/path/to/file")
  .argument("[local]", "local file or directory (default: the remote name, here); - for standard output")
  .option("-n, --connections <n>", "fetch N ranges over N connections at once", "1")
  .action(async (url: string, local: string | undefined, o: CommonOptions & { connections: string }, cmd: Command) => {
    await oneShot(o, cmd, (rt) => rt.getUrl(url, local, parseCount(o.connections, "-n", 1)));
  });

withCommonOptions(program.command("put"))
  .description("upload a file (resumes a partial remote copy, verifies the result)")
  .argument("<local>", "local file; - for standard input (read once: not resumed or retried)")
  .argument("<url>", "ftp://user@host[:port]/path (ending in / for a directory)")
  .action(async (local: string, url: string, o: CommonOptions, cmd: Command) => {
    await oneShot(o, cmd, (rt) => rt.putUrl(local, url));
  });

withCommonOptions(program.command("ls"))
  .description("list a remote directory")
  .argument("<url>", "ftp://user@host[:port]/dir")
  .action(async (url: string, o: CommonOptions, cmd: Command) => {
    await oneShot(o, cmd, (rt) => rt.lsUrl(url));
  });

withCommonOptions(program.command("mirror"))
  .description("copy a remote tree into a local directory (only changed files); --reverse for local to remote")
  .argument("<source>", "URL (or local directory with --reverse)")
  .argument("<target>", "local directory (or URL with --reverse)")
  .option("-R, --reverse", "upload the local directory to the remote one")
  .option("-P, --parallel <n>", "transfer this many files at once", "1")
  .option("--delete", "remove target files and directories the source does not have")
  .action(async (source: string, target: string, o: MirrorOptions, cmd: Command) => {
    await oneShot(o, cmd, (rt) => rt.mirrorUrl(source, target, o.reverse === true, parseCount(o.parallel, "--parallel", 1), o.delete === true));
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.exitCode === 0) await finish(ExitCode.ok);
    await finish(ExitCode.usage);
  }
  const e = toClientError(err);
  process.stderr.write(`myftp: ${e.message}\n`);
  await finish(e.exitCode);
}
