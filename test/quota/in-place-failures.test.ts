// An overwrite written in place (the directory does not let the server replace the file) whose first write fails
// after the cut at the offset (a full disk, a file system quota, an I/O error): the old bytes past the offset are gone
// by then, so the file keeps the old prefix, exactly, never the old size filled with zeros, and the usage matches it.
// The failing write and the unwritable directory are simulated: a full disk under a non-root server in a read-only
// directory cannot be set up in a test.
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, expect, it, vi } from "vitest";
import { LocalStorage, OpenFile } from "../../src/storage/local.js";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { bytesOnDisk, Ctl } from "../qa/qa-util.js";

let srv: RunningServer | undefined;
const ctls: Ctl[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of ctls.splice(0)) c.close();
  await srv?.close();
  srv = undefined;
});

it.each([0, 1000])("a STOR in place (REST %i) whose first write fails keeps the old prefix, and the usage matches", async (rest) => {
  srv = await startServer([{ name: "alice", password: "secret" }]);
  const home = srv.homeOf("alice");
  const old = Buffer.alloc(100_000, 0x41);
  writeFileSync(path.join(home, "f"), old);
  const a = await Ctl.login(srv.port);
  ctls.push(a);
  vi.spyOn(LocalStorage.prototype, "mayReplace").mockResolvedValue(false);
  const writev = OpenFile.prototype.writev;
  let failed = false;
  vi.spyOn(OpenFile.prototype, "writev").mockImplementation(function (this: OpenFile, b, p) {
    if (!failed) {
      failed = true;
      return Promise.reject(Object.assign(new Error("No space left on device"), { code: "ENOSPC" }));
    }
    return writev.call(this, b, p);
  });
  if (rest) await a.expect(`REST ${rest}`, 350);
  const r = await a.store("STOR f", Buffer.alloc(5000, 0x42));
  expect(r.final.code).toBe(452);
  expect(failed).toBe(true);
  expect(readFileSync(path.join(home, "f")).equals(old.subarray(0, rest))).toBe(true);
  expect(await a.used()).toBe(bytesOnDisk(home));
});
