// Password hashing: argon2id in PHC string form. Hashing and verifying run on libuv's thread pool, off the
// event loop. Parameters follow the OWASP minimum for argon2id (19 MiB, 2 passes, 1 lane).

import { hash, verify } from "@node-rs/argon2";

const ARGON2ID = 2; // Algorithm.Argon2id (a const enum in the binding's types)

export const ARGON2_PARAMS = { algorithm: ARGON2ID, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export async function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_PARAMS);
}

/** A hash of a random password, verified against when the user is unknown so both cases cost the same time. */
let decoy: Promise<string> | undefined;

export async function verifyPassword(phc: string | undefined, password: string): Promise<boolean> {
  if (phc === undefined) {
    decoy ??= hashPassword(`decoy-${Math.random()}`);
    await verify(await decoy, password).catch(() => false);
    return false;
  }
  if (!phc.startsWith("$argon2id$")) return false;
  try {
    return await verify(phc, password);
  } catch {
    return false;
  }
}
