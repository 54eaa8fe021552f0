// Comparing absolute, normalised disk paths.

import * as path from "node:path";

/** True when `p` is `dir` or lies inside it. */
export function isWithin(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}
