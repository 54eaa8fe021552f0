// Hashes of local files and the FTP HASH reply (draft-bryan-ftpext-hash §3):
//   FEAT line   "HASH SHA-256*;SHA-1;MD5;CRC32"  (the starred one is selected)
//   reply       "213 SHA-256 0-1233 <hex> path"
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import * as zlib from "node:zlib";
import type { HashRequest, HashResult } from "../workers/hash-types.js";
import { WorkerPool, workerScript } from "../workers/pool.js";

export type HashAlgorithm = "SHA-256" | "SHA-512" | "SHA-1" | "MD5" | "CRC32";

/** Preference order when the server offers several. */
export const HASH_PREFERENCE: readonly HashAlgorithm[] = ["SHA-256", "SHA-512", "SHA-1", "MD5", "CRC32"];

const NODE_NAMES: Record<Exclude<HashAlgorithm, "CRC32">, string> = {
  "SHA-256": "sha256",
  "SHA-512": "sha512",
  "SHA-1": "sha1",
  MD5: "md5",
};

export interface HashFeature {
  readonly algorithms: readonly HashAlgorithm[];
  readonly selected: HashAlgorithm | undefined;
}

/** Parse the argument of the HASH FEAT line; unknown names are dropped. */
export function parseHashFeature(value: string): HashFeature {
  const algorithms: HashAlgorithm[] = [];
  let selected: HashAlgorithm | undefined;
  for (const raw of value.split(";")) {
    const star = raw.trim().endsWith("*");
    const name = raw.trim().replace(/\*$/, "").toUpperCase();
    const algo = HASH_PREFERENCE.find((a) => a === name);
    if (!algo) continue;
    algorithms.push(algo);
    if (star) selected = algo;
  }
  return { algorithms, selected };
}

export function pickAlgorithm(feature: HashFeature): HashAlgorithm | undefined {
  return HASH_PREFERENCE.find((a) => feature.algorithms.includes(a)) ?? feature.selected;
}

export interface HashReply {
  readonly algorithm: string;
  readonly start: number;
  readonly end: number;
  readonly hex: string;
  readonly path: string;
}

/**
 * Parse "213 SHA-256 0-1233 abcdef… path"; undefined when the reply has another shape. The reply may be
 * multi-line ("213-" lines first, e.g. sent to keep a slow hash alive): the line with the hash counts.
 */
export function parseHashReply(message: string): HashReply | undefined {
  for (const raw of message.split(/\r?\n/).reverse()) {
    const m = /^(?:213[ -])?\s*(\S+)\s+(\d+)-(\d+)\s+([0-9A-Fa-f]+)(?:\s+(.*))?$/.exec(raw.trim());
    if (m) return { algorithm: m[1]!.toUpperCase(), start: Number(m[2]), end: Number(m[3]), hex: m[4]!.toLowerCase(), path: m[5] ?? "" };
  }
  return undefined;
}

/** An incremental hasher for any supported algorithm. */
export interface Hasher {
  update(chunk: Buffer): void;
  digestHex(): string;
}

export function createHasher(algo: HashAlgorithm): Hasher {
  if (algo === "CRC32") {
    let crc = 0;
    return {
      update(chunk) {
        crc = crc32(chunk, crc);
      },
      digestHex() {
        return crc.toString(16).padStart(8, "0");
      },
    };
  }
  const h = createHash(NODE_NAMES[algo]);
  return {
    update(chunk) {
      h.update(chunk);
    },
    digestHex() {
      return h.digest("hex");
    },
  };
}

let table: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3), continuing from `previous`. */
export function crc32(data: Buffer, previous = 0): number {
  const native = (zlib as unknown as { crc32?: (d: Buffer, v?: number) => number }).crc32;
  if (typeof native === "function") return native(data, previous) >>> 0;
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

let pool: WorkerPool<HashRequest, HashResult> | undefined;

/**
 * Hash bytes [start, endExclusive) of a local file (the whole file by default). The file is streamed and hashed on
 * a worker thread, so progress output and other connections carry on, and parallel transfers verify on all cores.
 */
export async function hashLocalFile(path: string, algo: HashAlgorithm, start = 0, endExclusive?: number): Promise<string> {
  if (endExclusive !== undefined && endExclusive <= start) return createHasher(algo).digestHex();
  pool ??= new WorkerPool(workerScript("hash-worker"), Math.max(1, Math.min(4, availableParallelism())));
  const r = await pool.run({ path, algorithm: algo, start, end: endExclusive === undefined ? null : endExclusive - 1 });
  return r.digest;
}
