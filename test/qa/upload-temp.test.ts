// An overwrite writes to a temporary file beside its target. That file belongs to the server: no client may see,
// delete, rename or create one, and neither the recount at login nor `myftpd user rescan` may charge it to the
// user or remove a file the user made.

import { mkdirSync, readdirSync, statSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, startServerProcess, tempDir, type RunningProcess, type RunningServer } from "../helpers/myftpd.js";
import { bytesOnDisk, Ctl, myftpd, until } from "./qa-util.js";

const PREFIX = ".myftp-upload-";

function tempFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith(PREFIX));
}

/** Starts an overwrite of `name` and sends `bytes` bytes of it, leaving the data connection open. */
async function startOverwrite(c: Ctl, name: string, bytes: number): Promise<net.Socket> {
  const d = await c.data();
  const opening = await c.cmd(`STOR ${name}`);
  expect(opening.code).toBe(150);
  d.write(Buffer.alloc(bytes, 0x62));
  return d;
}

describe("the temporary file of an overwrite", () => {
  let srv: RunningServer | undefined;
  const ctls: Ctl[] = [];
  afterEach(async () => {
    for (const c of ctls.splice(0)) c.close();
    await srv?.close();
    srv = undefined;
  });

  it("is not listed to, nor deletable or renamable by, another session of the user", async () => {
    srv = await startServer([{ name: "alice", password: "secret" }]);
    const home = srv.homeOf("alice");
    const a = await Ctl.login(srv.port);
    const b = await Ctl.login(srv.port);
    ctls.push(a, b);
    expect((await a.store("STOR f", Buffer.alloc(1000, 0x61))).final.code).toBe(226);

    const d = await startOverwrite(a, "f", 500);
    await until(() => tempFiles(home).some((n) => statSync(path.join(home, n)).size === 500), 5000, "temp file written");
    const temp = tempFiles(home)[0]!;

    expect(await b.names()).toEqual(["f"]);
    const list = await b.fetch("LIST");
    expect(list.body.toString()).not.toContain(PREFIX);
    const mlsd = await b.fetch("MLSD");
    expect(mlsd.body.toString()).not.toContain(PREFIX);
    expect((await b.cmd(`DELE ${temp}`)).code).toBe(553);
    expect((await b.cmd(`RNFR ${temp}`)).code).toBe(553);
    expect((await b.cmd(`SIZE ${temp}`)).code).toBe(553);

    d.end(Buffer.alloc(500, 0x62));
    expect((await a.read()).code).toBe(226);
    expect(statSync(path.join(home, "f")).size).toBe(1000);
    expect(tempFiles(home)).toEqual([]);
    expect(await b.used()).toBe(bytesOnDisk(home));
  });

  it("cannot be made by a client under the reserved name", async () => {
    srv = await startServer([{ name: "alice", password: "secret" }]);
    const a = await Ctl.login(srv.port);
    ctls.push(a);
    expect((await a.store(`STOR ${PREFIX}notes.txt`, "keep me")).final.code).toBe(553);
    expect((await a.cmd(`MKD ${PREFIX}dir`)).code).toBe(553);
    expect((await a.store("STOR notes.txt", "keep me")).final.code).toBe(226);
    expect((await a.expect("RNFR notes.txt", 350)).code).toBe(350);
    expect((await a.cmd(`RNTO sub/../${PREFIX}x`)).code).toBe(553);
    expect(readdirSync(srv.homeOf("alice"))).toEqual(["notes.txt"]);
  });
});

describe("a leftover of an overwrite cut by a crash", () => {
  let proc: RunningProcess | undefined;
  let ctl: Ctl | undefined;
  afterEach(async () => {
    ctl?.close();
    await proc?.stop("SIGKILL");
    proc = undefined;
  });

  it("is put in place of its target by `myftpd user rescan` with no server running (what arrived, as a broken connection would), counted once, and not listed after a restart", async () => {
    const data = tempDir("myftp-qa-");
    const home = path.join(data, "home", "alice");
    mkdirSync(data, { recursive: true });
    const add = await myftpd(["user", "add", "alice", "--data", data, "--quota", "10MiB", "--password-stdin"], { input: "secret\n" });
    expect(add.code).toBe(0);
    proc = await startServerProcess(["--pasv-range", "0-0", "--log-level", "warn"], data);
    ctl = await Ctl.login(proc.port);
    expect((await ctl.store("STOR big", Buffer.alloc(300_000, 0x61))).final.code).toBe(226);
    const d = await startOverwrite(ctl, "big", 100_000);
    await until(() => tempFiles(home).some((n) => statSync(path.join(home, n)).size === 100_000), 5000, "temp file written");
    d.on("error", () => undefined);
    await proc.stop("SIGKILL");
    ctl.close();

    const rescan = await myftpd(["user", "rescan", "alice", "--data", data]);
    expect(rescan.code).toBe(0);
    // No server runs: the rescan settles what the crash left and stores a clean figure.
    expect(rescan.stdout).toContain("alice: 100000 bytes");
    expect(rescan.stdout).not.toContain("counts again");
    expect(statSync(path.join(home, "big")).size).toBe(100_000);
    expect(tempFiles(home)).toEqual([]);

    proc = await startServerProcess(["--pasv-range", "0-0", "--log-level", "warn"], data);
    ctl = await Ctl.login(proc.port);
    expect(await ctl.names()).toEqual(["big"]);
    expect(statSync(path.join(home, "big")).size).toBe(100_000);
    expect(tempFiles(home)).toEqual([]);
    expect(await ctl.used()).toBe(100_000);
  });
});
