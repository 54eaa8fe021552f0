// Where the password comes from, in order: the URL, MYFTP_PASSWORD, ~/.netrc, a prompt without echo.
import { open } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
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

const CR = 0x0d;
const LF = 0x0a;

/**
 * Gives input back to whoever reads the stream next (the shell's readline, another prompt, `put -`): the bytes that
 * followed the line end in the read that ended it go back to the front of the stream with unshift, so they come
 * first and in order. When the line ended with a CR that was the last byte of its read, an LF that comes first in
 * the next read is the rest of that CR LF, not a second (empty) line: it is dropped where the stream takes in data
 * (push), once, whoever reads then. The next reader cannot be left to do it (readline takes a lone LF for an empty
 * line), and the LF may arrive after it has started reading.
 */
const lfWatched = new WeakSet<NodeJS.ReadStream>();

function handBack(input: NodeJS.ReadStream, rest: Buffer, endedWithCr: boolean): void {
  if (rest.length > 0) {
    input.unshift(rest);
    return;
  }
  if (!endedWithCr || lfWatched.has(input)) return;
  // Bytes read already but not yet taken are the next read.
  if (input.readableLength > 0) {
    const next = input.read() as Buffer | string | null;
    if (next !== null) {
      const buf = typeof next === "string" ? Buffer.from(next, "utf8") : next;
      if (buf.length > 1 || buf[0] !== LF) input.unshift(buf[0] === LF ? buf.subarray(1) : buf);
      return;
    }
  }
  lfWatched.add(input);
  const ownPush = Object.prototype.hasOwnProperty.call(input, "push");
  const push = input.push;
  input.push = function (this: NodeJS.ReadStream, chunk: unknown, encoding?: BufferEncoding): boolean {
    // End of input (null) is no read: the LF may still come.
    if (chunk === null) return push.call(this, chunk, encoding);
    lfWatched.delete(input);
    if (ownPush) input.push = push;
    else delete (input as { push?: unknown }).push;
    if (Buffer.isBuffer(chunk) && chunk[0] === LF) chunk = chunk.subarray(1);
    else if (typeof chunk === "string" && chunk.startsWith("\n")) chunk = chunk.slice(1);
    if ((chunk as Buffer | string).length === 0) return true;
    return push.call(this, chunk, encoding);
  };
}

/**
 * Read a line from the terminal without echoing it. Enter (CR, LF, or CR LF, even with the LF in the next read) ends
 * it; Ctrl-D on an empty line gives the login up, Ctrl-C interrupts, Backspace or DEL takes back a character and Ctrl-U
 * the line. What follows the line end (or the Ctrl-C or Ctrl-D) in its read is left for the next reader.
 */
export async function promptHidden(question: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  if (!input.isTTY) throw new ClientError("login", "no password given and no terminal to ask for one (use MYFTP_PASSWORD or ~/.netrc)");
  // Raw mode (no echo) before the question shows, so that nothing typed in answer is echoed.
  const wasRaw = input.isRaw;
  input.setRawMode(true);
  return await new Promise<string>((resolve, reject) => {
    // Bytes, not strings, are read: a character split across two reads is joined here, and what follows the line
    // end goes back exactly as it came. The control bytes looked for never occur inside a UTF-8 sequence.
    const decoder = new StringDecoder("utf8");
    let value = "";
    let finished = false;
    const done = (err: Error | undefined, rest?: Buffer, endedWithCr = false) => {
      if (finished) return;
      finished = true;
      input.removeListener("data", onData);
      input.removeListener("end", onEnd);
      input.removeListener("error", onError);
      input.pause();
      try {
        input.setRawMode(wasRaw);
      } catch {
        // The terminal is gone; there is no mode to restore.
      }
      if (rest) handBack(input, rest, endedWithCr);
      output.write("\n");
      if (err) reject(err);
      else resolve(value + decoder.end());
    };
    const onData = (data: Buffer | string) => {
      const chunk = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      let from = 0;
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b >= 0x20 && b !== 0x7f) continue;
        value += decoder.write(chunk.subarray(from, i));
        from = i + 1;
        if (b === CR || b === LF) {
          const crlf = b === CR && chunk[i + 1] === LF;
          const rest = chunk.subarray(crlf ? i + 2 : i + 1);
          return done(undefined, rest, b === CR && !crlf && rest.length === 0);
        }
        if (b === 0x03) return done(new ClientError("interrupted", "password prompt interrupted"), chunk.subarray(i + 1));
        if (b === 0x04 && value === "") return done(new ClientError("login", "no password given"), chunk.subarray(i + 1));
        if (b === 0x7f || b === 0x08) value = [...value].slice(0, -1).join("");
        else if (b === 0x15) value = "";
      }
      value += decoder.write(chunk.subarray(from));
    };
    const onEnd = () => done(new ClientError("login", "no password given"));
    const onError = (err: Error) => done(new ClientError("login", `cannot read the password: ${err.message}`));
    input.on("data", onData);
    input.once("end", onEnd);
    input.once("error", onError);
    output.write(question);
    input.resume();
  });
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
