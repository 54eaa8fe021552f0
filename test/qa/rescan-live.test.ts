// `myftpd user rescan` recounts a home from the disk while the server runs. When an upload is in the middle of
// writing, the bytes it has written are both on the disk and in the live counter: adopting the recount as it is
// would count them twice.

import { statSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { bytesOnDisk, Ctl, myftpd, until } from "./qa-util.js";

describe("user rescan while an upload runs", () => {
  let srv: RunningServer | undefined;
  const ctls: Ctl[] = [];
  afterEach(async () => {
    for (const c of ctls.splice(0)) c.close();
    await srv?.close();
    srv = undefined;
  });

  it.each([
    ["a new file", false],
    ["an append", true],
  ])("leaves usage equal to the bytes on disk (%s)", async (_what, append) => {
    srv = await startServer([{ name: "alice", password: "secret", quota: 10 * 1024 * 1024 }]);
    const home = srv.homeOf("alice");
    const a = await Ctl.login(srv.port);
    ctls.push(a);
    expect((await a.store("STOR other", Buffer.alloc(5000, 0x6f))).final.code).toBe(226);
    if (append) expect((await a.store("STOR f", Buffer.alloc(7000, 0x61))).final.code).toBe(226);
    const before = append ? 7000 : 0;

    const d = await a.data();
    expect((await a.cmd(`${append ? "APPE" : "STOR"} f`)).code).toBe(150);
    d.write(Buffer.alloc(100_000, 0x62));
    await until(() => statSync(path.join(home, "f"), { throwIfNoEntry: false })?.size === before + 100_000, 5000, "first half on disk");

    const mid = await myftpd(["user", "rescan", "alice", "--data", srv.dataDir]);
    expect(mid.code).toBe(0);

    d.end(Buffer.alloc(100_000, 0x62));
    expect((await a.read()).code).toBe(226);
    expect(statSync(path.join(home, "f")).size).toBe(before + 200_000);
    expect(await a.used()).toBe(bytesOnDisk(home));

    const after = await myftpd(["user", "rescan", "alice", "--data", srv.dataDir]);
    const total = 5000 + before + 200_000;
    expect(after.stdout).toContain(`alice: ${total} bytes`);
    expect(after.stdout).toContain(`was ${total} bytes`);
  });

  it("still adopts a recount made while nothing is written", async () => {
    srv = await startServer([{ name: "alice", password: "secret" }]);
    const home = srv.homeOf("alice");
    const a = await Ctl.login(srv.port);
    ctls.push(a);
    expect((await a.store("STOR f", Buffer.alloc(3000, 0x61))).final.code).toBe(226);
    // A file put in the home behind the server's back: the recount finds it and the live counter follows.
    const { writeFileSync } = await import("node:fs");
    writeFileSync(path.join(home, "dropped"), Buffer.alloc(1234));
    expect((await myftpd(["user", "rescan", "alice", "--data", srv.dataDir])).code).toBe(0);
    expect(await a.used()).toBe(4234);
    expect((await a.store("STOR g", Buffer.alloc(1000))).final.code).toBe(226);
    expect(await a.used()).toBe(bytesOnDisk(home));
  });
});
