// Messages between the hash workers and their users (the server's HASH, the client's verification).

/** What the server offers in HASH (FEAT line order). */
export const HASH_ALGORITHMS = ["SHA-256", "SHA-1", "MD5", "CRC32"] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];
/** What a worker computes: the server's set plus SHA-512, which the client meets on other servers. */
export type WorkerHashAlgorithm = HashAlgorithm | "SHA-512";

export const NODE_HASH_NAMES: Record<Exclude<WorkerHashAlgorithm, "CRC32">, string> = {
  "SHA-256": "sha256",
  "SHA-512": "sha512",
  "SHA-1": "sha1",
  MD5: "md5",
};

export interface HashRequest {
  path: string;
  /**
   * A descriptor of this process to read instead of opening `path`: the server opens the file where it checks the
   * path against the jail, because by the time a worker gets to a queued task the path may lead somewhere else.
   */
  fd?: number;
  algorithm: WorkerHashAlgorithm;
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
