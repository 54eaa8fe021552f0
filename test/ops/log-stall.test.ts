// A reader of the server's standard output (the JSON log) that stops reading must neither stall the sessions nor hold
// the shutdown: the log waits on the event loop, bounded, and SIGTERM still ends the server within its 5 seconds.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { MYFTPD_BIN, tempDir } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("a log reader that stops reading", () => {
  it("does not keep SIGTERM from ending the server", async () => {
    const data = tempDir();
    dirs.push(data);
    const child = spawn(process.execPath, [MYFTPD_BIN, "serve", "--data", data, "--host", "127.0.0.1", "--port", "0", "--log-level", "debug"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      // Standard output is never read past what the pipe and this end's buffer hold.
      child.stdout!.pause();
      let err = "";
      child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
      const login = await new Promise<{ port: number; password: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`myftpd did not start:\n${err}`)), 15_000);
        child.stderr!.on("data", () => {
          const m = /ftp:\/\/demo:([^@\s]+)@[^:\s]+:(\d+)/.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve({ password: m[1]!, port: Number(m[2]) });
          }
        });
      });
      const c = await RawFtp.login(login.port, "demo", login.password);
      // Each command is a debug line of the log: megabytes of them, far past what the pipe holds.
      for (let i = 0; i < 6000; i++) {
        c.send("NOOP");
        if (i % 100 === 99) for (let j = 0; j < 100; j++) expect((await c.read()).code).toBe(200);
      }
      expect((await c.cmd("PWD")).code).toBe(257);
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running"), 10_000))]);
      expect(code).toBe(0);
      await c.close().catch(() => undefined);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
