// Transfers that go wrong half-way must never leave something a later run takes for a complete file, nor splice our
// bytes onto a partial someone else wrote; and --limit-rate holds for a whole command, not for each file alone.
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startPyftpd, type PeerServer } from "../helpers/peers.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { sha256File } from "../helpers/util.js";
import { assertBuilt, collect, killAll, makeFile, runMyftp, sizeOf, spawnMyftp, tempDir, waitFor } from "./cli-helpers.js";

const MiB = 1024 * 1024;
const USER = { name: "alice", password: "s3cret alice" };

describe("segmented download set-up against a server without HASH", () => {
  let srv: PeerServer;
  let work: { path: string; remove(): Promise<void> };

  beforeAll(async () => {
    assertBuilt();
    srv = await startPyftpd();
    work = await tempDir();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await srv?.stop();
    await work?.remove();
  });

  it("leaves no full-size file behind when the segment state cannot be written, so the next get is not fooled", async () => {
    const size = 2 * MiB + 4321;
    await makeFile(join(srv.home, "big.bin"), size);
    const dst = join(work.path, "big.bin");
    const state = `${dst}.myftp-segments`;
    // A directory where the state file goes: writing the state fails, as on a full disk.
    await mkdir(state);
    const failed = await runMyftp(["get", "-n", "3", srv.url(undefined, "big.bin"), dst]);
    expect(failed.code).toBe(8);
    expect(failed.stderr).toMatch(/^myftp: get big\.bin: is a directory: .*big\.bin\.myftp-segments.*\n$/);
    // Nothing this run created stays: no file of zeros the size of the remote one, no half-written state.
    expect(await sizeOf(dst)).toBe(-1);
    expect((await readdir(work.path)).sort()).toEqual(["big.bin.myftp-segments"]);
    await rmdir(state);

    const again = await runMyftp(["get", srv.url(undefined, "big.bin"), dst]);
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain("already complete");
    expect(await sha256File(dst)).toBe(await sha256File(join(srv.home, "big.bin")));
  });

  it("leaves a local file it did not create as it was when setting up fails", async () => {
    const size = MiB;
    await makeFile(join(srv.home, "kept.bin"), size);
    const dst = join(work.path, "kept.bin");
    const mine = randomBytes(1000);
    await writeFile(dst, mine);
    await mkdir(`${dst}.myftp-segments`);
    const failed = await runMyftp(["get", "-n", "2", srv.url(undefined, "kept.bin"), dst]);
    expect(failed.code).toBe(8);
    // Never sized before the state was written: the local file is as it was.
    expect(await sizeOf(dst)).toBe(mine.length);
    await rmdir(`${dst}.myftp-segments`);
  });
});

describe("retries next to other sessions on myftpd", () => {
  let s: RunningServer;
  let work: { path: string; remove(): Promise<void> };
  const raws: RawFtp[] = [];

  beforeAll(async () => {
    assertBuilt();
    s = await startServer([{ ...USER, quota: null }]);
    work = await tempDir();
  });
  afterEach(async () => {
    killAll();
    for (const r of raws.splice(0)) await r.close().catch(() => undefined);
  });
  afterAll(async () => {
    killAll();
    await s?.close();
    await work?.remove();
  });

  const url = (p: string) => s.url(USER.name, USER.password, `/${p}`);
  const home = () => s.homeOf(USER.name);

  it("does not splice a retried upload onto a partial another session wrote while ours was refused (450)", async () => {
    const src = join(work.path, "shared.bin");
    await makeFile(src, 2 * MiB);
    // Another session of the same user is uploading other bytes to the same name and keeps it busy.
    const other = await RawFtp.login(s.port, USER.name, USER.password, { type: "I" });
    raws.push(other);
    const data = await other.epsv();
    expect((await other.cmd("STOR shared.bin")).code).toBe(150);
    const foreign = randomBytes(300_000);
    data.write(foreign);
    expect(await waitFor(async () => (await sizeOf(join(home(), "shared.bin"))) === foreign.length)).toBe(true);

    const child = spawnMyftp(["put", "--retries", "5", src, url("shared.bin")]);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const result = collect(child, 60_000);
    // Our first attempt is refused as busy; then the other upload ends, leaving its partial behind.
    expect(await waitFor(async () => /retry 1\//.test(out), 20_000)).toBe(true);
    await new Promise<void>((resolve) => data.end(() => resolve()));
    expect((await other.read(10_000)).code).toBe(226);

    const r = await result;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/put .*shared\.bin: the server is busy \(450 .*\); retry 1\/5/);
    expect(r.stdout).not.toContain("connection lost");
    expect(r.stdout).not.toMatch(/resuming at byte/);
    expect(await sha256File(join(home(), "shared.bin"))).toBe(await sha256File(src));
  });

  it("shares --limit-rate among the files mirror -P moves at once", async () => {
    const tree = join(home(), "limited");
    await mkdir(tree);
    for (const n of ["a", "b", "c", "d"]) await makeFile(join(tree, `${n}.bin`), MiB);
    const dst = join(work.path, "limited");
    const started = Date.now();
    const r = await runMyftp(["mirror", "-P", "4", "--limit-rate", "1M", url("limited"), dst]);
    const seconds = (Date.now() - started) / 1000;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^mirror: 4 transferred .*, 0 unchanged$/m);
    // 4 MiB at 1 MiB/s for the whole command: about four seconds (each file alone at 1 MiB/s would take one).
    expect(seconds).toBeGreaterThan(3.3);
    for (const n of ["a", "b", "c", "d"]) expect(await sha256File(join(dst, `${n}.bin`))).toBe(await sha256File(join(tree, `${n}.bin`)));
  });
});
