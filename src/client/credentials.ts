// Where the password comes from, in order: the URL, MYFTP_PASSWORD, ~/.netrc, a prompt without echo.
import { open } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { readHiddenLines } from "../core/hidden-lines.js";
import { ClientError } from "./errors.js";

export interface NetrcEntry {
  readonly machine: string | undefined; // undefined for "default"
  readonly login: string | undefined;
  readonly password: string | undefined;
}

/** Parse the netrc format: whitespace-separated tokens, "machine", "default", "login", "password", "macdef". */
export function parseNetrc(text: string): NetrcEntry[] {
  const entries: NetrcEntry[] = [];
  const lines = text.split(/\r?\n/);
  const tokens: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\s*#/.test(line)) continue;
    const words = line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
    for (let w = 0; w < words.length; w++) {
      const word = words[w]!;
      if (word === "macdef") {
        // A macro body runs to the next blank line; skip it.
        while (i + 1 < lines.length && lines[i + 1]!.trim() !== "") i++;
        break;
      }
      tokens.push(word.startsWith('"') ? word.slice(1, -1).replace(/\\(.)/g, "$1") : word);
    }
  }
  let current: { machine: string | undefined; login?: string; password?: string } | undefined;
  const flush = () => {
    if (current) entries.push({ machine: current.machine, login: current.login, password: current.password });
  };
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    if (tok === "machine") {
      flush();
      current = { machine: tokens[++i] };
    } else if (tok === "default") {
      flush();
      current = { machine: undefined };
    } else if (current && (tok === "login" || tok === "password" || tok === "account")) {
      const value = tokens[++i];
      if (tok === "login") current.login = value;
      if (tok === "password") current.password = value;
    }
  }
  flush();
  return entries;
}

/** The entry for host (and user, when known); a "default" entry matches any host. */
export function findNetrc(entries: readonly NetrcEntry[], host: string, user: string | undefined): NetrcEntry | undefined {
  const fits = (e: NetrcEntry) => user === undefined || e.login === undefined || e.login === user;
  return entries.find((e) => e.machine === host && fits(e)) ?? entries.find((e) => e.machine === undefined && fits(e));
}

export interface NetrcFile {
  /** The file read: $NETRC, else ~/.netrc. */
  readonly file: string;
  /** Its entries; none when it is missing or unreadable. */
  readonly entries: NetrcEntry[];
  /**
   * The permission bits of a regular file that group or others have any access to (mode & 0o077 on POSIX), else
   * undefined. The passwords in such a file are not used, as classic FTP clients refuse them.
   */
  readonly openMode: number | undefined;
}

export async function readNetrc(env: NodeJS.ProcessEnv = process.env): Promise<NetrcFile> {
  const file = env.NETRC ?? join(env.HOME ?? homedir(), ".netrc");
  let fh;
  try {
    fh = await open(file, "r");
  } catch {
    return { file, entries: [], openMode: undefined };
  }
  try {
    // The mode of the file opened, so that it is the one read.
    const st = await fh.stat();
    const entries = parseNetrc(await fh.readFile("utf8"));
    const exposed = process.platform !== "win32" && st.isFile() && (st.mode & 0o077) !== 0;
    return { file, entries, openMode: exposed ? st.mode & 0o777 : undefined };
  } catch {
    return { file, entries: [], openMode: undefined };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The warning for a netrc password not used because the file is open to group or others. */
export function netrcModeWarning(file: string, mode: number): string {
  return `myftp: warning: not using the password in ${file}: group or others can access the file (mode ${mode.toString(8).padStart(3, "0")}); fix it with: chmod 600 ${file}`;
}

/**
 * Read a line from the terminal without echoing it (see readHiddenLines). Enter (CR, LF, or CR LF, even with the LF in
 * the next read) ends it; Ctrl-D on an empty line gives the login up, Ctrl-C interrupts, Backspace or DEL takes back a
 * character and Ctrl-U the line. What follows the line end (or the Ctrl-C or Ctrl-D) in its read is left for the next
 * reader: the shell gets the commands typed ahead with the password.
 */
export async function promptHidden(question: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  if (!input.isTTY) throw new ClientError("login", "no password given and no terminal to ask for one (use MYFTP_PASSWORD or ~/.netrc)");
  // Ctrl-U takes the line back as the shell's own prompt does; Ctrl-D means something only on an empty line.
  const read = await readHiddenLines(input, output, [question], { ctrlDEndsLine: false, ctrlUKillsLine: true });
  switch (read.end) {
    case "answered":
      return read.answers[0]!;
    case "interrupted":
      throw new ClientError("interrupted", "password prompt interrupted");
    case "cancelled":
      throw new ClientError("login", "no password given");
    case "failed":
      throw new ClientError("login", `cannot read the password: ${read.error.message}`);
  }
}

export interface Credentials {
  readonly user: string;
  readonly password: string;
  /** Where the password came from, for debugging output. */
  readonly source: "url" | "env" | "netrc" | "prompt" | "anonymous";
}

export interface CredentialOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** May we ask on the terminal? */
  readonly interactive: boolean;
  readonly prompt?: (question: string) => Promise<string>;
  /** Where a warning goes (a netrc password not used); standard error by default. */
  readonly warn?: (line: string) => void;
}

export async function resolveCredentials(
  host: string,
  urlUser: string | undefined,
  urlPassword: string | undefined,
  opts: CredentialOptions,
): Promise<Credentials> {
  const env = opts.env ?? process.env;
  if (urlUser !== undefined && urlPassword !== undefined) return { user: urlUser, password: urlPassword, source: "url" };
  const envPassword = env.MYFTP_PASSWORD;
  if (envPassword !== undefined && envPassword !== "" && (urlUser !== undefined || env.MYFTP_USER))
    return { user: urlUser ?? env.MYFTP_USER!, password: envPassword, source: "env" };
  const netrc = await readNetrc(env);
  const entry = findNetrc(netrc.entries, host, urlUser ?? env.MYFTP_USER);
  const user = urlUser ?? env.MYFTP_USER ?? entry?.login;
  if (entry?.password !== undefined && user !== undefined) {
    // A password in a file others can read is not used (an anonymous login's is no secret); its login name still is.
    if (netrc.openMode === undefined || user === "anonymous" || user === "ftp")
      return { user, password: entry.password, source: "netrc" };
    (opts.warn ?? ((line: string) => void process.stderr.write(`${line}\n`)))(netrcModeWarning(netrc.file, netrc.openMode));
  }
  if (user === undefined || user === "anonymous" || user === "ftp")
    return { user: user ?? "anonymous", password: envPassword || "anonymous@", source: "anonymous" };
  if (!opts.interactive)
    throw new ClientError("login", `no password for ${user}@${host} (set MYFTP_PASSWORD, add it to ~/.netrc, or run on a terminal)`);
  const ask = opts.prompt ?? ((q: string) => promptHidden(q));
  return { user, password: await ask(`Password for ${user}@${host}: `), source: "prompt" };
}
