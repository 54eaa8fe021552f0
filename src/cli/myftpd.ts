#!/bin/sh
//usr/bin/env true; exec node --no-memory-reducer "$0" "$@"
// myftpd: the server and its administration commands.
//
// The bin is started by the shell, which runs the line above (`//usr/bin/env` is /usr/bin/env) and so starts node
// with V8's memory reducer off; to JavaScript that line is a comment. Node takes that option only on its command
// line (set from inside the running process it changes nothing), and a `#!/usr/bin/env node` line cannot pass it
// everywhere. The reducer, some seconds after a busy spell, collects the heap down and drops the compiled code of
// the objects it collects, so the next burst of sessions runs slow code and collects often until both are back: in
// the bench, 0.34 to 0.42 ms of CPU per small file in the first burst after such a pause (seven of nine runs), and at
// most 0.27 with it off (README, Performance). `node dist/cli/myftpd.js` still runs it with node's defaults.

import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { makeCertificate } from "./cert.js";
import { serve } from "./serve.js";
import { ConfigError, defaultDataDir, resolveServeSettings, SERVE_SETTINGS } from "./settings.js";
import { dataDirProblem, UsageError, userAdd, userDel, userList, userPasswd, userRescan, userSet } from "./user-admin.js";
import { PromptInterrupted } from "./prompt.js";

/** The version in the package.json next to dist/ (it ships with the package). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
}

const program = new Command();
program
  .name("myftpd")
  .description("myftpd: a multi-user FTP server")
  .version(packageVersion(), "-V, --version", "print the version of myftpd")
  .showHelpAfterError();
// Set before the subcommands are created: they copy it then, and a usage mistake in one (e.g. `user add -x`)
// would otherwise exit 1.
program.exitOverride((err) => {
  // Usage mistakes (unknown option, missing argument) exit 2 like other refusals; --help and --version exit 0.
  process.exit(err.exitCode === 0 ? 0 : 2);
});

const dataOption = () => new Option("--data <dir>", "data directory (default ./myftp-data or $MYFTPD_DATA)");
const configOption = () => new Option("--config <file>", "take the data directory from serve's config file (key data); --data wins");

/** Runs an admin action: prints its result, or its refusal with exit code 2. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<string>) {
  return async (...args: A) => {
    try {
      const out = await fn(...args);
      if (out) process.stdout.write(out + "\n");
    } catch (err) {
      if (err instanceof UsageError || err instanceof ConfigError) {
        process.stderr.write(`myftpd: ${err.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`myftpd: ${(err as Error).message}\n`);
      process.exit(err instanceof PromptInterrupted ? 130 : 1);
    }
  };
}

const serveCmd = program.command("serve").description("run the FTP server");
serveCmd.option("--config <file>", "config file (TOML or JSON) with the same keys as the flags");
for (const def of SERVE_SETTINGS) {
  const flag = def.kind === "bool" ? `--${def.key}` : `--${def.key} <${def.arg ?? "value"}>`;
  serveCmd.option(flag, def.description);
  // A switch a config file turns on can be turned off for one run.
  if (def.kind === "bool") serveCmd.option(`--no-${def.key}`, `turn off --${def.key} (set in a config file)`);
}
serveCmd.action(async (opts: Record<string, unknown>) => {
  try {
    const { config, ...flags } = opts;
    await serve(resolveServeSettings(flags, config as string | undefined));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`myftpd: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`myftpd: ${(err as Error).message}\n`);
    process.exit(1);
  }
});

const user = program.command("user").description("manage users");
/**
 * The data directory of an admin command: --data, else the `data` key of --config's file, else the default. --data is
 * checked as serve checks it: an empty one (an unset shell variable) is refused, not taken as the current directory.
 */
const dataOf = (o: { data?: string; config?: string }) => {
  const dir =
    o.data !== undefined
      ? resolveServeSettings({ data: o.data }).data
      : o.config !== undefined
        ? resolveServeSettings({}, o.config).data
        : defaultDataDir();
  const problem = dataDirProblem(dir);
  if (problem !== undefined) throw new UsageError(`${problem}; check --data or --config`);
  return dir;
};

user
  .command("add <name>")
  .description("add a user (home defaults to DATA/home/NAME, quota to 1 GiB)")
  .option("--home <dir>", "home directory")
  .option("--quota <size>", "quota: bytes, KB/MB/GB/TB, KiB/MiB/GiB/TiB, or unlimited")
  .option("--password-stdin", "read the password as one line from stdin")
  .addOption(dataOption())
  .addOption(configOption())
  .action(action((name: string, o) => userAdd(dataOf(o), name, o)));

user
  .command("list")
  .description("list users with home, used space and quota")
  .option("--json", "print JSON")
  .addOption(dataOption())
  .addOption(configOption())
  .action(action((o) => userList(dataOf(o), o.json === true)));

user
  .command("del <name>")
  .description("delete a user")
  .option("--purge", "also remove the home directory")
  .addOption(dataOption())
  .addOption(configOption())
  .action(action((name: string, o) => userDel(dataOf(o), name, o.purge === true)));

user
  .command("passwd <name>")
  .description("change a user's password")
  .option("--password-stdin", "read the password as one line from stdin")
  .addOption(dataOption())
  .addOption(configOption())
  .action(action((name: string, o) => userPasswd(dataOf(o), name, o.passwordStdin === true)));

user
  .command("set <name>")
  .description("change a user's home or quota")
  .option("--home <dir>", "home directory")
  .option("--quota <size>", "quota: bytes, KB/MB/GB/TB, KiB/MiB/GiB/TiB, or unlimited")
  .addOption(dataOption())
  .addOption(configOption())
  .action(action((name: string, o) => userSet(dataOf(o), name, o)));

user
  .command("rescan [name]")
  .description("recount used space from disk (one user, or --all)")
  .option("--all", "every user")
  .addOption(dataOption())
  .addOption(configOption())
  .action(action((name: string | undefined, o) => userRescan(dataOf(o), name, o.all === true)));

program
  .command("cert")
  .description("write a self-signed TLS certificate and key (mode 0600) into DATA/tls/ for serve to use")
  .option("--host <name>", "host name or IP address the certificate is for (default: this machine's name)")
  .option("--days <n>", "validity in days (default 825)")
  .option("--force", "replace an existing certificate and key")
  .addOption(dataOption())
  .addOption(configOption())
  .action(action((o) => makeCertificate(dataOf(o), { host: o.host, days: o.days, force: o.force === true })));

await program.parseAsync(process.argv);
