// The per-address connection limit on the implicit FTPS port: a connection counts from the moment it is accepted,
// not only once its TLS handshake is done, so connections that never finish a handshake cannot get round it.

import { mkdtempSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { myftpd, sleep } from "./qa-util.js";

/** Opens a connection (implicit FTPS unless plain) and returns the first line the server sends (or why none came). */
async function firstLine(port: number, plain = false): Promise<string> {
  const sock = plain ? net.connect({ port, host: "127.0.0.1" }) : tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false });
  sock.on("error", () => undefined);
  try {
    return await new Promise<string>((resolve) => {
      let buf = "";
      const timer = setTimeout(() => resolve(`no line (${JSON.stringify(buf)})`), 3000);
      sock.on("data", (d: Buffer) => {
        buf += d.toString();
        const i = buf.indexOf("\r\n");
        if (i >= 0) {
          clearTimeout(timer);
          resolve(buf.slice(0, i));
        }
      });
      sock.on("close", () => {
        clearTimeout(timer);
        resolve(`closed (${JSON.stringify(buf)})`);
      });
    });
  } finally {
    sock.destroy();
  }
}

describe("implicit FTPS and --max-connections-per-ip", () => {
  let srv: RunningServer;
  let implicitPort: number;

  beforeAll(async () => {
    const certDir = path.join(mkdtempSync(path.join(tmpdir(), "myftp-qa-tls-")), "data");
    expect((await myftpd(["cert", "--data", certDir, "--host", "localhost"])).code).toBe(0);
    srv = await startServer([{ name: "alice", password: "secret" }], {
      tls: { cert: readFileSync(path.join(certDir, "tls", "cert.pem")), key: readFileSync(path.join(certDir, "tls", "key.pem")) },
      implicitTlsPort: 0,
      maxConnectionsPerIp: 2,
    });
    implicitPort = srv.server.implicitTlsPort!;
  });
  afterAll(async () => {
    await srv?.close();
  });

  it("counts connections that have not finished their handshake", async () => {
    expect(await firstLine(implicitPort)).toMatch(/^220 /);
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const s = net.connect({ port: implicitPort, host: "127.0.0.1" });
        s.on("error", () => undefined);
        await new Promise<void>((resolve) => s.once("connect", () => resolve()));
        idle.push(s);
      }
      await sleep(100);
      expect(await firstLine(implicitPort)).toMatch(/^421 /);
      expect(await firstLine(srv.port, true)).toMatch(/^421 /);
    } finally {
      for (const s of idle) s.destroy();
    }
    await sleep(100);
    expect(await firstLine(implicitPort)).toMatch(/^220 /);
  });

  it("does not hold refused connections that never start a handshake past a few per address", async () => {
    const closed = new Set<net.Socket>();
    const open = (): Promise<net.Socket> =>
      new Promise((resolve) => {
        const s = net.connect({ port: implicitPort, host: "127.0.0.1" });
        s.on("error", () => undefined);
        s.once("close", () => closed.add(s));
        s.resume();
        s.once("connect", () => resolve(s));
      });
    const idle = [await open(), await open()];
    const refused: net.Socket[] = [];
    try {
      await sleep(100);
      // Over the limit: each of these is refused, and would wait up to 30 s for a handshake to carry its 421.
      for (let i = 0; i < 30; i++) refused.push(await open());
      await sleep(500);
      const stillOpen = refused.filter((s) => !closed.has(s)).length;
      expect(stillOpen).toBeLessThanOrEqual(4);
      // The refusals that are answered still say why, over TLS.
      for (const s of refused) s.destroy();
      await sleep(100);
      expect(await firstLine(implicitPort)).toMatch(/^421 .*Too many connections/);
    } finally {
      for (const s of [...idle, ...refused]) s.destroy();
    }
    await sleep(100);
    expect(await firstLine(implicitPort)).toMatch(/^220 /);
  });
});
