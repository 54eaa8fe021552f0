// A file replaced by an overwrite (STOR over it) or by RNTO over it is freed on the thread pool, not inline: its
// content first gets a second, temporary name. Whatever the path, the result is the new content under the name, the
// old content gone from the disk, and no temporary name left behind; a replaced file that another name still links
// keeps its content there.

import { randomBytes } from "node:crypto";
import { linkSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalStorage } from "../../src/storage/local.js";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { diskBytes } from "../helpers/util.js";

describe("replacing a file frees the old one off the event loop", () => {
  let srv: RunningServer | null = null;
  afterEach(async () => {
    await srv?.close();
    srv = null;
  });

  it("STOR over a file and RNTO over a file leave the new content, free the old, and no temporary names", async () => {
    srv = await startServer();
    const home = srv.homeOf("alice");
    const c = await RawFtp.login(srv.port, "alice", "secret");
    await c.expect("TYPE I", 200);
    const first = randomBytes(3 << 20);
    const second = randomBytes(1 << 20);
    expect((await c.store("STOR a.bin", first)).final.code).toBe(226);
    expect((await c.store("STOR a.bin", second)).final.code).toBe(226);
    expect(readFileSync(path.join(home, "a.bin")).equals(second)).toBe(true);

    const third = randomBytes(2 << 20);
    expect((await c.store("STOR b.bin", third)).final.code).toBe(226);
    await c.expect("RNFR b.bin", 350);
    await c.expect("RNTO a.bin", 250);
    expect(readFileSync(path.join(home, "a.bin")).equals(third)).toBe(true);
    expect(readdirSync(home).sort()).toEqual(["a.bin"]);
    expect(diskBytes(home)).toBe(third.length);
    expect(Number((await c.expect("AVBL", 213)).text)).toBe(1024 ** 3 - third.length);
    await c.quit();
  });

  it("a replaced file with another name keeps its content under that name", async () => {
    const dir = tempDir("myftp-replace-");
    const storage = await LocalStorage.open(dir);
    writeFileSync(path.join(dir, "old"), "old content");
    linkSync(path.join(dir, "old"), path.join(dir, "other-name"));
    writeFileSync(path.join(dir, "new"), "new content");
    expect(await storage.rename("/new", "/old")).toBe("old content".length);
    expect(readFileSync(path.join(dir, "old"), "utf8")).toBe("new content");
    expect(readFileSync(path.join(dir, "other-name"), "utf8")).toBe("old content");
    expect(statSync(path.join(dir, "other-name")).nlink).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(["old", "other-name"]);
    rmSync(dir, { recursive: true, force: true });
  });
});
