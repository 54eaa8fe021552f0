// curl against myftpd: downloads and uploads of every fixture size (SHA-256 compared), -C - resume both ways,
// --ftp-create-dirs, EPSV, PASV (--disable-epsv), active mode (-P -, EPRT and PORT), UTF-8 and odd names, and jail
// escapes refused.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, tempDir, type RunningServer } from "../helpers/myftpd.js";
import { killRunning, sha256File } from "../helpers/util.js";
import { makeFixtures, ODD_NAMES, run, SIZES } from "./fixtures.js";

let srv: RunningServer;
let home: string;
let local: string;
let hashes: Map<string, string>;

beforeAll(async () => {
  srv = await startServer([{ name: "alice", password: "s3cret pw" }]);
  home = srv.homeOf("alice");
  local = tempDir("myftp-curl-");
  hashes = makeFixtures(path.join(local, "src"), { big: true });
});
afterEach(() => killRunning());
afterAll(async () => {
  killRunning();
  await srv.close();
  rmSync(local, { recursive: true, force: true });
});

const enc = (p: string) => p.split("/").map(encodeURIComponent).join("/");
const url = (p: string) => `ftp://alice:${encodeURIComponent("s3cret pw")}@127.0.0.1:${srv.port}/${enc(p)}`;

function curl(args: string[]) {
  return run("curl", ["-sS", "--max-time", "60", "--connect-timeout", "5", ...args]);
}

let n = 0;
function fresh(): { remote: string; out: string } {
  const name = `c${n++}`;
  mkdirSync(path.join(home, name));
  const out = path.join(local, name);
  mkdirSync(out);
  return { remote: name, out };
}

const modes: [string, string[]][] = [
  ["EPSV", []],
  ["PASV (--disable-epsv)", ["--disable-epsv"]],
  ["active EPRT (-P -)", ["-P", "-"]],
  ["active PORT (-P - --disable-eprt)", ["-P", "-", "--disable-eprt"]],
];

describe.each(modes)("curl over %s", (_label, flags) => {
  it("uploads with -T and downloads every size, byte for byte", async () => {
    const { remote, out } = await fresh();
    const names = _label === "EPSV" ? Object.keys(SIZES) : ["zero.bin", "one.bin", "mib.bin"];
    for (const name of names) {
      const up = await curl([...flags, "-T", path.join(local, "src", name), url(`${remote}/${name}`)]);
      expect(up.code, `${name}: ${up.stderr}`).toBe(0);
      expect(await sha256File(path.join(home, remote, name))).toBe(hashes.get(name));
      const down = await curl([...flags, "-o", path.join(out, name), url(`${remote}/${name}`)]);
      expect(down.code, `${name}: ${down.stderr}`).toBe(0);
      expect(await sha256File(path.join(out, name))).toBe(hashes.get(name));
      rmSync(path.join(out, name));
    }
    rmSync(path.join(home, remote), { recursive: true });
  });

  it("lists a directory", async () => {
    const { remote } = await fresh();
    writeFileSync(path.join(home, remote, "listed.txt"), "x");
    const r = await curl([...flags, url(`${remote}/`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^-rw.* listed\.txt\r?\n$/);
    const names = await curl([...flags, "--list-only", url(`${remote}/`)]);
    expect(names.stdout.split(/\r?\n/)).toEqual(["listed.txt", ""]);
  });
});

describe("curl resume with -C -", () => {
  it("resumes a download from the local partial file", async () => {
    const { remote, out } = await fresh();
    const src = readFileSync(path.join(local, "src", "mib.bin"));
    writeFileSync(path.join(home, remote, "mib.bin"), src);
    const partial = path.join(out, "mib.bin");
    writeFileSync(partial, src.subarray(0, 300_001));
    const r = await curl(["-C", "-", "-o", partial, url(`${remote}/mib.bin`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(partial)).toBe(hashes.get("mib.bin"));
  });

  it("resumes an upload onto the server's partial file", async () => {
    const { remote } = await fresh();
    const src = readFileSync(path.join(local, "src", "mib.bin"));
    const target = path.join(home, remote, "mib.bin");
    writeFileSync(target, src.subarray(0, 654_321));
    const r = await curl(["-C", "-", "-T", path.join(local, "src", "mib.bin"), url(`${remote}/mib.bin`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(target).size).toBe(src.length);
    expect(await sha256File(target)).toBe(hashes.get("mib.bin"));
  });

  it("resumes a 50 MiB download cut in the middle", async () => {
    const { remote, out } = await fresh();
    const src = readFileSync(path.join(local, "src", "fifty.bin"));
    writeFileSync(path.join(home, remote, "fifty.bin"), src);
    const partial = path.join(out, "fifty.bin");
    writeFileSync(partial, src.subarray(0, 17 * 1024 * 1024 + 5));
    const r = await curl(["-C", "-", "-o", partial, url(`${remote}/fifty.bin`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(partial)).toBe(hashes.get("fifty.bin"));
    rmSync(path.join(home, remote), { recursive: true });
    rmSync(out, { recursive: true });
  });
});

describe("curl paths and names", () => {
  it("creates missing directories with --ftp-create-dirs", async () => {
    const { remote } = await fresh();
    const r = await curl(["--ftp-create-dirs", "-T", path.join(local, "src", "one.bin"), url(`${remote}/a/b/c/one.bin`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(path.join(home, remote, "a", "b", "c", "one.bin"))).toBe(hashes.get("one.bin"));
    // Without the flag the upload into a missing directory fails.
    const no = await curl(["-T", path.join(local, "src", "one.bin"), url(`${remote}/x/y/one.bin`)]);
    expect(no.code).not.toBe(0);
    expect(existsSync(path.join(home, remote, "x"))).toBe(false);
  });

  it("moves UTF-8 names, names with spaces and a leading dash both ways", async () => {
    const { remote, out } = await fresh();
    for (const name of ODD_NAMES) {
      const up = await curl(["-T", path.join(local, "src", name), url(`${remote}/${name}`)]);
      expect(up.code, `${name}: ${up.stderr}`).toBe(0);
      expect(await sha256File(path.join(home, remote, name))).toBe(hashes.get(name));
      const down = await curl(["-o", path.join(out, "dl"), url(`${remote}/${name}`)]);
      expect(down.code, `${name}: ${down.stderr}`).toBe(0);
      expect(await sha256File(path.join(out, "dl"))).toBe(hashes.get(name));
    }
    const list = await curl(["--list-only", url(`${remote}/`)]);
    expect(list.stdout.split(/\r?\n/).filter(Boolean).sort()).toEqual([...ODD_NAMES].sort());
  });

  it("runs -Q commands: MKD, RNFR/RNTO, DELE", async () => {
    const { remote } = await fresh();
    writeFileSync(path.join(home, remote, "old.txt"), "o");
    const r = await curl(["-Q", `MKD ${remote}/made`, "-Q", `RNFR ${remote}/old.txt`, "-Q", `RNTO ${remote}/new.txt`, url(`${remote}/`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(path.join(home, remote, "made")).isDirectory()).toBe(true);
    expect(readFileSync(path.join(home, remote, "new.txt"), "utf8")).toBe("o");
    const d = await curl(["-Q", `DELE ${remote}/new.txt`, url(`${remote}/`)]);
    expect(d.code, d.stderr).toBe(0);
    expect(existsSync(path.join(home, remote, "new.txt"))).toBe(false);
  });
});

describe("curl and the jail", () => {
  beforeAll(() => {
    symlinkSync("/etc", path.join(home, "etc"));
    symlinkSync("/etc/passwd", path.join(home, "passwd"));
  });

  it("cannot read /etc/passwd through .., an absolute path or a planted link", async () => {
    const out = path.join(local, "stolen");
    const attempts = [
      ["--path-as-is", url("../../../../etc/passwd")],
      [url("etc/passwd")],
      [`ftp://alice:${encodeURIComponent("s3cret pw")}@127.0.0.1:${srv.port}/%2Fetc%2Fpasswd`],
      [`ftp://alice:${encodeURIComponent("s3cret pw")}@127.0.0.1:${srv.port}/%2F..%2F..%2Fetc%2Fpasswd`],
      [url("passwd")],
      [url("etc/")],
    ];
    for (const a of attempts) {
      const r = await curl(["-o", out, ...a]);
      expect(r.code, a.join(" ")).not.toBe(0);
      expect(existsSync(out) ? readFileSync(out, "utf8") : "").not.toContain("root:");
      rmSync(out, { force: true });
    }
  });

  it("cannot upload through a planted link", async () => {
    const r = await curl(["-T", path.join(local, "src", "one.bin"), url("etc/myftp-curl-never")]);
    expect(r.code).not.toBe(0);
    expect(existsSync("/etc/myftp-curl-never")).toBe(false);
  });
});
