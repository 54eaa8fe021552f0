// `myftpd user add/set --home` with a name longer than 255 bytes, or a path longer than 4095: refused with exit
// code 2 and a short message before the password is read, and nothing changes (it was mkdir's ENAMETOOLONG, with
// the whole path, and exit code 1).
import { existsSync, rmSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { runMyftpd as myftpd, tempDir } from "../helpers/myftpd.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("a home whose path is too long", () => {
  it("is refused by user add and user set with exit 2, and nothing changes", async () => {
    const top = tempDir("myftp-longhome-");
    dirs.push(top);
    const data = path.join(top, "data");
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw\n")).code).toBe(0);
    const cases: [string, RegExp][] = [
      [path.join(top, "x".repeat(256)), /too long: a name in it is 256 bytes long/],
      [path.join(top, ...Array.from({ length: 450 }, () => "abcdefghi")), /too long: it is \d+ bytes long/],
    ];
    for (const [home, msg] of cases) {
      for (const args of [["add", "carol", "--home", home], ["add", "carol", "--home", home, "--password-stdin"], ["set", "bob", "--home", home]]) {
        const r = await myftpd(["user", ...args, "--data", data], "pw\n");
        expect(r.code, `${args[0]}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(msg);
        expect(r.stderr.length).toBeLessThan(600);
      }
    }
    // 255 bytes is a name the file system takes.
    const ok = await myftpd(["user", "add", "dave", "--home", path.join(top, "d".repeat(255)), "--data", data, "--password-stdin"], "pw\n");
    expect(ok.code, ok.stderr).toBe(0);
    const store = new SqliteUserStore(path.join(data, "users.db"));
    try {
      expect((await store.list()).map((u) => u.name)).toEqual(["bob", "dave"]);
      expect((await store.get("bob"))!.home).toBe(path.join(data, "home", "bob"));
    } finally {
      store.close();
    }
    expect(existsSync(path.join(top, "abcdefghi"))).toBe(false);
  });
});
