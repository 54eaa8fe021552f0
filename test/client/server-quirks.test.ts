// myftp where servers differ: a missing directory that lists as empty, a file named where a directory is wanted,
// and other answers a client must not misread. Real servers (myftpd, vsftpd) on 127.0.0.1 port 0.
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { startServer, testCertificate, type RunningServer } from "../helpers/myftpd.js";
import { startPyftpd, startVsftpd, type PeerServer, type VsftpdServer } from "../helpers/peers.js";
import { startScripted, type ScriptedServer } from "../helpers/scripted-ftp.js";
import { sha256File } from "../helpers/util.js";
import { clientWorkDir, makeFile, runMyftp } from "./cli-helpers.js";

const USER = { name: "alice", password: "s3cret alice" };

describe("myftp where servers differ", () => {
  let my: RunningServer;
  let vs: VsftpdServer;
  const scripted: ScriptedServer[] = [];
  const work = clientWorkDir(async () => {
    await my?.close();
    await vs?.stop();
    for (const srv of scripted) await srv.stop();
  });
  async function scriptedServer(opts: Parameters<typeof startScripted>[0]): Promise<ScriptedServer> {
    const srv = await startScripted(opts);
    scripted.push(srv);
    return srv;
  }

  beforeAll(async () => {
    my = await startServer([{ ...USER, quota: null }]);
    vs = await startVsftpd();
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

  it("ls of a missing directory fails with 550 where the server lists it as empty or refuses MLSD on it", async () => {
    await mkdir(join(vs.home, "emptydir"));
    const r1 = await runMyftp(["ls", vs.url("nodir/")]);
    expect(r1.stderr).toMatch(/^myftp: ls nodir\/: the server refused: .*\(550\)\n$/);
    expect(r1.code).toBe(5);
    // An empty directory that is there is listed as empty.
    const r2 = await runMyftp(["ls", vs.url("emptydir/")]);
    expect(r2.stderr).toBe("");
    expect(r2.stdout).toBe("");
    expect(r2.code).toBe(0);
    const sh = await runMyftp([vs.url()], { stdin: "ls nodir\nls emptydir\n" });
    expect(sh.stderr).toMatch(/^myftp: ls: the server refused: .*\(550\)\n$/);
    expect(sh.code).toBe(5);

    // A server with MLSD that refuses it for a missing path (550): that refusal is the answer, no LIST fallback.
    const mlsd = await scriptedServer({ feat: ["MLST type*;size*;modify*;", "SIZE"], files: { "a.txt": 3 }, dirs: ["d"] });
    const r3 = await runMyftp(["ls", mlsd.url("nodir/")]);
    expect(r3.stderr).toBe("myftp: ls nodir/: the server refused: Can't check for file existence (550)\n");
    expect(r3.code).toBe(5);
    expect(mlsd.commands().filter((c) => c.startsWith("LIST"))).toEqual([]);
    const r4 = await runMyftp(["ls", mlsd.url()]);
    expect(r4.code).toBe(0);
    expect(r4.stdout).toMatch(/^- +3 .* a\.txt$/m);
    expect(r4.stdout).toMatch(/^d .* d\/$/m);

    // MLSD of a file refused with 550, as some servers do (MLSD lists directories only): the file is listed from MLST.
    const withMlst = await scriptedServer({ feat: ["MLST type*;size*;modify*;", "SIZE"], files: { "a.txt": 3, "r[1].txt": 4 }, mlst: true });
    const r7 = await runMyftp(["ls", withMlst.url("a.txt")]);
    expect(r7.stderr).toBe("");
    expect(r7.stdout).toMatch(/^- +3 .* a\.txt$/m);
    expect(r7.code).toBe(0);
    // A name that looks like a pattern is still a name first.
    const r9 = await runMyftp(["ls", withMlst.url("r[1].txt")]);
    expect(r9.stderr).toBe("");
    expect(r9.stdout).toMatch(/^- +4 .* r\[1\]\.txt$/m);
    expect(r9.code).toBe(0);
    const r8 = await runMyftp(["ls", withMlst.url("nodir/")]);
    expect(r8.stderr).toBe("myftp: ls nodir/: the server refused: Can't check for file existence (550)\n");
    expect(r8.code).toBe(5);

    // A server that says it has no MLSD (500) after all is listed with LIST, and its empty LIST of a missing path is checked.
    const noMlsd = await scriptedServer({ feat: ["MLST type*;size*;modify*;", "SIZE"], mlsd: "500", files: { "a.txt": 3 } });
    const r5 = await runMyftp(["ls", noMlsd.url()]);
    expect(r5.stderr).toBe("");
    expect(r5.stdout).toMatch(/^- +3 .* a\.txt$/m);
    expect(r5.code).toBe(0);
    const r6 = await runMyftp(["ls", noMlsd.url("nodir/")]);
    expect(r6.stderr).toBe("myftp: ls nodir/: the server refused: No such directory (550)\n");
    expect(r6.code).toBe(5);
  });

  it("reports a quota refusal (552) that follows a reset of the data connection, with exit 6 and no retry", async () => {
    const srv = await scriptedServer({ storQuotaReset: true });
    const src = join(work.path, "big.bin");
    await makeFile(src, 4 * 1024 * 1024);
    const r = await runMyftp(["put", src, srv.url("big.bin")]);
    expect(r.stderr).toBe(`myftp: put ${src}: no space left on the server: quota full (552 Transfer aborted (quota) Quota exceeded: won't be saved)\n`);
    expect(r.code).toBe(6);
    expect(r.stdout).not.toContain("retry");
    expect(srv.commands().filter((c) => c.startsWith("STOR"))).toHaveLength(1);
  });

  it("over explicit TLS, starts the data connection's handshake after the server's 150, as RFC 4217 shows", async () => {
    // pyftpdlib resets a data connection whose handshake comes before the transfer command.
    const certDir = await testCertificate();
    const both = join(certDir.dir, "both.pem");
    await writeFile(both, (await readFile(certDir.cert, "utf8")) + (await readFile(certDir.key, "utf8")));
    let py: PeerServer | undefined;
    try {
      py = await startPyftpd({ tlsCertKeyFile: both });
      const tls = ["--tls", "--ca", certDir.cert];
      const src = join(work.path, "tls-up.bin");
      await makeFile(src, 300_000);
      for (let i = 0; i < 3; i++) {
        const up = await runMyftp([...tls, "put", src, py.url(undefined, `up${i}.bin`)]);
        expect(up.stderr).toBe("");
        expect(up.stdout).not.toContain("retry");
        expect(up.code).toBe(0);
        expect(await sha256File(join(py.home, `up${i}.bin`))).toBe(await sha256File(src));
        const dst = join(work.path, `tls-down${i}.bin`);
        const down = await runMyftp([...tls, "get", py.url(undefined, `up${i}.bin`), dst]);
        expect(down.stderr).toBe("");
        expect(down.stdout).not.toContain("retry");
        expect(down.code).toBe(0);
        expect(await sha256File(dst)).toBe(await sha256File(src));
      }
      const ls = await runMyftp([...tls, "ls", py.url()]);
      expect(ls.stderr).toBe("");
      expect(ls.stdout).toMatch(/^- +300000 .* up2\.bin$/m);
      expect(ls.code).toBe(0);
    } finally {
      await py?.stop();
      await rm(certDir.dir, { recursive: true, force: true });
    }
  });

  it("verifies by the listed size where the server has no SIZE, and calls a size nobody tells 'not verified', not a mismatch", async () => {
    const size = 200_000;
    const expected = Buffer.from(Array.from({ length: size }, (_, i) => i % 251));
    for (const listNoFiles of [false, true]) {
      const srv = await scriptedServer({ feat: ["MDTM", "REST STREAM"], noSize: true, listNoFiles, files: { "f.bin": size } });
      const dst = join(work.path, `nosize-${listNoFiles}.bin`);
      const r = await runMyftp(["get", srv.url("f.bin"), dst]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(await readFile(dst)).toEqual(expected);
      await expect(readFile(`${dst}.myftp-mismatch`)).rejects.toThrow(/ENOENT/);
      if (listNoFiles) {
        expect(r.stdout).toContain("note: the server tells the size of f.bin neither by SIZE nor in a listing; the transfer is not verified");
        expect(r.stdout).toContain("not verified");
      } else {
        expect(r.stdout).toContain("size verified");
      }
      const up = await runMyftp(["put", dst, srv.url("up.bin")]);
      expect(up.stderr).toBe("");
      expect(up.code).toBe(0);
    }
  });

  it("reconnects and verifies again when the connection drops during the check after a transfer", async () => {
    const size = 150_000;
    // The second SIZE on a connection (the check after the transfer) closes it, on the first two connections.
    const srv = await scriptedServer({ files: { "f.bin": size }, dropAtSize: { nth: 2, times: 2 } });
    const dst = join(work.path, "dropcheck.bin");
    const r = await runMyftp(["get", srv.url("f.bin"), dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^connection lost during get f\.bin \(.*\); retry 1\/3$/m);
    expect(r.stdout).toContain("size verified");
    expect(await readFile(dst)).toEqual(Buffer.from(Array.from({ length: size }, (_, i) => i % 251)));
    const up = await runMyftp(["put", dst, srv.url("up.bin")]);
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/^connection lost during put .*dropcheck\.bin \(.*\); retry 1\/3$/m);
    expect(up.stdout).toContain("size verified");
  });

  it("a local path under a file, or a file where a directory is wanted, is a local problem (exit 8), said plainly", async () => {
    await writeFile(join(my.homeOf(USER.name), "small.bin"), "small\n");
    const r1 = await runMyftp(["get", myUrl("small.bin"), "/dev/null/x"]);
    expect(r1.stderr).toBe("myftp: get small.bin: not a directory: a parent of /dev/null/x\n");
    expect(r1.code).toBe(8);
    const file = join(work.path, "plain-file.txt");
    await writeFile(file, "x\n");
    const r2 = await runMyftp(["mirror", "-R", "--delete", file, myUrl("victim-up/")]);
    expect(r2.stderr).toBe(`myftp: mirror --reverse ${file}: not a directory: ${file}\n`);
    expect(r2.code).toBe(8);
  });

  it("one-shot get and put try again when the server greets with 421, as for other transient replies", async () => {
    const srv = await scriptedServer({ files: { "f.bin": 1000 }, greet421: 2 });
    const dst = join(work.path, "greet421.bin");
    const r = await runMyftp(["get", srv.url("f.bin"), dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("get f.bin: the server is closing the connection (421 Too many users, try later); retry 1/3\n");
    expect(r.stdout).toContain("retry 2/3");
    const busy = await scriptedServer({ greet421: 100 });
    const up = await runMyftp(["put", "--retries", "1", dst, busy.url("up.bin")]);
    expect(up.stdout).toContain(`put ${dst}: the server is closing the connection (421 Too many users, try later); retry 1/1\n`);
    expect(up.stderr).toBe("myftp: the server is closing the connection (421 Too many users, try later)\n");
    expect(up.code).toBe(3);
  });
});
