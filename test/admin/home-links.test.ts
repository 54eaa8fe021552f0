// `myftpd user add/set --home` through a symbolic link that leads nowhere (a missing target, a loop), as the home or
// a directory above it: refused with exit code 2 and a message naming the link, before any password is read, and
// nothing changes (it was a bare "ENOENT: ... mkdir" with exit code 1).
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteUserStore } from "../../src/users/sqlite-store.js";
import { runMyftpd as myftpd, tempDir } from "../helpers/myftpd.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function users(data: string) {
  const store = new SqliteUserStore(path.join(data, "users.db"));
  try {
    return await store.list();
  } finally {
    store.close();
  }
}

describe("a home through a broken symbolic link", () => {
  it("is refused by user add and user set with exit 2, naming the link, and nothing changes", async () => {
    const top = tempDir("myftp-homelinks-");
    dirs.push(top);
    const data = path.join(top, "data");
    const links = path.join(top, "links");
    mkdirSync(links);
    symlinkSync(path.join(top, "missing-target"), path.join(links, "dangling"));
    symlinkSync("loop", path.join(links, "loop"));
    expect((await myftpd(["user", "add", "bob", "--data", data, "--password-stdin"], "pw\n")).code).toBe(0);

    const cases: [string, RegExp][] = [
      [path.join(links, "dangling"), /dangling is a symbolic link to .*missing-target, which does not exist/],
      [path.join(links, "dangling", "sub"), /dangling is a symbolic link to .*missing-target, which does not exist/],
      [path.join(links, "loop"), /loop is a symbolic link to loop, a loop of links/],
    ];
    for (const [home, msg] of cases) {
      // Without --password-stdin and without a terminal: the home is judged before the password would be read.
      for (const args of [["add", "carol", "--home", home], ["add", "carol", "--home", home, "--password-stdin"], ["set", "bob", "--home", home]]) {
        const r = await myftpd(["user", ...args, "--data", data], "pw\n");
        expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
        expect(r.stderr, args.join(" ")).toMatch(msg);
        expect(r.stderr).toMatch(/nothing changed/);
      }
    }
    const rows = await users(data);
    expect(rows.map((u) => u.name)).toEqual(["bob"]);
    expect(rows[0]!.home).toBe(path.join(data, "home", "bob"));
    expect(existsSync(path.join(top, "missing-target"))).toBe(false);
    expect(readdirSync(path.join(data, "home"))).toEqual(["bob"]);
  });
});
