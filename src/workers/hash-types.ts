// Messages between the server and its hash workers.

export const HASH_ALGORITHMS = ["SHA-256", "SHA-1", "MD5", "CRC32"] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

export const NODE_HASH_NAMES: Record<Exclude<HashAlgorithm, "CRC32">, string> = {
  "SHA-256": "sha256",
  "SHA-1": "sha1",
  MD5: "md5",
};

export interface HashRequest {
  path: string;
  algorithm: HashAlgorithm;
  start: number;
  /** Last byte included; null for the end of the file. */
  end: number | null;
}

export interface HashResult {
  digest: string;
  bytes: number;
}

export function parseHashAlgorithm(name: string): HashAlgorithm | null {
  const n = name.trim().toUpperCase();
  return (HASH_ALGORITHMS as readonly string[]).includes(n) ? (n as HashAlgorithm) : null;
}
