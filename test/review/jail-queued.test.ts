// The jail holds for work that waits its turn. A path is checked (realpath, inside the home) on the event loop, but
// the call that uses it may run later: a HASH waits for a free worker, which opens the file itself. If the client
// renames a directory away and moves a link to an outside directory into its place meanwhile, a call that opens the
// checked path by name again follows the link out of the home.
//
// The link to the outside is one an administrator planted in the home (the case the jail tests plant: a link to a
// directory outside). Clients cannot make links, nor rename one that leads outside, but they may rename the directory
// that holds it: with p/x a link to the outside and q/x a real directory, renaming q away and p to q makes /q/x lead
// outside.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp, readAll, type Reply } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";
import { holdThreadPool, pendingFsRequests, type HeldPool } from "./review-util.js";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe("jail: a checked path is not looked up again later", () => {
  let srv: RunningServer | null = null;
  let scratch: string | null = null;
  let held: HeldPool | null = null;
  const clients: RawFtp[] = [];

  afterEach(async () => {
    await held?.release();
    held = null;
    for (const c of clients.splice(0)) c.sock.destroy();
    await srv?.close();
    srv = null;
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    scratch = null;
  });

  /** A home with q/x/secret, and p/x: a planted link to a directory outside that has a secret of its own. */
  async function setup(): Promise<{ home: string; outside: string }> {
    scratch = mkdtempSync(path.join(tmpdir(), "myftp-review-"));
    const outside = path.join(scratch, "outside");
    mkdirSync(outside);
    writeFileSync(path.join(outside, "secret"), "OUTSIDE THE HOME");
    writeFileSync(path.join(outside, "victim"), "an outside file");
    writeFileSync(path.join(outside, "outside-only"), "");
    srv = await startServer([{ name: "alice", password: "secret" }], { hashWorkers: 1 });
    const home = srv.homeOf("alice");
    mkdirSync(path.join(home, "q", "x"), { recursive: true });
    writeFileSync(path.join(home, "q", "x", "secret"), "inside");
    writeFileSync(path.join(home, "q", "x", "victim"), "inside victim");
    mkdirSync(path.join(home, "p"));
    symlinkSync(outside, path.join(home, "p", "x"));
    return { home, outside };
  }

  async function login(): Promise<RawFtp> {
    const c = await RawFtp.login(srv!.port, "alice", "secret");
    clients.push(c);
    return c;
  }

  /** RNFR/RNTO q → q2 and p → q: the path /q/x now leads outside. */
  async function swap(c: RawFtp): Promise<void> {
    await c.expect("RNFR /q", 350);
    await c.expect("RNTO /q2", 250);
    await c.expect("RNFR /p", 350);
    await c.expect("RNTO /q", 250);
  }

  /** Tries the swap; returns the replies (a server may refuse it while the path is in use). */
  async function trySwap(c: RawFtp): Promise<Reply[]> {
    const out: Reply[] = [];
    for (const [from, to] of [
      ["/q", "/q2"],
      ["/p", "/q"],
    ]) {
      const r = await c.cmd(`RNFR ${from}`);
      out.push(r);
      if (r.code === 350) out.push(await c.cmd(`RNTO ${to}`));
    }
    return out;
  }

  it("HASH hashes the file it checked, not what the path leads to when a worker gets to it", async () => {
    await setup();
    const a = await login();
    const b = await login();
    // The one worker is started and loaded before the pool is held.
    expect((await a.cmd("HASH /q/x/secret")).text).toContain(sha256("inside"));

    held = holdThreadPool(scratch!);
    a.send("HASH /q/x/secret");
    await until(() => srv!.server.hashPool.busy === 1, 5000, "HASH handed to the worker");
    await swap(b);
    await held.release();

    // Opening the path again in the worker answered the hash of the outside file's first six bytes ("OUTSID"); with
    // RANG one byte at a time that reads any outside file the server can read.
    const r = await a.read();
    expect(r.all).toBe(`213 SHA-256 0-5 ${sha256("inside")} /q/x/secret`);
  });

  it("DELE removes the file it checked, never one outside the home", async () => {
    const { home, outside } = await setup();
    const a = await login();
    const b = await login();

    held = holdThreadPool(scratch!);
    const before = pendingFsRequests();
    a.send("DELE /q/x/victim");
    await until(() => pendingFsRequests() > before, 5000, "DELE's unlink queued");
    await trySwap(b);
    await held.release();

    const r = await a.read();
    expect(existsSync(path.join(outside, "victim"))).toBe(true);
    expect(readFileSync(path.join(outside, "victim"), "utf8")).toBe("an outside file");
    // The file the client named is gone from its directory, which is q2/x now.
    expect(r.code).toBe(250);
    expect(existsSync(path.join(home, "q2", "x", "victim"))).toBe(false);
  });

  it("LIST reads the directory it checked on the loop, never one outside the home", async () => {
    await setup();
    const a = await login();
    const b = await login();

    // The directory is read through a handle opened where the path was checked, and read inline: with the thread
    // pool held, the listing still completes, so there is no later moment at which a swap could redirect it.
    const data = await a.epsv();
    held = holdThreadPool(scratch!);
    a.send("LIST /q/x");
    const prelim = await a.read();
    expect(prelim.code).toBe(150);
    const listing = (await readAll(data)).toString("utf8");
    expect((await a.read()).code).toBe(226);
    data.destroy();
    await trySwap(b);
    await held.release();
    expect(listing).not.toContain("outside-only");
    expect(listing).toContain("victim");
  });
});
