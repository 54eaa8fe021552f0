// myftp's usage line is `myftp [options] [command] [url]`: the options its help lists before the commands must
// work there too, not only after the command name. The server requires TLS, so a --tls that is dropped shows.

import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { myftp, myftpd } from "./qa-util.js";

describe("myftp options before the command", () => {
  let srv: RunningServer;
  let work: string;
  let ca: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), "myftp-qa-opts-"));
    const certDir = path.join(work, "certdata");
    const made = await myftpd(["cert", "--data", certDir, "--host", "localhost"]);
    expect(made.code).toBe(0);
    ca = path.join(certDir, "tls", "cert.pem");
    srv = await startServer([{ name: "alice", password: "secret" }], {
      tls: { cert: readFileSync(ca), key: readFileSync(path.join(certDir, "tls", "key.pem")) },
      requireTls: true,
    });
    writeFileSync(path.join(srv.homeOf("alice"), "h.txt"), "hello\n");
  });
  afterAll(async () => {
    await srv?.close();
  });

  const url = (p: string) => `ftp://alice:secret@localhost:${srv.port}/${p}`;

  it("--tls --ca FILE get: the certificate given before `get` is trusted", async () => {
    const r = await myftp(["--tls", "--ca", ca, "get", url("h.txt"), path.join(work, "a.txt")], { home: work });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(work, "a.txt"), "utf8")).toBe("hello\n");
  });

  it("--quiet get prints nothing", async () => {
    const r = await myftp(["--quiet", "get", "--tls", "--ca", ca, url("h.txt"), path.join(work, "b.txt")], { home: work });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(readFileSync(path.join(work, "b.txt"), "utf8")).toBe("hello\n");
  });

  it("a bad value before the command is refused; the same option after the command wins", async () => {
    const bad = await myftp(["--retries", "x", "ls", "--tls", "--ca", ca, url("")], { home: work });
    expect(bad.stderr).toContain("--retries");
    expect(bad.code).toBe(2);
    const ok = await myftp(["--retries", "x", "ls", "--retries", "1", "--tls", "--ca", ca, url("")], { home: work });
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("h.txt");
  });
});
