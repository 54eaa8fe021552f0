// basic-ftp (its Client, in-process) against myftpd: every fixture size both ways over EPSV and PASV, listings,
// resume both ways, directory upload/download, UTF-8 and odd names, and jail escapes refused.
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Client, enterPassiveModeIPv4, enterPassiveModeIPv6, FTPError } from "basic-ftp";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { sha256File } from "../helpers/util.js";
import { makeFixtures, ODD_NAMES, SIZES } from "./fixtures.js";

let srv: RunningServer;
let home: string;
let local: string;
let hashes: Map<string, string>;
const clients: Client[] = [];

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "bf-secret" }]);
  home = srv.homeOf("alice");
  local = tempDir("myftp-basicftp-");
  hashes = makeFixtures(path.join(local, "src"), { big: true });
  symlinkSync("/etc", path.join(home, "etc"));
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await srv.close();
  rmSync(local, { recursive: true, force: true });
});

async function connect(strategy: "EPSV" | "PASV" = "EPSV"): Promise<Client> {
  const c = new Client(30_000);
  clients.push(c);
  await c.access({ host: "127.0.0.1", port: srv.port, user: "alice", password: "bf-secret" });
  c.prepareTransfer = strategy === "EPSV" ? enterPassiveModeIPv6 : enterPassiveModeIPv4;
  return c;
}

async function rejectsWith(p: Promise<unknown>, code: number): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected FTP error ${code}`).toBeInstanceOf(FTPError);
  expect((err as FTPError).code).toBe(code);
}

describe.each(["EPSV", "PASV"] as const)("basic-ftp over %s", (strategy) => {
  it("uploads and downloads every size and odd name, byte for byte", async () => {
    const c = await connect(strategy);
    const dir = `bf-${strategy}`;
    await c.ensureDir(dir);
    expect(await c.pwd()).toBe(`/${dir}`);
    const out = path.join(local, `out-${strategy}`);
    mkdirSync(out, { recursive: true });
    for (const name of [...Object.keys(SIZES), ...ODD_NAMES]) {
      if (strategy === "PASV" && name === "fifty.bin") continue;
      await c.uploadFrom(path.join(local, "src", name), name);
      expect(await sha256File(path.join(home, dir, name)), name).toBe(hashes.get(name));
      expect(await c.size(name)).toBe(statSync(path.join(local, "src", name)).size);
      await c.downloadTo(path.join(out, name), name);
      expect(await sha256File(path.join(out, name)), name).toBe(hashes.get(name));
    }
    rmSync(out, { recursive: true });
    await c.cd("/");
    await c.removeDir(dir);
    expect(existsSync(path.join(home, dir))).toBe(false);
  });
});

describe("basic-ftp", () => {
  it("reads FEAT", async () => {
    const c = await connect();
    const f = await c.features();
    for (const k of ["EPSV", "EPRT", "SIZE", "MDTM", "REST", "UTF8", "MLST", "TVFS"]) expect(f.has(k), k).toBe(true);
    expect(f.get("REST")).toBe("STREAM");
  });

  it("lists with MLSD: names, sizes, types and dates", async () => {
    const c = await connect();
    await c.ensureDir("bf-list");
    mkdirSync(path.join(home, "bf-list", "sub dir"));
    writeFileSync(path.join(home, "bf-list", "测试文件.txt"), "12345");
    writeFileSync(path.join(home, "bf-list", "-dash"), "");
    const list = await c.list();
    const byName = new Map(list.map((e) => [e.name, e]));
    expect([...byName.keys()].sort()).toEqual(["-dash", "sub dir", "测试文件.txt"].sort());
    expect(byName.get("测试文件.txt")!.size).toBe(5);
    expect(byName.get("测试文件.txt")!.isFile).toBe(true);
    expect(byName.get("sub dir")!.isDirectory).toBe(true);
    expect(byName.get("-dash")!.modifiedAt).toBeInstanceOf(Date);
  });

  it("rename, remove, lastMod, cdup", async () => {
    const c = await connect();
    await c.ensureDir("bf-ops");
    writeFileSync(path.join(home, "bf-ops", "a.txt"), "a");
    await c.rename("a.txt", "b c.txt");
    expect(readFileSync(path.join(home, "bf-ops", "b c.txt"), "utf8")).toBe("a");
    const t = await c.lastMod("b c.txt");
    expect(Math.abs(t.getTime() - statSync(path.join(home, "bf-ops", "b c.txt")).mtimeMs)).toBeLessThan(1000);
    await c.remove("b c.txt");
    expect(existsSync(path.join(home, "bf-ops", "b c.txt"))).toBe(false);
    await c.cdup();
    expect(await c.pwd()).toBe("/");
    await rejectsWith(c.remove("bf-ops/nothing"), 550);
  });

  it("resumes a download with startAt and an upload with appendFrom", async () => {
    const c = await connect();
    await c.ensureDir("bf-resume");
    const src = readFileSync(path.join(local, "src", "mib.bin"));
    writeFileSync(path.join(home, "bf-resume", "mib.bin"), src);
    const partial = path.join(local, "partial.bin");
    writeFileSync(partial, src.subarray(0, 500_000));
    await c.downloadTo(createWriteStream(partial, { flags: "a" }), "mib.bin", 500_000);
    expect(await sha256File(partial)).toBe(hashes.get("mib.bin"));

    writeFileSync(path.join(home, "bf-resume", "up.bin"), src.subarray(0, 250_000));
    await c.appendFrom(path.join(local, "src", "mib.bin"), "up.bin", { localStart: 250_000 });
    expect(await sha256File(path.join(home, "bf-resume", "up.bin"))).toBe(hashes.get("mib.bin"));
  });

  it("uploads and downloads a whole directory tree", async () => {
    const c = await connect();
    const tree = path.join(local, "tree");
    makeFixtures(path.join(tree, "nested 目录"));
    writeFileSync(path.join(tree, "top.txt"), "top");
    await c.uploadFromDir(tree, "bf-tree");
    expect(readFileSync(path.join(home, "bf-tree", "top.txt"), "utf8")).toBe("top");
    expect(await sha256File(path.join(home, "bf-tree", "nested 目录", "mib.bin"))).toBe(await sha256File(path.join(tree, "nested 目录", "mib.bin")));
    await c.cd("/");
    const back = path.join(local, "tree-back");
    await c.downloadToDir(back, "bf-tree");
    for (const name of ["top.txt", "nested 目录/mib.bin", "nested 目录/测试文件.txt", "nested 目录/-leading-dash.txt"]) {
      expect(await sha256File(path.join(back, name)), name).toBe(await sha256File(path.join(tree, name)));
    }
  });

  it("cannot escape the home", async () => {
    const c = await connect();
    const stolen = path.join(local, "stolen");
    for (const p of ["../../../../etc/passwd", "/etc/passwd", "etc/passwd", "/../etc/hostname"]) {
      await rejectsWith(c.downloadTo(stolen, p), 550);
    }
    expect(existsSync(stolen) ? readFileSync(stolen, "utf8") : "").not.toContain("root:");
    await rejectsWith(c.cd("etc"), 550);
    await rejectsWith(c.cd("/etc"), 550);
    await rejectsWith(c.list("/etc"), 550);
    await rejectsWith(c.uploadFrom(path.join(local, "src", "one.bin"), "etc/myftp-basicftp-never"), 550);
    expect(existsSync("/etc/myftp-basicftp-never")).toBe(false);
    await c.cd("../../..");
    expect(await c.pwd()).toBe("/");
  });
});
