// The settings of `myftpd serve`: one table drives the command-line flags, the config file keys (TOML or JSON,
// same kebab-case names) and their validation. Flags win over the file; unknown keys and bad values are refused
// with a message naming the key.

import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import * as path from "node:path";
import { isIP } from "node:net";
import { parse as parseToml } from "smol-toml";
import { defaultTransferProcesses } from "../server/transfer-processes.js";

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Kind = "int" | "string" | "path" | "range" | "bool" | "address" | "ipv4" | "level";

export interface SettingDef {
  key: string;
  kind: Kind;
  description: string;
  min?: number;
  max?: number;
  /** Value name shown in --help. */
  arg?: string;
}

export const SERVE_SETTINGS: readonly SettingDef[] = [
  { key: "data", kind: "path", arg: "dir", description: "data directory (users.db, homes, certificates)" },
  { key: "host", kind: "address", arg: "addr", description: "address to listen on (default 0.0.0.0)" },
  { key: "port", kind: "int", min: 0, max: 65535, arg: "n", description: "control port; 0 takes any free port (default 2121)" },
  { key: "pasv-range", kind: "range", arg: "min-max", description: "passive data ports (default 50000-50100)" },
  { key: "pasv-address", kind: "ipv4", arg: "addr", description: "IPv4 address announced in PASV replies (behind NAT)" },
  { key: "idle-timeout", kind: "int", min: 0, max: 86400, arg: "seconds", description: "close idle sessions (default 300; 0 = never)" },
  {
    key: "login-timeout",
    kind: "int",
    min: 0,
    max: 86400,
    arg: "seconds",
    description: "close sessions not logged in this long after their greeting, whatever they send (default 60; 0 = never)",
  },
  { key: "data-timeout", kind: "int", min: 1, max: 3600, arg: "seconds", description: "wait for a data connection (default 30)" },
  { key: "max-sessions", kind: "int", min: 1, max: 100000, arg: "n", description: "sessions served at once (default 100)" },
  { key: "max-queue", kind: "int", min: 0, max: 100000, arg: "n", description: "connections waiting for a slot (default 100)" },
  { key: "queue-timeout", kind: "int", min: 1, max: 86400, arg: "seconds", description: "longest wait in the queue (default 60)" },
  { key: "max-sessions-per-user", kind: "int", min: 1, max: 100000, arg: "n", description: "sessions per user (default 10)" },
  { key: "max-connections-per-ip", kind: "int", min: 1, max: 100000, arg: "n", description: "connections per client address (default 20)" },
  { key: "hash-workers", kind: "int", min: 1, max: 256, arg: "n", description: "worker threads for HASH (default: number of cores)" },
  {
    key: "transfer-processes",
    kind: "int",
    min: 0,
    max: 64,
    arg: "n",
    description: "processes that copy binary file data, off the control thread (default: cores - 1, from 1 to 4; 0 = none)",
  },
  { key: "tls-cert", kind: "path", arg: "file", description: "TLS certificate (PEM); default DATA/tls/cert.pem if present" },
  { key: "tls-key", kind: "path", arg: "file", description: "TLS private key (PEM); default DATA/tls/key.pem if present" },
  { key: "implicit-tls-port", kind: "int", min: 0, max: 65535, arg: "n", description: "also listen for implicit FTPS on this port" },
  { key: "require-tls", kind: "bool", description: "refuse logins and data transfers without TLS" },
  { key: "require-tls-session-reuse", kind: "bool", description: "refuse PROT P data connections that do not resume the control TLS session" },
  { key: "max-login-failures", kind: "int", min: 1, max: 1000, arg: "n", description: "failed logins before an address is banned (default 5)" },
  { key: "ban-seconds", kind: "int", min: 0, max: 31536000, arg: "seconds", description: "how long a ban lasts (default 900)" },
  { key: "log-level", kind: "level", arg: "level", description: "fatal, error, warn, info, debug, trace or silent (default info)" },
];

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export interface ServeSettings {
  data: string;
  host: string;
  port: number;
  pasvRange: [number, number];
  pasvAddress: string | null;
  idleTimeout: number;
  loginTimeout: number;
  dataTimeout: number;
  maxSessions: number;
  maxQueue: number;
  queueTimeout: number;
  maxSessionsPerUser: number;
  maxConnectionsPerIp: number;
  hashWorkers: number;
  transferProcesses: number;
  tlsCert: string | null;
  tlsKey: string | null;
  implicitTlsPort: number | null;
  requireTls: boolean;
  requireTlsSessionReuse: boolean;
  maxLoginFailures: number;
  banSeconds: number;
  logLevel: string;
}

export function defaultDataDir(): string {
  return path.resolve(process.env.MYFTPD_DATA || "myftp-data");
}

function defaults(): ServeSettings {
  return {
    data: defaultDataDir(),
    host: "0.0.0.0",
    port: 2121,
    pasvRange: [50000, 50100],
    pasvAddress: null,
    idleTimeout: 300,
    loginTimeout: 60,
    dataTimeout: 30,
    maxSessions: 100,
    maxQueue: 100,
    queueTimeout: 60,
    maxSessionsPerUser: 10,
    maxConnectionsPerIp: 20,
    hashWorkers: availableParallelism(),
    transferProcesses: defaultTransferProcesses(),
    tlsCert: null,
    tlsKey: null,
    implicitTlsPort: null,
    requireTls: false,
    requireTlsSessionReuse: false,
    maxLoginFailures: 5,
    banSeconds: 900,
    logLevel: "info",
  };
}

/** "pasv-range" → "pasvRange". */
export function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parseValue(def: SettingDef, raw: unknown, where: string, baseDir: string): unknown {
  const bad = (why: string) => new ConfigError(`${where}: "${def.key}" ${why}`);
  switch (def.kind) {
    case "int": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n)) throw bad(`must be a whole number, got ${JSON.stringify(raw)}`);
      if ((def.min !== undefined && n < def.min) || (def.max !== undefined && n > def.max)) {
        throw bad(`must be between ${def.min} and ${def.max}, got ${n}`);
      }
      return n;
    }
    case "bool": {
      if (typeof raw === "boolean") return raw;
      if (raw === "true" || raw === "yes" || raw === "1") return true;
      if (raw === "false" || raw === "no" || raw === "0") return false;
      throw bad(`must be true or false, got ${JSON.stringify(raw)}`);
    }
    case "range": {
      let lo: unknown;
      let hi: unknown;
      if (Array.isArray(raw) && raw.length === 2) [lo, hi] = raw;
      else if (typeof raw === "string" && /^\s*\d+\s*-\s*\d+\s*$/.test(raw)) [lo, hi] = raw.split("-").map((x) => Number(x));
      else throw bad(`must look like 50000-50100, got ${JSON.stringify(raw)}`);
      if (!Number.isInteger(lo) || !Number.isInteger(hi)) throw bad("must be two whole numbers");
      const a = lo as number;
      const b = hi as number;
      if (a > b || b > 65535 || (a < 1024 && !(a === 0 && b === 0))) {
        throw bad(`must be a range within 1024-65535 with min <= max (or 0-0 for any port), got ${a}-${b}`);
      }
      return [a, b];
    }
    case "address":
    case "ipv4": {
      if (typeof raw !== "string" || raw.trim() === "") throw bad("must be an address");
      const v = raw.trim();
      if (def.kind === "ipv4" && isIP(v) !== 4) throw bad(`must be an IPv4 address, got ${JSON.stringify(raw)}`);
      if (def.kind === "address" && isIP(v) === 0 && !/^[A-Za-z0-9.-]+$/.test(v)) throw bad(`is not an address: ${v}`);
      return v;
    }
    case "path":
      if (typeof raw !== "string" || raw.trim() === "") throw bad("must be a path");
      return path.resolve(baseDir, raw);
    case "level":
      if (typeof raw !== "string" || !LEVELS.includes(raw)) throw bad(`must be one of ${LEVELS.join(", ")}`);
      return raw;
    case "string":
      if (typeof raw !== "string") throw bad("must be a string");
      return raw;
  }
}

/** Reads a TOML or JSON config file into raw key/value pairs. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    // Without the byte order mark some editors put first: JSON.parse refuses it (TOML allows it).
    text = readFileSync(file, "utf8").replace(/^\uFEFF/, "");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  const isJson = file.endsWith(".json") || (!file.endsWith(".toml") && text.trimStart().startsWith("{"));
  try {
    const data = isJson ? JSON.parse(text) : parseToml(text);
    if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Error("top level must be a table");
    return data as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid ${isJson ? "JSON" : "TOML"}: ${(err as Error).message}`);
  }
}

/**
 * Merges defaults, the config file and the flags (in that order of strength) and validates every value.
 * `flags` holds commander's camelCase option values (strings or booleans) for the flags actually given.
 */
export function resolveServeSettings(flags: Record<string, unknown>, configFile?: string): ServeSettings {
  const out = defaults() as unknown as Record<string, unknown>;
  const byKey = new Map(SERVE_SETTINGS.map((d) => [d.key, d]));
  if (configFile) {
    const file = path.resolve(configFile);
    const raw = readConfigFile(file);
    for (const [key, value] of Object.entries(raw)) {
      const def = byKey.get(key);
      if (!def) throw new ConfigError(`${file}: unknown key "${key}"`);
      out[camel(key)] = parseValue(def, value, file, path.dirname(file));
    }
  }
  for (const def of SERVE_SETTINGS) {
    const v = flags[camel(def.key)];
    if (v !== undefined) out[camel(def.key)] = parseValue(def, v, `--${def.key}`, process.cwd());
  }
  return out as unknown as ServeSettings;
}
