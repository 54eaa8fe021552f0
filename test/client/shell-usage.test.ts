// Usage messages in the shell name the command that was typed.
import { describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { clientWorkDir, runMyftp } from "./cli-helpers.js";

const USER = { name: "alice", password: "pw" };

describe("shell usage messages", () => {
  let s: RunningServer;
  const work = clientWorkDir(async () => {
    await s?.close();
  });

  it("rm and mget with nothing after -- each show their own usage", async () => {
    s = await startServer([{ ...USER, quota: null }]);
    const r = await runMyftp([s.url(USER.name, USER.password, "/")], { cwd: work.path, stdin: "mget --\nrm --\n" });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("myftp: mget: usage: mget PATTERN...\nmyftp: rm: usage: rm FILE...\n");
  });
});
