// An empty --data (say `--data "$DATA"` with DATA unset) is refused by the user commands and `cert` with exit code 2,
// as `serve` refuses it: it used to be taken as the current directory, which `user add` and `cert` then turned into a
// data directory (users.db, home/, tls/).
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MYFTPD_BIN, tempDir } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("an empty --data", () => {
  it("is refused by every user command and cert, and nothing is created in the current directory", async () => {
    const cwd = tempDir("myftp-emptydata-");
    dirs.push(cwd);
    const commands = [
      ["user", "add", "alice", "--password-stdin"],
      ["user", "list"],
      ["user", "passwd", "alice", "--password-stdin"],
      ["user", "set", "alice", "--quota", "1MB"],
      ["user", "del", "alice"],
      ["user", "rescan", "--all"],
      ["cert", "--host", "localhost"],
    ];
    for (const value of ["", "  "]) {
      for (const cmd of commands) {
        const r = await runProcess(process.execPath, [MYFTPD_BIN, ...cmd, "--data", value], { cwd, input: "pw\n" });
        expect(r.code, `${cmd.join(" ")} --data ${JSON.stringify(value)}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(/--data: "data" must be a path/);
      }
      const serve = await runProcess(process.execPath, [MYFTPD_BIN, "serve", "--port", "0", "--data", value], { cwd });
      expect(serve.code).toBe(2);
    }
    expect(readdirSync(cwd)).toEqual([]);
    // A relative --data is still taken from the current directory.
    mkdirSync(path.join(cwd, "sub"));
    const add = await runProcess(process.execPath, [MYFTPD_BIN, "user", "add", "alice", "--password-stdin", "--data", "sub"], { cwd, input: "pw\n" });
    expect(add.code, add.stderr).toBe(0);
    expect(readdirSync(path.join(cwd, "sub"))).toContain("users.db");
  });
});
