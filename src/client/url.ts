// FTP URLs (RFC 1738 §3.2): ftp://[user[:password]@]host[:port][/path]. `ftps://` means implicit TLS.
// As in RFC 1738 the path is relative to the login directory; a leading "%2F" (or a doubled slash)
// makes it absolute.
import { ClientError } from "./errors.js";

export type TlsMode = "none" | "explicit" | "implicit";

export interface FtpTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string | undefined;
  readonly password: string | undefined;
  /** Remote path as the user wrote it after the host, decoded; "" when none. */
  readonly path: string;
  /** True when the URL path ends with "/": it names a directory. */
  readonly isDir: boolean;
  readonly tls: TlsMode;
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

/**
 * The URL as typed, with the password (if any) replaced by "***": for messages, which must not repeat a secret.
 * The password is found as parseFtpUrl finds it: between the first ":" and the last "@" before the first "/".
 */
export function redactUrl(input: string): string {
  const m = SCHEME.exec(input.trimStart());
  if (!m) return input;
  const lead = input.length - input.trimStart().length;
  const start = lead + m[0].length;
  const rest = input.slice(start);
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const at = authority.lastIndexOf("@");
  if (at === -1) return input;
  const colon = authority.slice(0, at).indexOf(":");
  if (colon === -1) return input;
  return `${input.slice(0, start + colon + 1)}***${input.slice(start + at)}`;
}

/** Parse an ftp:// or ftps:// URL; throws a usage ClientError with one clear sentence otherwise. */
export function parseFtpUrl(input: string): FtpTarget {
  try {
    return parseUrl(input);
  } catch (err) {
    // Every message quotes the URL: never with its password.
    if (err instanceof ClientError) throw new ClientError(err.kind, err.message.split(input).join(redactUrl(input)));
    throw err;
  }
}

function parseUrl(input: string): FtpTarget {
  const text = input.trim();
  const m = SCHEME.exec(text);
  if (!m) throw new ClientError("usage", `bad URL "${input}": expected ftp://[user[:password]@]host[:port][/path]`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "ftp" && scheme !== "ftps")
    throw new ClientError("usage", `bad URL "${input}": unsupported scheme "${scheme}" (use ftp:// or ftps://)`);
  const rest = text.slice(m[0].length);
  // The authority ends at the first "/" after the last "@" (passwords may hold "/" only percent-encoded).
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const rawPath = slash === -1 ? "" : rest.slice(slash + 1);
  const at = authority.lastIndexOf("@");
  if (/[\s]/.test(authority)) {
    // Say which part: a space typed in a password is the likely one, and it is written %20.
    const inUserinfo = at !== -1 && /\s/.test(authority.slice(0, at));
    throw new ClientError("usage", `bad URL "${input}": ${inUserinfo ? "spaces in the user name or password (write a space as %20)" : "spaces in the host part"}`);
  }
  const userinfo = at === -1 ? undefined : authority.slice(0, at);
  const hostport = at === -1 ? authority : authority.slice(at + 1);
  let user: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    user = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), input);
    password = colon === -1 ? undefined : decode(userinfo.slice(colon + 1), input);
    if (user === "") throw new ClientError("usage", `bad URL "${input}": empty user name`);
  }
  let host: string;
  let portText: string | undefined;
  if (hostport.startsWith("[")) {
    const close = hostport.indexOf("]");
    if (close === -1) throw new ClientError("usage", `bad URL "${input}": unclosed "[" in IPv6 address`);
    host = hostport.slice(1, close);
    const after = hostport.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) throw new ClientError("usage", `bad URL "${input}": junk after IPv6 address`);
    portText = after === "" ? undefined : after.slice(1);
  } else {
    const colon = hostport.indexOf(":");
    host = colon === -1 ? hostport : hostport.slice(0, colon);
    portText = colon === -1 ? undefined : hostport.slice(colon + 1);
  }
  if (host === "") throw new ClientError("usage", `bad URL "${input}": no host`);
  if (!/^[A-Za-z0-9.:%_-]+$/.test(host)) throw new ClientError("usage", `bad URL "${input}": invalid host "${host}"`);
  let port = scheme === "ftps" ? 990 : 21;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      throw new ClientError("usage", `bad URL "${input}": invalid port "${portText}"`);
    port = Number(portText);
  }
  const noQuery = rawPath.replace(/[?#].*$/, "").replace(/;type=[aid]$/i, "");
  const path = noQuery.split("/").map((seg) => decode(seg, input)).join("/");
  if (/[\r\n\0]/.test(path)) throw new ClientError("usage", `bad URL "${input}": control characters in the path`);
  return {
    host,
    port,
    user,
    password,
    path,
    isDir: path === "" || path.endsWith("/"),
    tls: scheme === "ftps" ? "implicit" : "none",
  };
}

function decode(s: string, input: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ClientError("usage", `bad URL "${input}": invalid percent-encoding`);
  }
}

/** host:port as people write it, with brackets around IPv6 addresses. */
export function endpointOf(t: Pick<FtpTarget, "host" | "port">): string {
  return t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** The URL again, without the password, for messages. */
export function displayUrl(t: FtpTarget): string {
  const scheme = t.tls === "implicit" ? "ftps" : "ftp";
  const user = t.user ? `${encodeURIComponent(t.user)}@` : "";
  return `${scheme}://${user}${endpointOf(t)}/${t.path}`;
}
