// myftp where servers differ: a missing directory that lists as empty, a file named where a directory is wanted,
// and other answers a client must not misread. Real servers (myftpd, vsftpd) on 127.0.0.1 port 0.
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { startVsftpd, type VsftpdServer } from "../helpers/peers.js";
import { assertBuilt, killAll, runMyftp, tempDir } from "./cli-helpers.js";

const USER = { name: "alice", password: "s3cret alice" };

describe("myftp where servers differ", () => {
  let my: RunningServer;
  let vs: VsftpdServer;
  let work: { path: string; remove(): Promise<void> };

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir();
    my = await startServer([{ ...USER, quota: null }]);
    vs = await startVsftpd();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await my?.close();
    await vs?.stop();
    await work?.remove();
  });

  const myUrl = (p = "") => my.url(USER.name, USER.password, `/${p}`);

  /** A local tree of three files, to be kept safe. */
  async function victim(name: string): Promise<string> {
    const dir = join(work.path, name);
    await mkdir(join(dir, "sub"), { recursive: true });
    await writeFile(join(dir, "a.txt"), "a\n");
    await writeFile(join(dir, "f.bin"), "f\n");
    await writeFile(join(dir, "sub", "b.txt"), "b\n");
    return dir;
  }

  async function filesIn(dir: string): Promise<string[]> {
    return (await readdir(dir, { recursive: true })).map(String).sort();
  }

  it("mirror --delete from a file or a missing directory fails with 550 and deletes nothing", async () => {
    await writeFile(join(my.homeOf(USER.name), "f.bin"), "f\n");
    await writeFile(join(vs.home, "f.bin"), "f\n");
    const cases = [
      [myUrl("f.bin"), /^myftp: mirror f\.bin: the server refused: .*\(550\)\n$/],
      [vs.url("f.bin"), /^myftp: mirror f\.bin: the server refused: .*\(550\)\n$/],
      [vs.url("no_such_dir"), /^myftp: mirror no_such_dir: the server refused: .*\(550\)\n$/],
    ] as const;
    for (const [i, [src, err]] of cases.entries()) {
      const dst = await victim(`victim-${i}`);
      const before = await filesIn(dst);
      const r = await runMyftp(["mirror", "--delete", src, dst]);
      expect(r.stderr).toMatch(err);
      expect(r.code).toBe(5);
      expect(r.stdout).not.toContain("deleted");
      expect(await filesIn(dst)).toEqual(before);
    }
    // A missing source without --delete makes no empty local directory either.
    const fresh = join(work.path, "fresh");
    const r = await runMyftp(["mirror", vs.url("no_such_dir"), fresh]);
    expect(r.code).toBe(5);
    await expect(readdir(fresh)).rejects.toThrow(/ENOENT/);
  });
});
