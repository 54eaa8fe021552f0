// Binary file transfers run in transfer processes (the data socket handed over, the file reopened from the
// server's descriptor); listings, ASCII transfers and small downloads stay in the server. These tests check that
// the hand-over is real, that bytes arrive intact both ways, and that quota, ABOR, resume and a transfer process
// dying under a transfer leave the file and the ledger exactly right.

import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer, type TestUser } from "../helpers/myftpd.js";
import { loginBinary, RawFtp } from "../helpers/raw-ftp.js";
import { until } from "../helpers/util.js";

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("transfer processes", () => {
  let srv: RunningServer | null = null;
  const clients: RawFtp[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.sock.destroy();
    await srv?.close();
    srv = null;
  });

  async function start(users: TestUser[] = [{ name: "alice", password: "secret" }], transferProcesses?: number) {
    srv = await startServer(users, transferProcesses === undefined ? {} : { transferProcesses });
    return srv;
  }

  const login = (s: RunningServer) => loginBinary(s.port, clients);

  async function avbl(c: RawFtp): Promise<number> {
    return Number((await c.expect("AVBL", 213)).text);
  }

  it("moves binary downloads and uploads through a transfer process, byte for byte", async () => {
    const s = await start();
    const c = await login(s);
    const body = randomBytes(3 * MiB + 123);
    writeFileSync(path.join(s.homeOf("alice"), "big.bin"), body);
    const before = s.server.transfers.handedOver;

    const got = await c.retrieve("RETR big.bin");
    expect(got.final.code).toBe(226);
    expect(sha(got.data)).toBe(sha(body));
    const put = await c.store("STOR copy.bin", body);
    expect(put.final.code).toBe(226);
    expect(sha(readFileSync(path.join(s.homeOf("alice"), "copy.bin")))).toBe(sha(body));

    expect(s.server.transfers.handedOver).toBe(before + 2);
    expect(s.server.transfers.processIds.length).toBeGreaterThanOrEqual(1);
    // REST inside the file: the tail only.
    await c.expect("REST 1000000", 350);
    const tail = await c.retrieve("RETR big.bin");
    expect(tail.final.code).toBe(226);
    expect(sha(tail.data)).toBe(sha(body.subarray(1000000)));
    // big.bin was put in place behind the server's back after the usage was counted: only copy.bin counts.
    expect(await avbl(c)).toBe(1024 ** 3 - body.length);
  });

  it("keeps small downloads, ASCII transfers and listings in the server", async () => {
    const s = await start();
    const c = await login(s);
    writeFileSync(path.join(s.homeOf("alice"), "small.bin"), randomBytes(100 * 1024));
    const before = s.server.transfers.handedOver;
    expect((await c.retrieve("RETR small.bin")).final.code).toBe(226);
    await c.expect("TYPE A", 200);
    expect((await c.store("STOR text.txt", "a\r\nb\r\n".repeat(200_000))).final.code).toBe(226);
    expect(readFileSync(path.join(s.homeOf("alice"), "text.txt"), "utf8")).toBe("a\nb\n".repeat(200_000));
    expect((await c.retrieve("LIST")).final.code).toBe(226);
    expect(s.server.transfers.handedOver).toBe(before);
  });

  it("with --transfer-processes 0 every transfer runs in the server and still arrives intact", async () => {
    const s = await start(undefined, 0);
    const c = await login(s);
    const body = randomBytes(2 * MiB);
    expect((await c.store("STOR a.bin", body)).final.code).toBe(226);
    const got = await c.retrieve("RETR a.bin");
    expect(sha(got.data)).toBe(sha(body));
    expect(s.server.transfers.handedOver).toBe(0);
    expect(s.server.transfers.processIds).toEqual([]);
  });

  it("refuses an upload past the quota with 552 and leaves no trace of it", async () => {
    const s = await start([{ name: "alice", password: "secret", quota: 3 * MiB }]);
    const c = await login(s);
    const before = s.server.transfers.handedOver;
    const over = await c.store("STOR over.bin", randomBytes(5 * MiB));
    expect(over.final.code).toBe(552);
    expect(existsSync(path.join(s.homeOf("alice"), "over.bin"))).toBe(false);
    expect(await avbl(c)).toBe(3 * MiB);
    const fits = await c.store("STOR fits.bin", randomBytes(2 * MiB));
    expect(fits.final.code).toBe(226);
    expect(await avbl(c)).toBe(MiB);
    expect(s.server.transfers.handedOver).toBe(before + 2);
  });

  it("a refused upload's data connection is closed only after the 552, so the client sees the reason first", async () => {
    const s = await start([{ name: "alice", password: "secret", quota: MiB }]);
    const c = await login(s);
    for (let round = 0; round < 5; round++) {
      const data = await c.epsv();
      expect((await c.cmd(`STOR over${round}.bin`)).code).toBe(150);
      let replied = false;
      let resetBeforeReply = false;
      data.on("error", () => (resetBeforeReply ||= !replied));
      data.on("close", () => (resetBeforeReply ||= !replied));
      const chunk = Buffer.alloc(256 * 1024, 7);
      const pump = async () => {
        for (let i = 0; i < 64 && !data.destroyed; i++) {
          if (!data.write(chunk)) await new Promise((r) => data.once("drain", r).once("close", r));
        }
      };
      void pump();
      const r = await c.read();
      replied = true;
      expect(r.code).toBe(552);
      expect(resetBeforeReply).toBe(false);
      data.destroy();
    }
    expect(await avbl(c)).toBe(MiB);
  });

  it("grants room ahead when there is plenty, and counts exactly what was written in the end", async () => {
    const s = await start();
    const c = await login(s);
    const body = randomBytes(20 * MiB + 7);
    expect((await c.store("STOR big.bin", body)).final.code).toBe(226);
    expect(await avbl(c)).toBe(1024 ** 3 - body.length);
    // An overwrite that shrinks the file gives the difference back.
    expect((await c.store("STOR big.bin", body.subarray(0, 5 * MiB))).final.code).toBe(226);
    expect(await avbl(c)).toBe(1024 ** 3 - 5 * MiB);
  });

  it("ABOR during an upload: 426 then 226, the part kept and counted, and REST+STOR completes it", async () => {
    const s = await start();
    const c = await login(s);
    const body = randomBytes(6 * MiB);
    const file = path.join(s.homeOf("alice"), "part.bin");
    const data = await c.epsv();
    expect((await c.cmd("STOR part.bin")).code).toBe(150);
    data.write(body.subarray(0, 2 * MiB)); // and no end: the upload is still running
    await until(() => existsSync(file) && statSync(file).size >= MiB, 10_000, "part of the upload on disk");
    c.send("ABOR");
    expect((await c.read()).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    data.destroy();
    const kept = statSync(file).size;
    expect(kept).toBeGreaterThan(0);
    expect(await avbl(c)).toBe(1024 ** 3 - kept);
    expect(readFileSync(file).equals(body.subarray(0, kept))).toBe(true);

    await c.expect(`REST ${kept}`, 350);
    expect((await c.store("STOR part.bin", body.subarray(kept))).final.code).toBe(226);
    expect(sha(readFileSync(file))).toBe(sha(body));
    expect(await avbl(c)).toBe(1024 ** 3 - body.length);
  });

  it("a transfer process killed under an upload: 426, the part kept and counted, and the next transfer works", async () => {
    const s = await start();
    const c = await login(s);
    const body = randomBytes(4 * MiB);
    const file = path.join(s.homeOf("alice"), "cut.bin");
    const data = await c.epsv();
    data.on("error", () => undefined);
    expect((await c.cmd("STOR cut.bin")).code).toBe(150);
    data.write(body.subarray(0, 2 * MiB));
    await until(() => existsSync(file) && statSync(file).size >= MiB, 10_000, "part of the upload on disk");
    const [pid] = s.server.transfers.processIds;
    process.kill(pid!, "SIGKILL");
    expect((await c.read()).code).toBe(426);
    data.destroy();
    const kept = statSync(file).size;
    expect(await avbl(c)).toBe(1024 ** 3 - kept);

    // A fresh transfer process takes the next transfer.
    expect((await c.store("STOR after.bin", body)).final.code).toBe(226);
    expect(sha(readFileSync(path.join(s.homeOf("alice"), "after.bin")))).toBe(sha(body));
    expect(s.server.transfers.processIds).not.toContain(pid);
    expect(await avbl(c)).toBe(1024 ** 3 - kept - body.length);
  });

  it("a client that drops a download mid-way costs nothing: the session and the next download go on", async () => {
    const s = await start();
    const c = await login(s);
    const body = randomBytes(16 * MiB);
    writeFileSync(path.join(s.homeOf("alice"), "d.bin"), body);
    const data = await c.epsv();
    expect((await c.cmd("RETR d.bin")).code).toBe(150);
    await new Promise<void>((resolve) => data.once("data", () => resolve()));
    data.destroy();
    expect([426, 226]).toContain((await c.read()).code);
    const again = await c.retrieve("RETR d.bin");
    expect(again.final.code).toBe(226);
    expect(sha(again.data)).toBe(sha(body));
  });

  it("the server's close ends its transfer processes", async () => {
    const s = await start();
    const c = await login(s);
    writeFileSync(path.join(s.homeOf("alice"), "x.bin"), randomBytes(MiB));
    expect((await c.retrieve("RETR x.bin")).final.code).toBe(226);
    const pids = s.server.transfers.processIds;
    expect(pids.length).toBeGreaterThan(0);
    c.sock.destroy();
    clients.length = 0;
    await s.close();
    srv = null;
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(() => pids.every((p) => !alive(p)), 5000, "transfer processes ended");
  });
});
