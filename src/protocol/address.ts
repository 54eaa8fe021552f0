// Host/port codecs for PORT and PASV (RFC 959 §4.1.2) and EPRT and EPSV (RFC 2428).

import { isIPv4, isIPv6 } from "node:net";

export interface HostPort {
  host: string;
  port: number;
  family: 4 | 6;
}

function byte(s: string): number | null {
  if (!/^\d{1,3}$/.test(s)) return null;
  const n = Number(s);
  return n <= 255 ? n : null;
}

/** Parses "h1,h2,h3,h4,p1,p2" (spaces around numbers tolerated). Returns null when malformed. */
export function parsePortArg(arg: string): HostPort | null {
  const parts = arg.trim().split(",").map((p) => p.trim());
  if (parts.length !== 6) return null;
  const nums = parts.map(byte);
  if (nums.some((n) => n === null)) return null;
  const [a, b, c, d, p1, p2] = nums as number[];
  const port = p1! * 256 + p2!;
  if (port === 0) return null;
  return { host: `${a}.${b}.${c}.${d}`, port, family: 4 };
}

/** Formats the 227 reply's "h1,h2,h3,h4,p1,p2" for an IPv4 address. */
export function formatPasvArg(host: string, port: number): string {
  const v4 = toIPv4(host);
  if (!v4) throw new Error(`PASV needs an IPv4 address, got ${host}`);
  return `${v4.split(".").join(",")},${port >> 8},${port & 255}`;
}

/**
 * Parses EPRT's "<d>proto<d>address<d>port<d>" with any delimiter in the printable range 33-126.
 * Returns "bad" when malformed and "unsupported" for a network protocol other than 1 (IPv4) and 2 (IPv6).
 */
export function parseEprtArg(arg: string): HostPort | "bad" | "unsupported" {
  if (arg.length < 7) return "bad";
  const d = arg[0]!;
  const code = d.charCodeAt(0);
  if (code < 33 || code > 126) return "bad";
  const parts = arg.split(d);
  // "" proto addr port ""
  if (parts.length !== 5 || parts[0] !== "" || parts[4] !== "") return "bad";
  const [, proto, addr, portText] = parts as [string, string, string, string, string];
  if (proto !== "1" && proto !== "2") return /^\d+$/.test(proto) ? "unsupported" : "bad";
  if (!/^\d{1,5}$/.test(portText)) return "bad";
  const port = Number(portText);
  if (port < 1 || port > 65535) return "bad";
  if (proto === "1") {
    if (!isIPv4(addr)) return "bad";
    return { host: addr, port, family: 4 };
  }
  if (!isIPv6(addr)) return "bad";
  return { host: addr, port, family: 6 };
}

/** Formats EPSV's "(|||port|)" (RFC 2428 §3). */
export function formatEpsvArg(port: number): string {
  return `(|||${port}|)`;
}

/** Parses EPSV's argument: "", "1", "2" or "ALL". */
export function parseEpsvArg(arg: string): "any" | "all" | 4 | 6 | "unsupported" | "bad" {
  const a = arg.trim().toUpperCase();
  if (a === "") return "any";
  if (a === "ALL") return "all";
  if (a === "1") return 4;
  if (a === "2") return 6;
  return /^\d+$/.test(a) ? "unsupported" : "bad";
}

/** Returns the dotted IPv4 form of an IPv4 or IPv4-mapped IPv6 address, or null. */
export function toIPv4(host: string): string | null {
  if (isIPv4(host)) return host;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m && isIPv4(m[1]!) ? m[1]! : null;
}

/**
 * Canonical form for comparing peer addresses: IPv4-mapped IPv6 becomes IPv4, IPv6 lower-cased. A link-local
 * address keeps its zone ("fe80::1%eth0", as Node reports such a peer): the same address on another link is
 * another host.
 */
export function canonicalAddress(host: string): string {
  const v4 = toIPv4(host);
  if (v4) return v4;
  if (!isIPv6(host)) return host.toLowerCase();
  const zone = host.indexOf("%");
  // The URL parser below knows no zones.
  if (zone >= 0) return `${canonicalAddress(host.slice(0, zone))}%${host.slice(zone + 1)}`;
  // The URL parser writes IPv6 addresses in their one canonical (RFC 5952) form.
  const canon = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canon);
  if (!mapped) return canon;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** True when two socket addresses name the same host. */
export function sameHost(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  return canonicalAddress(a) === canonicalAddress(b);
}
