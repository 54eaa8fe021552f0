// A killed `get -n N` leaves its local file at full size with zeros where ranges are still missing, and
// LOCAL.myftp-segments beside it. `put`, `mput` and the one-shot `put` sent such a file as it was, holes included;
// they now refuse it (exit 8, naming the file and the way out), as `mirror --reverse` skips it, and mput goes on with
// the other files. A record the client cannot use (not a valid segment record) does not stop an upload.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, runMyftp, sizeOf, unfinishedDownload } from "./cli-helpers.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const SIZE = 600 * 1024;

/** The refusal's text for LOCAL (without the "myftp: ACTION: " the caller puts before it). */
const refusal = (local: string) =>
  `not uploaded: ${local} is an unfinished segmented download (${local}.myftp-segments beside it lists ranges still missing); ` +
  `finish it with myftp get into the same local path, or remove ${local}.myftp-segments if the file is known to be whole`;

describe("put and mput of a file a killed segmented download left unfinished", () => {
  let srv: RunningServer | undefined;
  const work = clientWorkDir(async () => {
    await srv?.close();
  });
  const server = async () => (srv ??= await startServer());

  /** A fresh local directory and a fresh remote directory `name` in alice's home. */
  const dirs = async (name: string) => {
    const s = await server();
    const local = join(work.path, name);
    const remote = join(s.homeOf("alice"), name);
    mkdirSync(local, { recursive: true });
    mkdirSync(remote, { recursive: true });
    return { s, local, remote };
  };

  it("one-shot put refuses it: exit 8, the file and the way out named, nothing uploaded or changed", async () => {
    const { s, local, remote } = await dirs("oneshot");
    unfinishedDownload(join(local, "u.bin"), "oneshot/u.bin", randomBytes(SIZE), 1000);

    const intoDir = await runMyftp(["put", "u.bin", s.url("alice", "secret", "/oneshot/")], { cwd: local });
    expect(intoDir.stderr).toBe(`myftp: put u.bin: ${refusal("u.bin")}\n`);
    expect(intoDir.code).toBe(8);
    expect(await readdir(remote)).toEqual([]);
    // Refused before logging in: a wrong password makes no difference.
    const noLogin = await runMyftp(["put", "u.bin", s.url("alice", "wrong", "/oneshot/")], { cwd: local });
    expect(noLogin.stderr).toBe(`myftp: put u.bin: ${refusal("u.bin")}\n`);
    expect(noLogin.code).toBe(8);

    // Over a whole copy already on the server: that copy stays as it was.
    const whole = randomBytes(SIZE);
    writeFileSync(join(remote, "u.bin"), whole);
    const over = await runMyftp(["put", join(local, "u.bin"), s.url("alice", "secret", "/oneshot/u.bin")]);
    expect(over.stderr).toBe(`myftp: put ${join(local, "u.bin")}: ${refusal(join(local, "u.bin"))}\n`);
    expect(over.code).toBe(8);
    expect(sha(readFileSync(join(remote, "u.bin")))).toBe(sha(whole));
    expect(await readdir(remote)).toEqual(["u.bin"]);
    // The local file and its record are left for `get` to finish.
    expect(await sizeOf(join(local, "u.bin"))).toBe(SIZE);
    expect(await sizeOf(join(local, "u.bin.myftp-segments"))).toBeGreaterThan(0);
  });

  it("mput uploads the whole files and refuses the unfinished one, counted as failed (exit 8)", async () => {
    const { s, local, remote } = await dirs("many");
    const a = randomBytes(5000);
    const c = randomBytes(7000);
    writeFileSync(join(local, "a.bin"), a);
    unfinishedDownload(join(local, "b.bin"), "many/b.bin", randomBytes(SIZE), 2000);
    writeFileSync(join(local, "c.bin"), c);

    const r = await runMyftp([s.url("alice", "secret", "/many")], { cwd: local, stdin: "mput *.bin\n" });
    expect(r.code).toBe(8);
    // Named where it failed, then counted in the one line on standard error.
    expect(r.stdout).toContain(`\nmput b.bin: put b.bin: ${refusal("b.bin")}\n`);
    expect(r.stderr).toBe(`myftp: mput: 1 of 3 failed; first: mput b.bin: put b.bin: ${refusal("b.bin")}\n`);
    expect(r.stdout).toMatch(/put a\.bin: .*verified/);
    expect(r.stdout).toMatch(/put c\.bin: .*verified/);
    expect((await readdir(remote)).sort()).toEqual(["a.bin", "c.bin"]);
    expect(sha(readFileSync(join(remote, "a.bin")))).toBe(sha(a));
    expect(sha(readFileSync(join(remote, "c.bin")))).toBe(sha(c));
  });

  it("the shell's put refuses it and the next command goes on", async () => {
    const { s, local, remote } = await dirs("shell");
    unfinishedDownload(join(local, "u.bin"), "shell/u.bin", randomBytes(SIZE), 1000);
    const w = randomBytes(3000);
    writeFileSync(join(local, "w.bin"), w);

    const r = await runMyftp([s.url("alice", "secret", "/shell")], { cwd: local, stdin: "put u.bin\nput u.bin other.bin\nput w.bin\n" });
    expect(r.code).toBe(8);
    expect(r.stderr).toBe(`myftp: put u.bin: ${refusal("u.bin")}\n`.repeat(2));
    expect(r.stdout).toMatch(/put w\.bin: .*verified/);
    expect(await readdir(remote)).toEqual(["w.bin"]);
    expect(sha(readFileSync(join(remote, "w.bin")))).toBe(sha(w));
  });

  it("a record that is not a valid segment record does not stop the upload", async () => {
    const { s, local, remote } = await dirs("stale");
    const content = randomBytes(SIZE);
    writeFileSync(join(local, "f.bin"), content);
    // A range whose position lies past its end, and a cut-off record: neither is one a `get` could continue from.
    writeFileSync(
      join(local, "f.bin.myftp-segments"),
      JSON.stringify({ version: 1, remote: "stale/f.bin", size: SIZE, segments: [{ start: 0, end: SIZE, pos: SIZE + 1 }] }),
    );
    writeFileSync(join(local, "g.bin"), content);
    writeFileSync(join(local, "g.bin.myftp-segments"), '{"version":1,"remote":"stale/g.bin","si');

    const one = await runMyftp(["put", "f.bin", s.url("alice", "secret", "/stale/")], { cwd: local });
    expect(one.stderr).toBe("");
    expect(one.code).toBe(0);
    const shell = await runMyftp([s.url("alice", "secret", "/stale")], { cwd: local, stdin: "mput g.bin\n" });
    expect(shell.stderr).toBe("");
    expect(shell.code).toBe(0);
    expect((await readdir(remote)).sort()).toEqual(["f.bin", "g.bin"]);
    expect(sha(readFileSync(join(remote, "f.bin")))).toBe(sha(content));
    expect(sha(readFileSync(join(remote, "g.bin")))).toBe(sha(content));
  });

  it("put - reads standard input whatever lies beside a local file named -", async () => {
    const { s, local, remote } = await dirs("stdin");
    unfinishedDownload(join(local, "-"), "stdin/-", randomBytes(SIZE), 1000);
    const r = await runMyftp(["put", "-", s.url("alice", "secret", "/stdin/in.txt")], { cwd: local, stdin: "from stdin\n" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(readFileSync(join(remote, "in.txt"), "utf8")).toBe("from stdin\n");
  });
});
