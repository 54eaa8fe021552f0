// One misbehaving session never takes the server down: an exception in a handler closes that session only (421),
// is logged, and frees its admission slot for the next client in the queue.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../../src/server/commands/table.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";
import { withTimeout } from "../helpers/util.js";
import { captureLog, type CapturedLog } from "./log-capture.js";

let s: RunningServer;
let log: CapturedLog;

// A planted bug: commands whose handlers fail the way a programming error would.
beforeAll(async () => {
  COMMANDS.XBUG = {
    handler: () => {
      throw new TypeError("planted bug: cannot read properties of undefined");
    },
    help: "XBUG (test only)",
  };
  COMMANDS.XBUGA = {
    handler: async () => {
      await new Promise((r) => setTimeout(r, 10));
      throw new RangeError("planted async bug");
    },
    help: "XBUGA (test only)",
  };
  log = captureLog("info");
  s = await startServer([{ name: "alice", password: "secret" }], { logger: log.logger, maxSessions: 1, maxQueue: 5 });
});

afterAll(async () => {
  delete COMMANDS.XBUG;
  delete COMMANDS.XBUGA;
  await s?.close();
});

describe("an exception in one session", () => {
  for (const verb of ["XBUG", "XBUGA"]) {
    it(`${verb}: closes that session with 421, logs it, and hands its slot to the next client`, async () => {
      const before = log.events("internal-error").length;
      const a = await RawFtp.connect(s.port);
      await a.login("alice", "secret", { type: "I" });
      // The only slot is taken: this one waits in the queue, silently.
      const queued = await RawFtp.open(s.port);
      const greeting = queued.read(10_000);
      const r = await a.cmd(verb);
      expect(r.code).toBe(421);
      await withTimeout(a.closed, 5000, "the failing session stayed open");
      expect((await greeting).code).toBe(220);
      await queued.login("alice", "secret", { type: "I" });
      expect((await queued.cmd("PWD")).code).toBe(257);
      const errors = log.events("internal-error");
      expect(errors.length).toBe(before + 1);
      expect(errors.at(-1)!.cmd).toBe(verb);
      expect(JSON.stringify(errors.at(-1)!.err)).toContain("planted");
      await queued.close();
    });
  }
});
