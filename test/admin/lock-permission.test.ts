// `myftpd serve` as a user who may not write the data directory or its myftpd.lock: the refusal says what has to be
// writable, where it gave SQLite's bare "unable to open database file" or "attempt to write a readonly database".
// Needs root, to run the server as another user.
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MYFTPD_BIN, runMyftpd as myftpd, tempDir } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

const NOBODY = 65534;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.runIf(process.getuid?.() === 0)("a data directory the server may not write", () => {
  it("is refused with exit 1 and a message saying what must be writable", async () => {
    const data = tempDir("myftp-lockperm-");
    dirs.push(data);
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    chmodSync(data, 0o755);
    const lock = path.join(data, "myftpd.lock");
    const serveAsNobody = () =>
      runProcess(
        "setpriv",
        [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", process.execPath, MYFTPD_BIN, "serve", "--data", data, "--port", "0", "--host", "127.0.0.1"],
        { timeoutMs: 15_000 },
      );
    // No lock file yet, a lock file nobody may open, one nobody may write but in a directory it may not write.
    for (const mode of [null, 0o600, 0o666]) {
      rmSync(lock, { force: true });
      if (mode !== null) {
        writeFileSync(lock, "");
        chmodSync(lock, mode);
      }
      const r = await serveAsNobody();
      expect(r.code, `lock ${mode?.toString(8) ?? "missing"}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(lock);
      expect(r.stderr).toMatch(/the data directory and this file must be writable by the user myftpd runs as/);
    }
  });
});
