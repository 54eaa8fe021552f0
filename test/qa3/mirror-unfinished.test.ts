// A killed `get -n N` leaves its local file at full size with ranges still zeros, and LOCAL.myftp-segments beside it.
// `mirror` compares sizes and times only: such a file in its target tree looked complete and unchanged, so the mirror
// reported success and kept the holes. It must continue (or redo) the download instead; and `mirror --reverse` must
// not upload such a file with its holes (nor, with --delete, take it as gone from the source).
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { assertBuilt, killAll, runMyftp, sizeOf, tempDir, unfinishedDownload } from "../client/cli-helpers.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const SIZE = 1024 * 1024;

describe("mirror and a file a killed segmented download left unfinished", () => {
  let srv: RunningServer;
  let work: { path: string; remove(): Promise<void> };

  beforeAll(async () => {
    assertBuilt();
    srv = await startServer();
    work = await tempDir("myftp-qa3-mirror-");
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await srv?.close();
    await work?.remove();
  });

  it("mirror fetches what the unfinished file lacks instead of taking it as unchanged", async () => {
    const home = srv.homeOf("alice");
    mkdirSync(join(home, "tree"), { recursive: true });
    const a = randomBytes(SIZE);
    const b = randomBytes(SIZE);
    writeFileSync(join(home, "tree", "a.bin"), a);
    writeFileSync(join(home, "tree", "b.bin"), b);
    const target = join(work.path, "down");

    const first = await runMyftp(["mirror", srv.url("alice", "secret", "/tree"), target]);
    expect(first.code, first.stderr).toBe(0);
    // b.bin as a killed `myftp get -n 2 URL/tree/b.bin down/b.bin` leaves it (its time newer than the server's).
    unfinishedDownload(join(target, "b.bin"), "tree/b.bin", b, 100_000);

    const again = await runMyftp(["mirror", srv.url("alice", "secret", "/tree"), target]);
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("mirror: 1 transferred");
    expect(sha(readFileSync(join(target, "b.bin")))).toBe(sha(b));
    expect(sha(readFileSync(join(target, "a.bin")))).toBe(sha(a));
    expect(await sizeOf(join(target, "b.bin.myftp-segments"))).toBe(-1);
    expect((await readdir(target)).sort()).toEqual(["a.bin", "b.bin"]);
  });

  it("mirror --reverse --delete neither uploads the unfinished file with its holes nor deletes the server's copy", async () => {
    const home = srv.homeOf("alice");
    mkdirSync(join(home, "up"), { recursive: true });
    const c = randomBytes(SIZE);
    writeFileSync(join(home, "up", "c.bin"), c);
    const source = join(work.path, "src");
    mkdirSync(source, { recursive: true });
    const d = randomBytes(1000);
    writeFileSync(join(source, "d.bin"), d);
    // c.bin here is an unfinished download of another content of the same size.
    unfinishedDownload(join(source, "c.bin"), "up/c.bin", randomBytes(SIZE), 1000);

    const r = await runMyftp(["mirror", "--reverse", "--delete", source, srv.url("alice", "secret", "/up")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("skipped c.bin (an unfinished segmented download");
    expect(sha(readFileSync(join(home, "up", "c.bin")))).toBe(sha(c));
    expect(sha(readFileSync(join(home, "up", "d.bin")))).toBe(sha(d));
    expect((await readdir(join(home, "up"))).sort()).toEqual(["c.bin", "d.bin"]);
  });
});
