// A config file that starts with a UTF-8 byte order mark (as some editors save it) is read like one without, JSON as
// well as TOML: JSON.parse refused the mark with "Unexpected token" naming an invisible character.
import { rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runMyftpd as myftpd, startServerProcess, tempDir, type RunningProcess } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const dirs: string[] = [];
const procs: RunningProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("a config file with a byte order mark", () => {
  it("is read by serve and the user commands, JSON and TOML alike", async () => {
    const top = tempDir("myftp-bom-");
    dirs.push(top);
    const json = path.join(top, "myftpd.json");
    const toml = path.join(top, "myftpd.toml");
    writeFileSync(json, '\uFEFF{ "data": "data", "max-sessions-per-user": 1 }\n');
    writeFileSync(toml, '\uFEFFdata = "data"\nmax-sessions-per-user = 1\n');
    const add = await myftpd(["user", "add", "alice", "--password-stdin", "--config", json], "pw\n");
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain(path.join(top, "data", "home", "alice"));
    for (const file of [json, toml]) {
      const r = await myftpd(["user", "list", "--config", file]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^alice /m);
    }

    const p = await startServerProcess(["--log-level", "silent", "--config", json], path.join(top, "data"));
    procs.push(p);
    const c = await RawFtp.login(p.port, "alice", "pw");
    try {
      // max-sessions-per-user = 1 from the file is in force: a second login is refused.
      const second = await RawFtp.connect(p.port);
      await second.expect("USER alice", 331);
      expect((await second.cmd("PASS pw")).code).toBe(421);
      await second.close();
    } finally {
      await c.close();
    }
  });
});
