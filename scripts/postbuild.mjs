// Make the bin entry points executable after tsc writes them.
import { chmodSync, existsSync } from "node:fs";
for (const f of ["dist/cli/myftpd.js", "dist/cli/myftp.js"]) {
  if (existsSync(f)) chmodSync(f, 0o755);
}
