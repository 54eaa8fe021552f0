// A data directory this user cannot search (mode 0700, another owner): the user commands say that the store there
// cannot be read (exit code 1), where they said the directory had no user store (exit code 2), which sends the
// operator to check a --data that was right. Needs root, to run the commands as another user.
import { chmodSync, rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MYFTPD_BIN, runMyftpd as myftpd, tempDir } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

const NOBODY = 65534;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.runIf(process.getuid?.() === 0)("a data directory another user cannot search", () => {
  it("is reported as unreadable by the user commands, not as holding no user store", async () => {
    const top = tempDir("myftp-unsearchable-");
    dirs.push(top);
    chmodSync(top, 0o755);
    const data = path.join(top, "data");
    expect((await myftpd(["user", "add", "alice", "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    chmodSync(data, 0o700);
    const asNobody = (args: string[], dir = data) =>
      runProcess("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", process.execPath, MYFTPD_BIN, ...args, "--data", dir]);
    for (const cmd of [["user", "list"], ["user", "del", "alice"], ["user", "rescan", "--all"]]) {
      const r = await asNobody(cmd);
      expect(r.code, `${cmd.join(" ")}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(`cannot read the user store ${path.join(data, "users.db")}`);
      expect(r.stderr).not.toMatch(/has no user store/);
    }
    // A directory that really has none is still told apart.
    const none = await asNobody(["user", "list"], path.join(top, "none"));
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/has no user store/);
    const list = await myftpd(["user", "list", "--data", data]);
    expect(list.stdout).toMatch(/^alice /m);
  });
});
