// A password written in the URL is a secret: messages that repeat the URL (a bad URL, a URL naming a directory) show
// it with the password hidden, in one-shot commands and in the shell alike.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, killAll, runMyftp, tempDir } from "../client/cli-helpers.js";

describe("passwords in URLs are not repeated in messages", () => {
  let work: { path: string; remove(): Promise<void> };

  beforeAll(async () => {
    assertBuilt();
    work = await tempDir("myftp-qa2-url-");
  });
  afterEach(() => killAll());
  afterAll(async () => {
    killAll();
    await work?.remove();
  });

  it("a bad port", async () => {
    const r = await runMyftp(["ls", "ftp://alice:s3cr%2Ft@127.0.0.1:99999/"], { cwd: work.path });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('myftp: bad URL "ftp://alice:***@127.0.0.1:99999/": invalid port "99999"\n');
  });

  it("bad percent-encoding in the password itself", async () => {
    const r = await runMyftp(["ls", "ftp://alice:pa%zzss@127.0.0.1:21/"], { cwd: work.path });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('myftp: bad URL "ftp://alice:***@127.0.0.1:21/": invalid percent-encoding\n');
  });

  it("a space in the password: the message says where it is and how to write it", async () => {
    const r = await runMyftp(["ls", "ftp://alice:my secret@127.0.0.1:21/"], { cwd: work.path });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('myftp: bad URL "ftp://alice:***@127.0.0.1:21/": spaces in the user name or password (write a space as %20)\n');
    const host = await runMyftp(["ls", "ftp://alice:pw@local host:21/"], { cwd: work.path });
    expect(host.stderr).toBe('myftp: bad URL "ftp://alice:***@local host:21/": spaces in the host part\n');
  });

  it("get of a URL that names a directory", async () => {
    const r = await runMyftp(["get", "ftp://alice:p@ss@127.0.0.1:1/some/dir/"], { cwd: work.path });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("myftp: get: the URL names a directory, not a file: ftp://alice:***@127.0.0.1:1/some/dir/\n");
  });

  it("open in the shell", async () => {
    const r = await runMyftp([], { cwd: work.path, stdin: "open ftps://bob:hunter2@[::1:21/\n" });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('myftp: open: bad URL "ftps://bob:***@[::1:21/": unclosed "[" in IPv6 address\n');
  });
});
