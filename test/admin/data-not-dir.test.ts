// A data directory that is a file (or lies below one): `serve`, the user commands and `cert` say so with exit code 2
// and change nothing, where they printed a bare EEXIST/ENOTDIR from mkdir or lstat with exit code 1.
import { readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MYFTPD_BIN, tempDir } from "../helpers/myftpd.js";
import { runProcess } from "../helpers/util.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("a data directory that is not a directory", () => {
  it("is refused by serve, user and cert with exit 2 and a message naming the file", async () => {
    const top = tempDir("myftp-datafile-");
    dirs.push(top);
    const file = path.join(top, "notadir");
    writeFileSync(file, "keep me\n");
    const link = path.join(top, "link");
    symlinkSync(file, link);
    const cases: [string, RegExp][] = [
      [file, /the data directory .*notadir is not a directory/],
      [link, /the data directory .*link is not a directory/],
      [path.join(file, "sub", "deeper"), /the data directory .*deeper cannot be made, since .*notadir is not a directory/],
    ];
    const commands = [
      ["serve", "--port", "0", "--host", "127.0.0.1"],
      ["user", "add", "alice", "--password-stdin"],
      ["user", "list"],
      ["user", "rescan", "--all"],
      ["cert", "--host", "localhost"],
    ];
    for (const [data, msg] of cases) {
      for (const cmd of commands) {
        const r = await runProcess(process.execPath, [MYFTPD_BIN, ...cmd, "--data", data], { input: "pw\n", timeoutMs: 15_000 });
        expect(r.code, `${cmd.join(" ")} --data ${data}: ${r.stderr}`).toBe(2);
        expect(r.stderr, cmd.join(" ")).toMatch(msg);
      }
    }
    expect(readFileSync(file, "utf8")).toBe("keep me\n");
  });
});
