// `myftp mirror` writes what a server lists under the local target directory. A hostile or broken server can list
// names that are not plain names ("../x", "a/../../x"); mirror must never write outside its target for them.
//
// myftpd never lists such names, so the server here is a small scripted one: it speaks just enough FTP for the
// client (FEAT, MLSD, SIZE, RETR over EPSV) and lists whatever the test gives it.

import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { myftp } from "./qa-util.js";

interface Entry {
  name: string;
  type: "file" | "dir";
  body?: string;
}

/**
 * A scripted FTP server whose MLSD (or, without MLST in FEAT, LIST) of any directory answers `entries`; RETR of any
 * path answers its body.
 */
async function hostileServer(entries: Entry[], mlst: boolean): Promise<{ port: number; retrieved: string[]; close(): void }> {
  const retrieved: string[] = [];
  const sockets = new Set<net.Socket>();
  const dataServers = new Set<net.Server>();
  const bodyOf = (p: string) => entries.find((e) => p.endsWith(e.name))?.body ?? "";
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("error", () => undefined);
    sock.on("close", () => sockets.delete(sock));
    let pending: Promise<net.Socket> | null = null;
    const reply = (s: string) => sock.write(`${s}\r\n`);
    const sendData = async (payload: string, opening: string) => {
      if (!pending) return reply("425 Use EPSV first");
      const d = await pending;
      pending = null;
      reply(`150 ${opening}`);
      d.end(payload, () => reply("226 Done"));
    };
    reply("220 scripted");
    let buf = "";
    sock.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const sp = line.indexOf(" ");
        const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
        const arg = sp < 0 ? "" : line.slice(sp + 1);
        switch (verb) {
          case "USER":
            reply("331 Password");
            break;
          case "PASS":
            reply("230 In");
            break;
          case "FEAT":
            reply(`211-Features:\r\n EPSV\r\n${mlst ? " MLST type*;size*;modify*;\r\n" : ""} SIZE\r\n REST STREAM\r\n UTF8\r\n211 End`);
            break;
          case "PWD":
            reply('257 "/" is the current directory');
            break;
          case "CWD":
            reply("250 OK");
            break;
          case "TYPE":
          case "STRU":
          case "OPTS":
            reply("200 OK");
            break;
          case "EPSV": {
            const ds = net.createServer();
            dataServers.add(ds);
            pending = new Promise((resolve) => ds.once("connection", (d) => (d.on("error", () => undefined), resolve(d))));
            ds.listen(0, "127.0.0.1", () => reply(`229 Entering Extended Passive Mode (|||${(ds.address() as net.AddressInfo).port}|)`));
            break;
          }
          case "MLSD": {
            const text = entries
              .map((e) => `type=${e.type};size=${Buffer.byteLength(e.body ?? "")};modify=20200101000000; ${e.name}\r\n`)
              .join("");
            void sendData(text, "listing");
            break;
          }
          case "LIST": {
            const text = entries
              .map((e) => `${e.type === "dir" ? "d" : "-"}rw-r--r-- 1 u g ${Buffer.byteLength(e.body ?? "")} Jan 01 2020 ${e.name}\r\n`)
              .join("");
            void sendData(text, "listing");
            break;
          }
          case "SIZE":
            reply(`213 ${Buffer.byteLength(bodyOf(arg))}`);
            break;
          case "RETR":
            retrieved.push(arg);
            void sendData(bodyOf(arg), "file");
            break;
          case "QUIT":
            reply("221 Bye");
            sock.end();
            break;
          default:
            reply(`502 ${verb} not implemented`);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    retrieved,
    close: () => {
      for (const s of sockets) s.destroy();
      for (const d of dataServers) d.close();
      server.close();
    },
  };
}

describe("mirror and names that are not plain names", () => {
  let srv: Awaited<ReturnType<typeof hostileServer>> | undefined;
  afterEach(() => srv?.close());

  it.each([
    ["LIST", false],
    ["MLSD", true],
  ])("never writes outside the target directory (%s)", async (_how, mlst) => {
    const work = mkdtempSync(path.join(tmpdir(), "myftp-qa-mirror-"));
    srv = await hostileServer([
      { name: "good.txt", type: "file", body: "good\n" },
      { name: "../escaped.txt", type: "file", body: "outside\n" },
      { name: "../../escaped2.txt", type: "file", body: "outside\n" },
      { name: "..", type: "dir" },
      { name: "../../..", type: "dir" },
    ], mlst);
    const target = path.join(work, "a", "b", "target");
    const r = await myftp(["mirror", `ftp://u:p@127.0.0.1:${srv.port}/site`, target], { home: work, timeoutMs: 20_000 });
    expect(existsSync(path.join(work, "a", "b", "escaped.txt"))).toBe(false);
    expect(existsSync(path.join(work, "a", "escaped2.txt"))).toBe(false);
    expect(srv.retrieved.filter((p) => p.includes(".."))).toEqual([]);
    expect(readFileSync(path.join(target, "good.txt"), "utf8")).toBe("good\n");
    expect(r.code).toBe(0);
  });
});
