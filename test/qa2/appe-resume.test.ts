// A server without REST STREAM: `myftp put` resumes a remote partial with APPE. No server at hand lacks REST STREAM,
// so a real myftpd is reached through a relay on its control connection that leaves "REST STREAM" out of the FEAT
// reply (data connections go straight to the server, which announces its own address and ports).

import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { assertBuilt, killAll, runMyftp, tempDir } from "../client/cli-helpers.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Relays control connections to `port`, dropping the REST STREAM line from FEAT replies; records what clients sent. */
async function featFilter(port: number): Promise<{ port: number; sent: string[]; close(): void }> {
  const sent: string[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    socks.add(client).add(upstream);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    let fromClient = "";
    client.on("data", (c: Buffer) => {
      fromClient += c.toString("latin1");
      const lines = fromClient.split("\r\n");
      fromClient = lines.pop()!;
      for (const l of lines) sent.push(l);
      upstream.write(c);
    });
    let fromServer = "";
    upstream.on("data", (c: Buffer) => {
      fromServer += c.toString("latin1");
      const lines = fromServer.split("\r\n");
      fromServer = lines.pop()!;
      const kept = lines.filter((l) => !/^ REST STREAM$/i.test(l));
      if (kept.length > 0) client.write(kept.map((l) => `${l}\r\n`).join(""), "latin1");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sent,
    close: () => {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

describe("put resumes with APPE where the server has no REST STREAM", () => {
  let work: { path: string; remove(): Promise<void> };
  let srv: RunningServer;
  let relay: Awaited<ReturnType<typeof featFilter>>;

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir("myftp-qa2-appe-");
    srv = await startServer();
    relay = await featFilter(srv.port);
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    relay?.close();
    await srv?.close();
    await work?.remove();
  });

  it("checks the remote part, appends the rest, and verifies the whole file", async () => {
    const body = randomBytes(3 * 1024 * 1024 + 5);
    const local = join(work.path, "big.bin");
    writeFileSync(local, body);
    writeFileSync(join(srv.homeOf("alice"), "big.bin"), body.subarray(0, 1024 * 1024));
    const r = await runMyftp(["put", local, `ftp://alice:secret@127.0.0.1:${relay.port}/big.bin`], { cwd: work.path });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("resuming at byte 1048576 with APPE (existing part checked by HASH)");
    expect(relay.sent.some((l) => l.startsWith("APPE "))).toBe(true);
    expect(relay.sent.some((l) => l.startsWith("REST "))).toBe(false);
    expect(sha(readFileSync(join(srv.homeOf("alice"), "big.bin")))).toBe(sha(body));
  });
});
