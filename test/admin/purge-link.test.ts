// `myftpd user del --purge` of a user whose home is a symbolic link removes the link only (rm does not follow it):
// the message says so and names the directory that is kept with the user's files, where it claimed to have
// removed the home.
import { existsSync, lstatSync, mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runMyftpd as myftpd, tempDir } from "../helpers/myftpd.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("user del --purge of a home that is a symbolic link", () => {
  it("removes the link, keeps the directory it leads to, and says which", async () => {
    const top = tempDir("myftp-purgelink-");
    dirs.push(top);
    const data = path.join(top, "data");
    const real = path.join(top, "real-home");
    mkdirSync(real);
    writeFileSync(path.join(real, "report.pdf"), "x".repeat(100));
    const link = path.join(top, "home-link");
    symlinkSync(real, link);
    expect((await myftpd(["user", "add", "alice", "--home", link, "--password-stdin", "--data", data], "pw\n")).code).toBe(0);

    const r = await myftpd(["user", "del", "alice", "--purge", "--data", data]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`removed ${link}, a symbolic link`);
    expect(r.stdout).toContain(`${realpathSync(real)}, is kept with its files`);
    expect(() => lstatSync(link)).toThrow();
    expect(existsSync(path.join(real, "report.pdf"))).toBe(true);

    // A plain home is still removed, with the plain message.
    expect((await myftpd(["user", "add", "bob", "--password-stdin", "--data", data], "pw\n")).code).toBe(0);
    const b = await myftpd(["user", "del", "bob", "--purge", "--data", data]);
    expect(b.stdout.trim()).toBe(`deleted user bob and removed ${path.join(data, "home", "bob")}`);
    expect(existsSync(path.join(data, "home", "bob"))).toBe(false);
  });
});
