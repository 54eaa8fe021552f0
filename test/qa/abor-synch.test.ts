// ABOR sent as RFC 959 §4.1.3 asks, the way lftp sends it: Telnet IP, then IAC and the Synch's DM byte as TCP
// urgent data, then "ABOR\r\n". Linux takes the urgent byte out of the stream, so the server reads
// IAC IP IAC "ABOR\r\n". The transfer must stop with 426 and 226; an upload the client gave up on must not be taken
// for a complete file.
//
// BSD-style clients (the classic Unix ftp) send IAC IP, then the IAC before DM as urgent data, then DM "ABOR\r\n":
// the server reads IAC IP DM "ABOR\r\n". Both forms, the one with nothing urgent (IAC IP IAC DM "ABOR") and plain
// IAC IP "ABOR" must abort a transfer the same way, without a 501 for the leftover DM.
//
// Node cannot send urgent data, so the client side is a short Python script using the socket API's MSG_OOB.

import { statSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { run } from "./qa-util.js";

const SCRIPT = String.raw`
import json, re, socket, sys, time
port = int(sys.argv[1]); verb = sys.argv[2]; style = sys.argv[3] if len(sys.argv) > 3 else "lftp"
c = socket.create_connection(("127.0.0.1", port), timeout=10)
f = c.makefile("rb")
def reply():
    line = f.readline().decode()
    first = line
    while re.match(r"^\d{3}-", first) and not line.startswith(first[:3] + " "):
        line = f.readline().decode()
    return line.strip()
out = {"greeting": reply()}
for cmd in ["USER alice", "PASS secret", "TYPE I"]:
    c.sendall((cmd + "\r\n").encode()); reply()
c.sendall(b"EPSV\r\n")
dport = int(re.search(r"\|\|\|(\d+)\|", reply()).group(1))
d = socket.create_connection(("127.0.0.1", dport), timeout=10)
c.sendall((verb + " f.bin\r\n").encode())
out["opening"] = reply()
if verb == "STOR":
    d.sendall(b"x" * 100000)
else:
    d.recv(65536)
time.sleep(0.3)
if style == "lftp":
    # IAC IP, then IAC DM with DM as urgent data, then the command.
    c.sendall(b"\xff\xf4\xff")
    c.send(b"\xf2", socket.MSG_OOB)
    c.sendall(b"ABOR\r\n")
elif style == "bsd":
    # IAC IP, then IAC as urgent data, then DM and the command.
    c.sendall(b"\xff\xf4")
    c.send(b"\xff", socket.MSG_OOB)
    c.sendall(b"\xf2ABOR\r\n")
elif style == "inline":
    c.sendall(b"\xff\xf4\xff\xf2ABOR\r\n")
else:
    c.sendall(b"\xff\xf4ABOR\r\n")
c.settimeout(5)
try:
    out["after"] = [reply(), reply()]
except Exception as e:
    out["after"] = ["no reply: " + repr(e)]
d.close()
c.settimeout(5)
c.sendall(b"NOOP\r\n")
try:
    out["noop"] = reply()
except Exception as e:
    out["noop"] = "no reply: " + repr(e)
print(json.dumps(out))
`;

describe("ABOR with the Telnet Synch (lftp)", () => {
  let srv: RunningServer | undefined;
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
  });

  it("stops an upload with 426 then 226, and the file holds only what arrived", async () => {
    srv = await startServer([{ name: "alice", password: "secret" }]);
    const r = await run("python3", ["-c", SCRIPT, String(srv.port), "STOR"], { timeoutMs: 30_000 });
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { opening: string; after: string[]; noop: string };
    expect(out.opening).toMatch(/^150 /);
    expect(out.after.map((l) => l.slice(0, 3))).toEqual(["426", "226"]);
    expect(out.noop).toMatch(/^200 /);
    expect(statSync(path.join(srv.homeOf("alice"), "f.bin")).size).toBe(100_000);
  });

  it("stops a download with 426 then 226", async () => {
    srv = await startServer([{ name: "alice", password: "secret" }]);
    const { writeFileSync } = await import("node:fs");
    writeFileSync(path.join(srv.homeOf("alice"), "f.bin"), Buffer.alloc(64 << 20));
    const r = await run("python3", ["-c", SCRIPT, String(srv.port), "RETR"], { timeoutMs: 30_000 });
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { opening: string; after: string[]; noop: string };
    expect(out.opening).toMatch(/^150 /);
    expect(out.after.map((l) => l.slice(0, 3))).toEqual(["426", "226"]);
    expect(out.noop).toMatch(/^200 /);
  });

  for (const style of ["bsd", "inline", "ip"] as const) {
    it(`stops a 50 MB download with 426 then 226, and no 501, for the ${style} form`, async () => {
      srv = await startServer([{ name: "alice", password: "secret" }]);
      const { writeFileSync } = await import("node:fs");
      writeFileSync(path.join(srv.homeOf("alice"), "f.bin"), Buffer.alloc(50 << 20));
      const r = await run("python3", ["-c", SCRIPT, String(srv.port), "RETR", style], { timeoutMs: 30_000 });
      expect(r.stderr).toBe("");
      const out = JSON.parse(r.stdout) as { opening: string; after: string[]; noop: string };
      expect(out.opening).toMatch(/^150 /);
      // The replies come while the data connection is still open (the script closes it only afterwards).
      expect(out.after.map((l) => l.slice(0, 3))).toEqual(["426", "226"]);
      expect(out.noop).toMatch(/^200 /);
    });
  }
});
