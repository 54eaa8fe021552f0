// The client test matrix, run against every server we have (one describe block per server).
// Servers are real processes on 127.0.0.1 port 0; files are random; results are checked by SHA-256.
import { randomBytes } from "node:crypto";
import { appendFile, mkdir, open, readFile, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort, sha256File } from "../helpers/util.js";
import { assertBuilt, killAll, makeFile, runAndKill, runMyftp, sizeOf, tempDir, waitFor } from "./cli-helpers.js";

export interface ServerUnderTest {
  /** ftp:// URL for the test user, with password, for a path relative to the user's home. */
  url(path?: string): string;
  /** Same without the password (user@host:port). */
  urlNoPassword(path?: string): string;
  readonly user: string;
  readonly password: string;
  readonly host: string;
  readonly port: number;
  /** The user's home directory on disk. */
  readonly home: string;
  stop(): Promise<void>;
}

export interface ServerCaps {
  /** HASH (and RANG) offered: prefix checks and hash verification. */
  readonly hash: boolean;
}

const MiB = 1024 * 1024;

export function defineClientMatrix(name: string, start: () => Promise<ServerUnderTest>, caps: ServerCaps): void {
  describe(`myftp against ${name}`, () => {
    let srv: ServerUnderTest;
    let work: { path: string; remove(): Promise<void> };
    const verifiedWord = caps.hash ? "SHA-256 verified" : "size verified";

    beforeAll(async () => {
      assertBuilt();
      srv = await start();
      work = await tempDir();
    });
    afterEach(() => killAll());
    afterAll(async () => {
      killAll();
      await srv?.stop();
      await work?.remove();
    });

    const local = (...p: string[]) => join(work.path, ...p);
    const remoteDisk = (...p: string[]) => join(srv.home, ...p);

    it("gets and puts files of 0 B, 1 MiB and 50 MiB intact", async () => {
      for (const [label, size] of [["zero", 0], ["one", MiB], ["fifty", 50 * MiB]] as const) {
        const src = local(`${label}-src.bin`);
        await makeFile(src, size);
        const put = await runMyftp(["put", src, srv.url(`${label}.bin`)]);
        expect(put.stderr).toBe("");
        expect(put.code).toBe(0);
        expect(put.stdout).toContain(`put ${src}:`);
        expect(put.stdout).toContain(verifiedWord);
        expect(await sha256File(remoteDisk(`${label}.bin`))).toBe(await sha256File(src));
        const dst = local(`${label}-dst.bin`);
        const get = await runMyftp(["get", srv.url(`${label}.bin`), dst]);
        expect(get.stderr).toBe("");
        expect(get.code).toBe(0);
        expect(get.stdout).toContain(verifiedWord);
        expect(await sizeOf(dst)).toBe(size);
        expect(await sha256File(dst)).toBe(await sha256File(src));
      }
      if (!caps.hash) {
        const r = await runMyftp(["get", srv.url("one.bin"), local("one-again.bin")]);
        expect(r.stdout.match(/no HASH command; transfers are verified by size only/g)).toHaveLength(1);
      }
    });

    it("runs every shell command from a script on stdin", async () => {
      const dir = local("shell");
      await mkdir(dir);
      await makeFile(join(dir, "up.bin"), 200_000);
      await writeFile(join(dir, "a.txt"), "alpha\n");
      await writeFile(join(dir, "b.txt"), "bravo\n");
      await mkdir(remoteDisk("sh"));
      await writeFile(remoteDisk("sh", "x1.log"), "x1\n");
      await writeFile(remoteDisk("sh", "x2.log"), "x2\n");
      await writeFile(remoteDisk("sh", "keep.dat"), "keep\n");
      const script = [
        "# comment lines and blank lines are skipped",
        "",
        "help",
        "help get",
        "pwd",
        "ls",
        "cd sh",
        "pwd",
        "ls",
        "dir",
        "mkdir new1 new2",
        "mdir new3",
        "rmdir new2",
        "rmdir new3",
        "put up.bin",
        "put a.txt new1/",
        "mput *.txt",
        "mv b.txt renamed.txt",
        "ls new1",
        "get up.bin down.bin",
        "mget x*.log",
        "rm a.txt",
        "lpwd",
        "lls",
        "lcd sub",
        "lpwd",
        "get keep.dat",
        "hash keep.dat",
        "quota",
        "mirror new1 mirrored",
        "cd ..",
        "ls sh",
        "bye",
        "pwd",
      ].join("\n");
      await mkdir(join(dir, "sub"));
      const r = await runMyftp([srv.url()], { stdin: script, cwd: dir });
      const out = r.stdout;
      // help lists every command
      for (const c of ["open", "ls", "pwd", "cd", "mkdir", "rmdir", "rm", "mv", "get", "put", "mget", "mput", "lcd", "lpwd", "lls", "quota", "hash", "help", "quit", "mirror"])
        expect(out).toMatch(new RegExp(`^${c}\\b`, "m"));
      expect(out).toContain("(also: recv)");
      expect(out).toMatch(/^\/sh$/m);
      expect(out).toMatch(/^- +3 .* x1\.log$/m);
      expect(out).toMatch(/^- +5 .* keep\.dat$/m);
      const remoteNames = (await readdir(remoteDisk("sh"))).sort();
      expect(remoteNames).toEqual(["keep.dat", "new1", "renamed.txt", "up.bin", "x1.log", "x2.log"]);
      expect(await readdir(remoteDisk("sh", "new1"))).toEqual(["a.txt"]);
      expect(out).toMatch(/^- +6 .* a\.txt$/m);
      expect(await sha256File(join(dir, "down.bin"))).toBe(await sha256File(join(dir, "up.bin")));
      expect(await readFile(join(dir, "x1.log"), "utf8")).toBe("x1\n");
      expect(await readFile(join(dir, "x2.log"), "utf8")).toBe("x2\n");
      expect(await readFile(remoteDisk("sh", "renamed.txt"), "utf8")).toBe("bravo\n");
      expect(out).toContain(`${dir}\n`);
      expect(out).toMatch(/^- +200000 .* up\.bin$/m);
      expect(out).toContain(`${join(dir, "sub")}\n`);
      expect(await readFile(join(dir, "sub", "keep.dat"), "utf8")).toBe("keep\n");
      expect(await readFile(join(dir, "sub", "mirrored", "a.txt"), "utf8")).toBe("alpha\n");
      expect(out).toMatch(/^mirror: 1 transferred .*, 0 unchanged$/m);
      expect(out).toMatch(/^d +\d+ .* sh\/$/m);
      if (caps.hash) {
        expect(out).toMatch(/^SHA-256 [0-9a-f]{64} keep\.dat$/m);
        expect(out).toMatch(/^available: \d+ bytes/m);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
      } else {
        // Both are refused by a server without HASH and AVBL/SITE QUOTA; the script goes on.
        expect(r.stderr).toMatch(/^myftp: hash keep\.dat: the server has no HASH command$/m);
        expect(r.stderr).toMatch(/^myftp: quota: the server reports no quota/m);
        expect(r.stderr.trim().split("\n")).toHaveLength(2);
        expect(r.code).toBe(5);
      }
      // "bye" ends the script: the pwd after it does not run.
      expect(out.trim().split("\n").at(-1)).toMatch(/ x2\.log$/);
    });

    it("opens and closes connections from a script", async () => {
      const r = await runMyftp([], { stdin: `pwd\nopen ${srv.url()}\npwd\nclose\npwd\nopen ${srv.url()}\npwd\nquit\n` });
      expect(r.stdout.split("\n").filter((l) => l === "/")).toHaveLength(2);
      expect(r.stdout.match(/^connected to ftp:\/\//gm)).toHaveLength(2);
      const errs = r.stderr.trim().split("\n");
      expect(errs).toEqual(["myftp: pwd: not connected (use: open ftp://user@host[:port])", "myftp: pwd: not connected (use: open ftp://user@host[:port])"]);
      expect(r.code).toBe(2);
    });

    it("reports failed script commands and exits non-zero, going on after each", async () => {
      await writeFile(remoteDisk("present.txt"), "here\n");
      const dir = local("fails");
      await mkdir(dir);
      const r = await runMyftp([srv.url()], { stdin: "frobnicate\nget no-such-file.bin\nget present.txt\ncd no-such-dir\npwd\n", cwd: dir });
      const errs = r.stderr.trim().split("\n");
      expect(errs).toHaveLength(3);
      expect(errs[0]).toBe("myftp: unknown command: frobnicate (try help)");
      expect(errs[1]).toMatch(/^myftp: get no-such-file\.bin: the server refused: .*\(550\)$/);
      expect(errs[2]).toMatch(/^myftp: cd: the server refused: .*\(550\)$/);
      expect(await readFile(join(dir, "present.txt"), "utf8")).toBe("here\n");
      expect(r.stdout).toMatch(/^\/$/m);
      expect(r.code).toBe(2);
    });

    it("resumes a download after the client was killed mid-way", async () => {
      const size = 16 * MiB;
      await makeFile(remoteDisk("resume-get.bin"), size);
      const dst = local("resume-get.bin");
      await runAndKill(["get", "--limit-rate", "8M", srv.url("resume-get.bin"), dst], async () => (await sizeOf(dst)) >= 3 * MiB);
      const partial = await sizeOf(dst);
      expect(partial).toBeGreaterThanOrEqual(3 * MiB);
      expect(partial).toBeLessThan(size);
      const r = await runMyftp(["get", srv.url("resume-get.bin"), dst]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const m = /resuming at byte (\d+) \((.*)\)/.exec(r.stdout);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBe(partial);
      expect(m![2]).toContain(caps.hash ? "checked by HASH" : "sizes only");
      expect(r.stdout).toMatch(/resumed at \d/);
      expect(await sha256File(dst)).toBe(await sha256File(remoteDisk("resume-get.bin")));
    });

    it("resumes an upload after the client was killed mid-way", async () => {
      const size = 16 * MiB;
      const src = local("resume-put.bin");
      await makeFile(src, size);
      const target = remoteDisk("resume-put.bin");
      await runAndKill(["put", "--limit-rate", "8M", src, srv.url("resume-put.bin")], async () => (await sizeOf(target)) >= 3 * MiB);
      // The server may still be writing what it had received.
      let last = -2;
      await waitFor(async () => {
        const now = await sizeOf(target);
        const stable = now === last;
        last = now;
        return stable;
      });
      const partial = await sizeOf(target);
      expect(partial).toBeGreaterThanOrEqual(3 * MiB);
      expect(partial).toBeLessThan(size);
      const r = await runMyftp(["put", src, srv.url("resume-put.bin")]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const m = /resuming at byte (\d+) with (REST\+STOR|APPE) \((.*)\)/.exec(r.stdout);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBe(partial);
      expect(m![3]).toContain(caps.hash ? "checked by HASH" : "sizes only");
      expect(await sha256File(target)).toBe(await sha256File(src));
    });

    it("does not trust a local partial file whose bytes differ from the remote file", async () => {
      const size = 2 * MiB;
      await makeFile(remoteDisk("prefix.bin"), size);
      const dst = local("prefix.bin");
      // A partial copy of the right length whose content is wrong.
      await makeFile(dst, MiB);
      const r = await runMyftp(["get", srv.url("prefix.bin"), dst]);
      expect(r.stderr).toBe("");
      if (caps.hash) {
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`the local file's first ${MiB} bytes differ from the remote file; starting over`);
        expect(await sha256File(dst)).toBe(await sha256File(remoteDisk("prefix.bin")));
      } else {
        // Without HASH only sizes can be compared, and the output says so.
        expect(r.stdout).toContain("sizes only");
        expect(r.code).toBe(0);
      }
    });

    it("transfers a file again when the other side changed it, even at the same size", async () => {
      const remoteFile = remoteDisk("same-size.bin");
      await makeFile(remoteFile, 200_000);
      const dst = local("same-size.bin");
      expect((await runMyftp(["get", srv.url("same-size.bin"), dst])).code).toBe(0);
      // The remote file is rewritten later with other bytes of the same length.
      await makeFile(remoteFile, 200_000);
      const later = new Date(Date.now() + 60_000);
      await utimes(remoteFile, later, later);
      const again = await runMyftp(["get", srv.url("same-size.bin"), dst]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(
        caps.hash
          ? "the local file's first 200000 bytes differ from the remote file; starting over"
          : "the remote file changed after the local copy was written; starting over",
      );
      expect(await sha256File(dst)).toBe(await sha256File(remoteFile));

      const src = local("same-size-up.bin");
      await makeFile(src, 150_000);
      expect((await runMyftp(["put", src, srv.url("same-size-up.bin")])).code).toBe(0);
      await makeFile(src, 150_000);
      const later2 = new Date(Date.now() + 120_000);
      await utimes(src, later2, later2);
      const up = await runMyftp(["put", src, srv.url("same-size-up.bin")]);
      expect(up.code).toBe(0);
      expect(up.stdout).toContain(
        caps.hash
          ? "the remote file's first 150000 bytes differ from the local file; starting over"
          : "the local file changed after the remote copy was written; starting over",
      );
      expect(await sha256File(remoteDisk("same-size-up.bin"))).toBe(await sha256File(src));
      // Unchanged on both sides: nothing moves.
      const same = await runMyftp(["put", src, srv.url("same-size-up.bin")]);
      expect(same.stdout).toContain(`put ${src}: already complete`);
    });

    it("starts over with --no-resume", async () => {
      await makeFile(remoteDisk("noresume.bin"), MiB);
      const dst = local("noresume.bin");
      await makeFile(dst, MiB / 2);
      const r = await runMyftp(["get", "--no-resume", srv.url("noresume.bin"), dst]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain("resuming");
      expect(await sha256File(dst)).toBe(await sha256File(remoteDisk("noresume.bin")));
    });

    it("downloads in segments over several connections, equal to the original", async () => {
      const size = 9 * MiB + 12345;
      await makeFile(remoteDisk("seg.bin"), size);
      const dst = local("seg.bin");
      const r = await runMyftp(["get", "-n", "4", srv.url("seg.bin"), dst]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(verifiedWord);
      expect(await sha256File(dst)).toBe(await sha256File(remoteDisk("seg.bin")));
      expect((await readdir(work.path)).filter((n) => n.startsWith("seg.bin."))).toEqual([]);
    });

    it("resumes a segmented download after the client was killed", async () => {
      const size = 16 * MiB;
      await makeFile(remoteDisk("segkill.bin"), size);
      const dst = local("segkill.bin");
      const state = `${dst}.myftp-segments`;
      await runAndKill(["get", "-n", "4", "--limit-rate", "8M", srv.url("segkill.bin"), dst], async () => {
        const text = await readFile(state, "utf8").catch(() => "");
        if (!text) return false;
        const st = JSON.parse(text) as { segments: { start: number; pos: number }[] };
        return st.segments.reduce((a, s) => a + s.pos - s.start, 0) >= 3 * MiB;
      });
      const saved = JSON.parse(await readFile(state, "utf8")) as { segments: { start: number; end: number; pos: number }[] };
      expect(saved.segments.length).toBe(4);
      const left = saved.segments.reduce((a, s) => a + s.end - s.pos, 0);
      expect(left).toBeGreaterThan(0);
      const r = await runMyftp(["get", "-n", "4", srv.url("segkill.bin"), dst]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/continuing a segmented download, (\d+) of \d+ bytes left/);
      const said = Number(/continuing a segmented download, (\d+) of/.exec(r.stdout)![1]);
      expect(said).toBeLessThanOrEqual(left);
      expect(await sha256File(dst)).toBe(await sha256File(remoteDisk("segkill.bin")));
      expect(await sizeOf(state)).toBe(-1);
    });

    it("mirrors a remote tree down and a local tree up, transferring only changed files", async () => {
      const tree = remoteDisk("tree");
      await mkdir(join(tree, "a", "b"), { recursive: true });
      await makeFile(join(tree, "top.bin"), 300_000);
      await writeFile(join(tree, "a", "one.txt"), "one\n");
      await makeFile(join(tree, "a", "b", "deep.bin"), 70_000);
      await mkdir(join(tree, "empty"));
      const down = local("mirror-down");
      const r1 = await runMyftp(["mirror", "--parallel", "2", srv.url("tree"), down]);
      expect(r1.stderr).toBe("");
      expect(r1.code).toBe(0);
      expect(r1.stdout).toMatch(/^mirror: 3 transferred .*, 0 unchanged$/m);
      for (const f of ["top.bin", "a/one.txt", "a/b/deep.bin"]) expect(await sha256File(join(down, f))).toBe(await sha256File(join(tree, f)));
      expect((await stat(join(down, "empty"))).isDirectory()).toBe(true);
      // Nothing changed: nothing moves.
      const r2 = await runMyftp(["mirror", srv.url("tree"), down]);
      expect(r2.code).toBe(0);
      expect(r2.stdout).toMatch(/^mirror: 0 transferred .*, 3 unchanged$/m);
      // One remote file changes size: only it moves.
      await appendFile(join(tree, "a", "one.txt"), "more\n");
      const r3 = await runMyftp(["mirror", srv.url("tree"), down]);
      expect(r3.code).toBe(0);
      expect(r3.stdout).toMatch(/^mirror: 1 transferred .*, 2 unchanged$/m);
      expect(r3.stdout).toContain("get tree/a/one.txt:");
      expect(await readFile(join(down, "a", "one.txt"), "utf8")).toBe("one\nmore\n");

      // Reverse: local → remote.
      const upSrc = local("mirror-up");
      await mkdir(join(upSrc, "x", "y"), { recursive: true });
      await makeFile(join(upSrc, "u1.bin"), 123_456);
      await writeFile(join(upSrc, "x", "y", "u2.txt"), "u2\n");
      const r4 = await runMyftp(["mirror", "--reverse", upSrc, srv.url("up-tree/")]);
      expect(r4.stderr).toBe("");
      expect(r4.code).toBe(0);
      expect(r4.stdout).toMatch(/^mirror --reverse: 2 transferred .*, 0 unchanged$/m);
      expect(await sha256File(remoteDisk("up-tree", "u1.bin"))).toBe(await sha256File(join(upSrc, "u1.bin")));
      expect(await readFile(remoteDisk("up-tree", "x", "y", "u2.txt"), "utf8")).toBe("u2\n");
      const r5 = await runMyftp(["mirror", "-R", upSrc, srv.url("up-tree/")]);
      expect(r5.stdout).toMatch(/^mirror --reverse: 0 transferred .*, 2 unchanged$/m);
      // A local file becomes newer with the same size: it goes up again.
      const later = new Date(Date.now() + 60_000);
      await writeFile(join(upSrc, "x", "y", "u2.txt"), "U2\n");
      await utimes(join(upSrc, "x", "y", "u2.txt"), later, later);
      const r6 = await runMyftp(["mirror", "-R", upSrc, srv.url("up-tree/")]);
      expect(r6.code).toBe(0);
      expect(r6.stdout).toMatch(/^mirror --reverse: 1 transferred .*, 1 unchanged$/m);
      expect(await readFile(remoteDisk("up-tree", "x", "y", "u2.txt"), "utf8")).toBe("U2\n");
      // --delete removes what the source no longer has, on either side.
      await rm(join(upSrc, "u1.bin"));
      const r7 = await runMyftp(["mirror", "-R", "--delete", upSrc, srv.url("up-tree/")]);
      expect(r7.code).toBe(0);
      expect(r7.stdout).toMatch(/^mirror --reverse: 0 transferred .*, 1 unchanged, 1 deleted$/m);
      // Each deleted file is named, as each copied one is.
      expect(r7.stdout).toMatch(/^mirror --reverse: deleted u1\.bin$/m);
      expect(await sizeOf(remoteDisk("up-tree", "u1.bin"))).toBe(-1);
      await rm(join(tree, "top.bin"));
      const r8 = await runMyftp(["mirror", "--delete", srv.url("tree"), down]);
      expect(r8.code).toBe(0);
      expect(r8.stdout).toMatch(/^mirror: 0 transferred .*, 2 unchanged, 1 deleted$/m);
      expect(r8.stdout).toMatch(/^mirror: deleted top\.bin$/m);
      expect(await sizeOf(join(down, "top.bin"))).toBe(-1);
    });

    it("fails with one clear line and a distinct exit code", async () => {
      const bad = await runMyftp(["get", "http://example.invalid/x", local("x")]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toBe('myftp: bad URL "http://example.invalid/x": unsupported scheme "http" (use ftp:// or ftps://)\n');

      const badPort = await runMyftp(["ls", `ftp://${srv.host}:99999/`]);
      expect(badPort.code).toBe(2);
      expect(badPort.stderr).toMatch(/^myftp: bad URL .*invalid port "99999"\n$/);

      const login = await runMyftp(["ls", srv.url().replace(encodeURIComponent(srv.password), "wrong-password")]);
      expect(login.code).toBe(4);
      expect(login.stderr).toMatch(/^myftp: login refused by the server \(530 .*\)\n$/);

      const missing = await runMyftp(["get", srv.url("does-not-exist.bin"), local("dne.bin")]);
      expect(missing.code).toBe(5);
      expect(missing.stderr).toMatch(/^myftp: get does-not-exist\.bin: the server refused: .*\(550\)\n$/);
      expect(await sizeOf(local("dne.bin"))).toBe(-1);

      const missingLocal = await runMyftp(["put", local("nothing-here.bin"), srv.url("x.bin")]);
      expect(missingLocal.code).toBe(8);
      expect(missingLocal.stderr).toBe(`myftp: put ${local("nothing-here.bin")}: no such local file: ${local("nothing-here.bin")}\n`);

      const port = await freePort();
      const down = await runMyftp(["ls", `ftp://u:p@127.0.0.1:${port}/`]);
      expect(down.code).toBe(3);
      expect(down.stderr).toBe(`myftp: cannot connect to 127.0.0.1:${port}: connection refused\n`);

      const script = await runMyftp([`ftp://u:p@127.0.0.1:${port}/`], { stdin: "ls\n" });
      expect(script.code).toBe(3);
      expect(script.stderr).toBe(`myftp: cannot connect to 127.0.0.1:${port}: connection refused\n`);
    });

    it("takes the password from MYFTP_PASSWORD or ~/.netrc, and refuses to guess without a terminal", async () => {
      const home = local("home");
      await mkdir(home, { recursive: true });
      await writeFile(remoteDisk("cred.txt"), "cred\n");
      const viaEnv = await runMyftp(["ls", srv.urlNoPassword()], { env: { HOME: home, MYFTP_PASSWORD: srv.password } });
      expect(viaEnv.code).toBe(0);
      expect(viaEnv.stdout).toMatch(/ cred\.txt$/m);
      await writeFile(join(home, ".netrc"), `machine other.example login x password y\nmachine ${srv.host} login ${srv.user} password "${srv.password}"\n`, { mode: 0o600 });
      const viaNetrc = await runMyftp(["ls", srv.urlNoPassword()], { env: { HOME: home } });
      expect(viaNetrc.code).toBe(0);
      expect(viaNetrc.stdout).toMatch(/ cred\.txt$/m);
      await rm(join(home, ".netrc"));
      const none = await runMyftp(["ls", srv.urlNoPassword()], { env: { HOME: home } });
      expect(none.code).toBe(4);
      expect(none.stderr).toBe(`myftp: no password for ${srv.user}@${srv.host} (set MYFTP_PASSWORD, add it to ~/.netrc, or run on a terminal)\n`);
    });

    it("notices a remote partial of the wrong content before resuming an upload", async () => {
      const src = local("wrongremote.bin");
      await makeFile(src, 2 * MiB);
      await makeFile(remoteDisk("wrongremote.bin"), MiB);
      const r = await runMyftp(["put", src, srv.url("wrongremote.bin")]);
      expect(r.code).toBe(0);
      if (caps.hash) {
        expect(r.stdout).toContain(`the remote file's first ${MiB} bytes differ from the local file; starting over`);
        expect(await sha256File(remoteDisk("wrongremote.bin"))).toBe(await sha256File(src));
      } else {
        expect(r.stdout).toContain("sizes only");
      }
    });

    it("detects a file that changed on the server during the download", async () => {
      const size = 8 * MiB;
      const remoteFile = remoteDisk("changing.bin");
      await makeFile(remoteFile, size);
      const dst = local("changing.bin");
      const child = runMyftp(["get", "--limit-rate", "4M", srv.url("changing.bin"), dst]);
      expect(await waitFor(async () => (await sizeOf(dst)) >= MiB, 20_000)).toBe(true);
      // Rewrite the remote file in place, same size, other content.
      const fh = await open(remoteFile, "r+");
      await fh.write(randomBytes(size), 0, size, 0);
      await fh.close();
      const r = await child;
      if (caps.hash) {
        expect(r.code).toBe(7);
        expect(r.stderr).toMatch(/^myftp: get changing\.bin: verification failed: SHA-256 differs .*; the local file was kept aside as .*changing\.bin\.myftp-mismatch\n$/);
        expect(await sizeOf(dst)).toBe(-1);
        expect(await sizeOf(`${dst}.myftp-mismatch`)).toBe(size);
      } else {
        // Sizes are all a server without HASH lets us compare; the output says that is what was checked.
        expect(r.code).toBe(0);
        expect(r.stdout).toContain("size verified");
      }
    });
  });
}
