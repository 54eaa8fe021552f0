// A users.db that is not an SQLite database (damaged, or another file put there): serve and the user commands name
// the file and say what to do, where they printed SQLite's bare "file is not a database"; the file is left as it is.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MYFTPD_BIN, tempDir } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("a user store that is not a database", () => {
  it("is named in the refusal of serve and of every user command, and left untouched", async () => {
    const data = tempDir("myftp-damaged-");
    dirs.push(data);
    const store = path.join(data, "users.db");
    const junk = "this is not an SQLite file\n".repeat(20);
    writeFileSync(store, junk, { mode: 0o600 });
    const commands = [
      ["serve", "--port", "0", "--host", "127.0.0.1", "--log-level", "silent"],
      ["user", "list"],
      ["user", "add", "alice", "--password-stdin"],
      ["user", "set", "alice", "--quota", "1MB"],
      ["user", "rescan", "--all"],
    ];
    for (const cmd of commands) {
      const r = await runProcess(process.execPath, [MYFTPD_BIN, ...cmd, "--data", data], { input: "pw\n", timeoutMs: 15_000 });
      expect(r.code, `${cmd.join(" ")}: ${r.stderr}`).toBe(1);
      expect(r.stderr, cmd.join(" ")).toContain(`the user store ${store} is damaged or not a user store`);
    }
    expect(readFileSync(store, "utf8")).toBe(junk);
  });
});
