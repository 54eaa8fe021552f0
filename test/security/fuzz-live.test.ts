// A bounded fuzz run against a live server: random bytes, then random command sequences (logged in or not, with
// hostile arguments, data connections set up and abandoned). Afterwards the server must still serve a normal
// session (login, LIST, RETR), have freed every session slot and passive port, never have written a malformed
// reply, and never have hit an internal error.

import * as fc from "fast-check";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { captureLog, type CapturedLog } from "./log-capture.js";
import { freeRange } from "./ports.js";

let s: RunningServer;
let log: CapturedLog;
/** Where fuzzed PORT/EPRT commands point: a sink on the client's own address that swallows whatever comes. */
let sink: net.Server;
let sinkPort: number;

beforeAll(async () => {
  log = captureLog("info");
  s = await startServer([{ name: "alice", password: "secret", quota: 2_000_000 }], {
    logger: log.logger,
    loginFailureDelayMs: 1,
    maxLoginFailures: 1000,
    maxConnectionsPerIp: 1000,
    pasvRange: await freeRange(20),
    dataTimeoutMs: 300,
    idleTimeoutMs: 5000,
  });
  writeFileSync(path.join(s.homeOf("alice"), "known.txt"), "still here\n");
  // The fuzz may delete, rename or overwrite known.txt (it is one of its arguments); the final check reads a file
  // no generated command names.
  writeFileSync(path.join(s.homeOf("alice"), "untouched-by-fuzz.txt"), "still here\n");
  sink = net.createServer((sock) => {
    sock.on("error", () => undefined);
    sock.resume();
    setTimeout(() => sock.destroy(), 200);
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  sinkPort = (sink.address() as net.AddressInfo).port;
});

afterAll(async () => {
  sink?.close();
  await s?.close();
});

/** Connects, sends everything, keeps reading for a moment, and returns what the server wrote. */
async function session(chunks: Buffer[], pauseMs: number): Promise<string> {
  const sock = net.connect({ host: "127.0.0.1", port: s.port });
  const got: Buffer[] = [];
  sock.on("data", (c: Buffer) => got.push(c));
  sock.on("error", () => undefined);
  await new Promise<void>((resolve) => {
    sock.once("connect", resolve);
    sock.once("error", () => resolve());
  });
  for (const c of chunks) {
    if (sock.destroyed) break;
    sock.write(c);
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  await new Promise((r) => setTimeout(r, 50));
  sock.destroy();
  return Buffer.concat(got).toString("utf8");
}

/** Checks the server's byte stream is a sequence of well-formed replies (RFC 959 §4.2). */
function assertWellFormed(stream: string): void {
  const lines = stream.split("\r\n");
  lines.pop(); // text after the last CRLF: a reply cut off when we hung up
  let open: string | null = null;
  for (const l of lines) {
    if (open) {
      if (l.startsWith(`${open} `)) open = null;
      continue;
    }
    const m = /^(\d{3})([ -])/.exec(l);
    expect(m, `malformed reply line ${JSON.stringify(l)} in ${JSON.stringify(stream.slice(0, 500))}`).not.toBeNull();
    if (m![2] === "-") open = m![1]!;
  }
}

const hostileArg = fc.oneof(
  fc.constantFrom(
    "", " ", "/", "..", "../../../../etc/passwd", "/..//../", "known.txt", "new.bin", "-la", "*", "%s%s%n", "~root",
    "\u00e9t\u00e9", "a".repeat(300), "0", "-1", "99999999999999999999", "I", "A N", "E", "L 7", "S", "P", "C", "ALL", "1", "2",
    "UTF8 ON", "MLST size;type;", "HASH SHA-1", "QUOTA", "TLS", "SSL",
    "CHMOD 644 known.txt", "CHMOD 4755 known.txt", "CHMOD 0 ..", "CHMOD 7777 /", "CHMOD x y", "CHMOD",
  ),
  fc.string({ maxLength: 40 }).map((x) => x.replace(/[\r\n]/g, "")),
);

const verb = fc.constantFrom(
  "USER", "PASS", "QUIT", "PWD", "CWD", "CDUP", "MKD", "RMD", "DELE", "RNFR", "RNTO", "SIZE", "MDTM", "MFMT", "MLST",
  "TYPE", "MODE", "STRU", "ALLO", "PASV", "EPSV", "PORT", "EPRT", "REST", "RETR", "STOR", "STOU", "APPE", "LIST", "NLST",
  "MLSD", "ABOR", "SYST", "FEAT", "OPTS", "NOOP", "HELP", "STAT", "SITE", "AVBL", "HASH", "RANG", "AUTH", "PBSZ",
  "PROT", "CCC", "XCWD", "XPWD", "ACCT", "REIN", "SMNT", "XYZZY", "",
);

/** A command line; PORT/EPRT name our sink (or nonsense), logins are sometimes right. */
const commandLine = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(verb, hostileArg, fc.boolean()).map(([v, a, lower]) => `${lower ? v.toLowerCase() : v}${a ? " " + a : ""}`) },
  { weight: 1, arbitrary: fc.constant("USER alice\r\nPASS secret") },
  { weight: 1, arbitrary: fc.constantFrom(() => `PORT 127,0,0,1,${sinkPort >> 8},${sinkPort & 255}`, () => `EPRT |1|127.0.0.1|${sinkPort}|`).map((f) => f()) },
  // A data set-up and a transfer right behind it, often cut short by the next command or the hang-up.
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom("PASV", "EPSV", "PORT", "EPRT"),
        fc.constantFrom("RETR known.txt", "LIST", "NLST -la", "MLSD", "STOR up.bin", "STOU up.bin", "STOU", "APPE up.bin", "RETR missing", "ABOR", "STAT"),
      )
      .map(([setup, transfer]) => {
        const line =
          setup === "PORT" ? `PORT 127,0,0,1,${sinkPort >> 8},${sinkPort & 255}` : setup === "EPRT" ? `EPRT |1|127.0.0.1|${sinkPort}|` : setup;
        return `${line}\r\n${transfer}`;
      }),
  },
);

const eol = fc.constantFrom("\r\n", "\n", "\r", "\r\0");

describe("live server under fuzz", () => {
  it("survives random bytes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)), { minLength: 1, maxLength: 4 }),
        async (chunks) => {
          assertWellFormed(await session(chunks, 5));
        },
      ),
      { numRuns: 40, interruptAfterTimeLimit: 15_000 },
    );
  });

  it("survives random command sequences", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(commandLine, eol), { minLength: 1, maxLength: 25 }),
        fc.boolean(),
        async (cmds, loginFirst) => {
          const lines = cmds.map(([c, e]) => Buffer.from(c + e, "utf8"));
          if (loginFirst) lines.unshift(Buffer.from("USER alice\r\nPASS secret\r\n"));
          assertWellFormed(await session(lines, 3));
        },
      ),
      { numRuns: 60, interruptAfterTimeLimit: 40_000 },
    );
  });

  it("still serves a normal session afterwards, with every slot and port freed and no internal error", async () => {
    const c = await RawFtp.connect(s.port);
    await c.login("alice", "secret", { type: "I" });
    const list = await c.retrieve("LIST", { secure: false });
    expect(list.final.code).toBe(226);
    expect(list.data.toString()).toContain("untouched-by-fuzz.txt");
    const retr = await c.retrieve("RETR untouched-by-fuzz.txt", { secure: false });
    expect(retr.final.code).toBe(226);
    expect(retr.data.toString()).toBe("still here\n");
    await c.cmd("QUIT");
    for (let i = 0; i < 100 && (s.server.sessionCount > 0 || s.server.passivePorts.inUse > 0); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(s.server.sessionCount).toBe(0);
    expect(s.server.passivePorts.inUse).toBe(0);
    expect(log.events("internal-error")).toEqual([]);
    expect(log.records.filter((r) => (r.level as number) >= 50)).toEqual([]);
  });
});
