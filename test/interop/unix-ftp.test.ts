// The classic Unix ftp client (Debian's inetutils-ftp) against myftpd: "mget *.txt" sends NLST *.txt and fetches
// each name it gets back, so it works only when the server expands the pattern.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { killRunning } from "../helpers/util.js";
import { run } from "./fixtures.js";

let srv: RunningServer;
let home: string;
let local: string;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "secret" }]);
  home = srv.homeOf("alice");
  for (const n of ["a.txt", "b.txt", "c.log", ".dot.txt"]) writeFileSync(path.join(home, n), `content of ${n}`);
  mkdirSync(path.join(home, "docs"));
  for (const n of ["x1.txt", "x2.txt", "y.md"]) writeFileSync(path.join(home, "docs", n), `doc ${n}`);
  local = tempDir("myftp-unixftp-");
});
afterEach(() => killRunning());
afterAll(async () => {
  killRunning();
  await srv.close();
  rmSync(local, { recursive: true, force: true });
});

/** Runs ftp with a command script in `cwd` (-n: no auto-login, -i: no mget prompts, -p: passive). */
function ftp(commands: string[], cwd: string) {
  const input = ["user alice secret", "binary", ...commands, "quit", ""].join("\n");
  return run("inetutils-ftp", ["-n", "-i", "-p", "127.0.0.1", String(srv.port)], { input, cwd });
}

describe("classic Unix ftp", () => {
  it("mget *.txt fetches every matching file and nothing else", async () => {
    const dir = path.join(local, "top");
    mkdirSync(dir);
    const r = await ftp(["mget *.txt"], dir);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["a.txt", "b.txt"]);
    expect(readFileSync(path.join(dir, "a.txt"), "utf8")).toBe("content of a.txt");
  });

  it("mget docs/x?.txt fetches from a directory; ls of a pattern lists the matches", async () => {
    const dir = path.join(local, "sub");
    mkdirSync(path.join(dir, "docs"), { recursive: true });
    const r = await ftp(["mget docs/x?.txt", "ls *.log"], dir);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(path.join(dir, "docs")).sort()).toEqual(["x1.txt", "x2.txt"]);
    expect(r.stdout).toMatch(/^-rw-r--r-- 1 alice alice +\d+ .* c\.log$/m);
    expect(existsSync(path.join(dir, "y.md"))).toBe(false);
  });
});
