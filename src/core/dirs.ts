// Making a directory and the ones above it, with the real reason when that fails.
//
// Node's recursive mkdir reports a directory it cannot make on a read-only file system as ENOENT: after mkdir's
// EROFS it looks at the path, which is not there, and throws that error instead. "No such file or directory" then
// reads as a missing parent. Where it says ENOENT, the first missing directory is made alone, which fails with the
// real reason (EROFS); a missing parent (a dangling link on the way) still ends in the ENOENT.

import { existsSync, mkdirSync } from "node:fs";
import * as path from "node:path";

/**
 * The first directory of `p` that is missing, below one that exists. Looked for along `p` as given, as the recursive
 * mkdir does: the kernel resolves "link/.." from where the link leads, which path.resolve's ".." by hand does not.
 */
function firstMissing(p: string): string {
  let cur = p;
  for (let parent = path.dirname(cur); parent !== cur && !existsSync(parent); parent = path.dirname(cur)) cur = parent;
  return cur;
}

const isEnoent = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";

/** mkdirSync(p, { recursive: true, mode }): returns the first directory made, or undefined when `p` was there. */
export function makeDirsSync(p: string, mode?: number): string | undefined {
  try {
    return mkdirSync(p, { recursive: true, mode });
  } catch (err) {
    if (!isEnoent(err)) throw err;
    const missing = firstMissing(p);
    try {
      mkdirSync(missing, { mode });
    } catch (real) {
      throw isEnoent(real) || (real as NodeJS.ErrnoException).code === "EEXIST" ? err : real;
    }
    mkdirSync(p, { recursive: true, mode });
    return missing;
  }
}
