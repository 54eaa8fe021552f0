// The home jail: `..`, absolute paths, and symlinks planted in a home that lead outside (to /etc, to a file outside,
// dangling to outside). Nothing outside the home is ever read, listed, written, renamed or deleted.
//
// Reads and listings go at /etc; anything that could change a file goes at an "outside" directory of the test's own,
// so a failure of the jail can never damage the machine.
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../helpers/myftpd.js";
import { RawFtp } from "../helpers/raw-ftp.js";

let srv: RunningServer;
let home: string;
let outside: string;
const SECRET = "outside secret\n";
const open: RawFtp[] = [];

function snapshot(): string {
  // Names, sizes, contents and mtimes of everything in the outside directory.
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      const st = lstatSync(p);
      out.push(`${path.relative(outside, p)} ${st.isDirectory() ? "dir" : st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(readFileSync(p, "latin1"));
    }
  };
  walk(outside);
  return out.join("\n");
}

let before = "";

beforeAll(async () => {
  srv = await startServer([
    { name: "alice", password: "secret" },
    { name: "bob", password: "bobpw" },
  ]);
  home = srv.homeOf("alice");
  outside = mkdtempSync(path.join(tmpdir(), "myftp-outside-"));
  writeFileSync(path.join(outside, "secret.txt"), SECRET);
  mkdirSync(path.join(outside, "sub"));
  writeFileSync(path.join(outside, "sub", "deep.txt"), "deep");
  writeFileSync(path.join(srv.homeOf("bob"), "bob-only.txt"), "bob's");
  // Planted links.
  symlinkSync("/etc", path.join(home, "etc"));
  symlinkSync("/etc/passwd", path.join(home, "passwd"));
  symlinkSync(outside, path.join(home, "outdir"));
  symlinkSync(path.join(outside, "secret.txt"), path.join(home, "outfile"));
  symlinkSync(path.join(outside, "created-through-link.txt"), path.join(home, "dangling"));
  symlinkSync(path.join(outside, "sub"), path.join(home, "outsub"));
  symlinkSync("../../../../../../../../..", path.join(home, "up"));
  // A link that stays inside the home is fine.
  mkdirSync(path.join(home, "inside"));
  writeFileSync(path.join(home, "inside", "ok.txt"), "ok");
  symlinkSync("inside", path.join(home, "inlink"));
  writeFileSync(path.join(home, "mine.txt"), "mine");
  before = snapshot();
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  // After every test: the outside directory is exactly as it was.
  expect(snapshot()).toBe(before);
  expect(existsSync(path.join(outside, "created-through-link.txt"))).toBe(false);
});
afterAll(async () => {
  await srv.close();
  rmSync(outside, { recursive: true, force: true });
});

async function login(): Promise<RawFtp> {
  const c = await RawFtp.login(srv.port, "alice", "secret");
  open.push(c);
  expect((await c.cmd("TYPE I")).code).toBe(200);
  return c;
}

describe("`..` and absolute paths", () => {
  it("CWD .. at / stays at /", async () => {
    const c = await login();
    expect((await c.cmd("CWD ..")).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(/^"\/"/);
    expect((await c.cmd("CWD ../../../../..")).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(/^"\/"/);
    expect((await c.cmd("CDUP")).code).toBe(250);
    expect((await c.cmd("PWD")).text).toMatch(/^"\/"/);
  });

  it("lists the home for ../../.. and /", async () => {
    const c = await login();
    const a = await c.retrieve("NLST ../../..");
    const b = await c.retrieve("NLST /");
    expect(a.final.code).toBe(226);
    expect(a.data.toString()).toBe(b.data.toString());
    expect(a.data.toString()).toContain("mine.txt");
  });

  it("RETR ../../../../etc/passwd and /etc/passwd never read the real file", async () => {
    const c = await login();
    for (const p of ["../../../../../../etc/passwd", "/etc/passwd", "/../../etc/passwd", "inside/../../../../etc/hostname", "//etc/passwd"]) {
      const r = await c.retrieve(`RETR ${p}`);
      expect(r.prelim.code, p).toBe(550);
      expect(r.data.length).toBe(0);
    }
  });

  it("another user's home is out of reach", async () => {
    const c = await login();
    for (const p of ["../bob/bob-only.txt", "/../bob/bob-only.txt", "../../home/bob/bob-only.txt"]) {
      expect((await c.retrieve(`RETR ${p}`)).prelim.code, p).toBe(550);
    }
  });

  it("STOR ../escape.txt lands in the home, not above it", async () => {
    const c = await login();
    expect((await c.store("STOR ../../escape.txt", "e")).final.code).toBe(226);
    expect(readFileSync(path.join(home, "escape.txt"), "utf8")).toBe("e");
    expect(existsSync(path.join(path.dirname(home), "escape.txt"))).toBe(false);
    expect(existsSync(path.join(path.dirname(path.dirname(home)), "escape.txt"))).toBe(false);
  });

  it("MKD /../x creates /x in the home", async () => {
    const c = await login();
    expect((await c.cmd("MKD /../../made")).all).toBe('257 "/made" created');
    expect(statSync(path.join(home, "made")).isDirectory()).toBe(true);
    expect(existsSync(path.join(path.dirname(home), "made"))).toBe(false);
  });

  it("refuses CR, LF and NUL in paths with 553", async () => {
    const c = await login();
    c.sendRaw(Buffer.from("MKD bad\0name\r\n"));
    expect((await c.read()).code).toBe(553);
    c.sendRaw(Buffer.from("RETR x\0/../../etc/passwd\r\n"));
    expect((await c.read()).code).toBe(425); // no data connection: refused before the path is even looked at
    await c.epsvPort();
    c.sendRaw(Buffer.from("RETR x\0/../../etc/passwd\r\n"));
    expect((await c.read()).code).toBe(553);
    expect(readdirSync(home).some((n) => n.startsWith("bad"))).toBe(false);
  });
});

describe("a symlink to /etc planted in the home", () => {
  it("cannot be entered", async () => {
    const c = await login();
    expect((await c.cmd("CWD etc")).code).toBe(550);
    expect((await c.cmd("CWD /etc")).code).toBe(550);
    expect((await c.cmd("CWD up")).code).toBe(550);
    expect((await c.cmd("PWD")).text).toMatch(/^"\/"/);
  });

  it("cannot be listed, by LIST, NLST, MLSD, STAT or MLST", async () => {
    const c = await login();
    for (const cmd of ["LIST etc", "NLST etc", "MLSD etc", "LIST /etc", "LIST etc/", "NLST up", "LIST -la etc"]) {
      const r = await c.retrieve(cmd);
      expect(r.prelim.code, cmd).toBe(550);
      expect(r.data.toString()).toBe("");
    }
    expect((await c.cmd("STAT etc")).code).toBe(550);
    expect((await c.cmd("MLST etc")).code).toBe(550);
    expect((await c.cmd("MLST etc/passwd")).code).toBe(550);
  });

  it("gives no file through it: RETR, SIZE, MDTM, HASH all 550", async () => {
    const c = await login();
    for (const p of ["etc/passwd", "passwd", "etc/hostname", "up/etc/passwd"]) {
      const r = await c.retrieve(`RETR ${p}`);
      expect(r.prelim.code, p).toBe(550);
      expect(r.data.length).toBe(0);
      expect((await c.cmd(`SIZE ${p}`)).code, p).toBe(550);
      expect((await c.cmd(`MDTM ${p}`)).code, p).toBe(550);
      expect((await c.cmd(`HASH ${p}`)).code, p).toBe(550);
    }
  });

  it("is left out of the home's listings", async () => {
    const c = await login();
    for (const cmd of ["NLST", "LIST", "MLSD"]) {
      const text = (await c.retrieve(cmd)).data.toString();
      for (const name of ["etc", "passwd", "outdir", "outfile", "dangling", "outsub", "up"]) {
        expect(text.split("\r\n").some((l) => l === name || l.endsWith(` ${name}`)), `${cmd} shows ${name}`).toBe(false);
      }
      expect(text).toContain("inlink");
    }
    const st = await c.cmd("STAT /");
    expect(st.all).not.toMatch(/ (etc|passwd|outdir)$/m);
  });

  it("cannot be written through", async () => {
    const c = await login();
    // Only names that cannot exist under /etc: even a broken jail would create, not overwrite.
    expect((await c.store("STOR etc/myftp-jail-test-never", "x")).prelim.code).toBe(550);
    expect(existsSync("/etc/myftp-jail-test-never")).toBe(false);
    expect((await c.cmd("MKD etc/myftp-jail-test-dir")).code).toBe(550);
    expect(existsSync("/etc/myftp-jail-test-dir")).toBe(false);
  });
});

describe("symlinks to a directory and a file outside", () => {
  it("cannot read the outside file", async () => {
    const c = await login();
    for (const p of ["outfile", "outdir/secret.txt", "outsub/../secret.txt", "outsub/deep.txt"]) {
      const r = await c.retrieve(`RETR ${p}`);
      expect(r.prelim.code, p).toBe(550);
      expect(r.data.length).toBe(0);
    }
    for (const p of ["outfile", "outdir", "outsub"]) {
      expect((await c.retrieve(`LIST ${p}`)).prelim.code, p).toBe(550);
      expect((await c.cmd(`MLST ${p}`)).code, p).toBe(550);
      expect((await c.cmd(`CWD ${p}`)).code, p).toBe(550);
    }
  });

  it("cannot write, append, resume or overwrite through them", async () => {
    const c = await login();
    expect((await c.store("STOR outfile", "pwned")).prelim.code).toBe(550);
    expect((await c.store("APPE outfile", "pwned")).prelim.code).toBe(550);
    await c.cmd("REST 3");
    expect((await c.store("STOR outfile", "pwned")).prelim.code).toBe(550);
    expect((await c.store("STOR outdir/new.txt", "pwned")).prelim.code).toBe(550);
    expect((await c.store("STOR outdir/secret.txt", "pwned")).prelim.code).toBe(550);
    expect((await c.store("APPE outsub/deep.txt", "pwned")).prelim.code).toBe(550);
    expect(readFileSync(path.join(outside, "secret.txt"), "utf8")).toBe(SECRET);
    expect(existsSync(path.join(outside, "new.txt"))).toBe(false);
  });

  it("cannot create or remove directories through them", async () => {
    const c = await login();
    expect((await c.cmd("MKD outdir/newdir")).code).toBe(550);
    expect((await c.cmd("RMD outdir/sub")).code).toBe(550);
    expect((await c.cmd("RMD outsub")).code).toBe(550);
    expect((await c.cmd("XRMD outdir")).code).toBe(550);
  });

  it("cannot delete through them; deleting the link removes only the link", async () => {
    const c = await login();
    expect((await c.cmd("DELE outdir/secret.txt")).code).toBe(550);
    expect((await c.cmd("DELE outsub/deep.txt")).code).toBe(550);
    // A link of our own, so the planted ones stay for the other tests.
    symlinkSync(path.join(outside, "secret.txt"), path.join(home, "tmplink"));
    expect((await c.cmd("DELE tmplink")).code).toBe(250);
    expect(existsSync(path.join(home, "tmplink"))).toBe(false);
    expect(readFileSync(path.join(outside, "secret.txt"), "utf8")).toBe(SECRET);
  });

  it("cannot rename into, out of or across them", async () => {
    const c = await login();
    writeFileSync(path.join(home, "tomove.txt"), "move me");
    expect((await c.cmd("RNFR tomove.txt")).code).toBe(350);
    expect((await c.cmd("RNTO outdir/stolen.txt")).code).toBe(550);
    expect((await c.cmd("RNFR tomove.txt")).code).toBe(350);
    expect((await c.cmd("RNTO etc/stolen.txt")).code).toBe(550);
    expect((await c.cmd("RNFR outdir/secret.txt")).code).toBe(550);
    expect((await c.cmd("RNTO mine-now.txt")).code).toBe(503);
    expect((await c.cmd("RNFR outsub/deep.txt")).code).toBe(550);
    expect(readFileSync(path.join(home, "tomove.txt"), "utf8")).toBe("move me");
    expect(existsSync(path.join(home, "mine-now.txt"))).toBe(false);
  });

  it("renaming the link itself is refused or moves only the link", async () => {
    const c = await login();
    symlinkSync(path.join(outside, "secret.txt"), path.join(home, "link2"));
    const r = await c.cmd("RNFR link2");
    expect([350, 550]).toContain(r.code);
    if (r.code === 350) {
      expect((await c.cmd("RNTO link3")).code).toBe(250);
      expect(lstatSync(path.join(home, "link3")).isSymbolicLink()).toBe(true);
      expect((await c.retrieve("RETR link3")).prelim.code).toBe(550);
      expect((await c.cmd("DELE link3")).code).toBe(250);
    } else {
      expect(lstatSync(path.join(home, "link2")).isSymbolicLink()).toBe(true);
      expect((await c.cmd("DELE link2")).code).toBe(250);
    }
  });

  it("cannot change the outside file's time with MFMT", async () => {
    const c = await login();
    expect((await c.cmd("MFMT 20000101000000 outfile")).code).toBe(550);
    expect((await c.cmd("MFMT 20000101000000 outdir/secret.txt")).code).toBe(550);
  });
});

describe("a dangling symlink pointing outside", () => {
  it("cannot be written through: STOR, APPE and REST+STOR are refused and nothing is created outside", async () => {
    const c = await login();
    expect((await c.store("STOR dangling", "created")).prelim.code).toBe(550);
    expect((await c.store("APPE dangling", "created")).prelim.code).toBe(550);
    await c.cmd("REST 0");
    expect((await c.store("STOR dangling", "created")).prelim.code).toBe(550);
    expect(existsSync(path.join(outside, "created-through-link.txt"))).toBe(false);
    expect(lstatSync(path.join(home, "dangling")).isSymbolicLink()).toBe(true);
  });

  it("cannot be read, entered or made into a directory", async () => {
    const c = await login();
    expect((await c.retrieve("RETR dangling")).prelim.code).toBe(550);
    expect((await c.cmd("CWD dangling")).code).toBe(550);
    expect((await c.cmd("MKD dangling")).code).toBe(550);
    expect((await c.cmd("SIZE dangling")).code).toBe(550);
  });

  it("RNTO onto it replaces the link, never its target", async () => {
    const c = await login();
    symlinkSync(path.join(outside, "created-through-link.txt"), path.join(home, "dangling2"));
    writeFileSync(path.join(home, "src.txt"), "src");
    expect((await c.cmd("RNFR src.txt")).code).toBe(350);
    const r = await c.cmd("RNTO dangling2");
    expect([250, 550]).toContain(r.code);
    expect(existsSync(path.join(outside, "created-through-link.txt"))).toBe(false);
    rmSync(path.join(home, "dangling2"), { force: true });
    rmSync(path.join(home, "src.txt"), { force: true });
  });
});

describe("what exists outside is not told", () => {
  it("an existing and a missing name behind a link that leads out get the same reply, for every command", async () => {
    const c = await login();
    // secret.txt and sub/ exist outside; nothere does not. A link to a missing outside target answers the same too.
    const pairs: [string, string][] = [
      ["outdir/secret.txt", "outdir/nothere.txt"],
      ["outdir/sub/deep.txt", "outdir/nothere/deep.txt"],
      ["outfile", "dangling"],
      ["outsub/deep.txt", "outsub/nothere.txt"],
    ];
    for (const [there, missing] of pairs) {
      // DELE and RNFR of a link itself act on the link, inside the home: only paths through a link are compared.
      const commands = there.includes("/") ? ["SIZE", "MDTM", "MLST", "HASH", "DELE", "RNFR", "CWD"] : ["SIZE", "MDTM", "MLST", "HASH", "CWD"];
      for (const cmd of commands) {
        const a = await c.cmd(`${cmd} ${there}`);
        const b = await c.cmd(`${cmd} ${missing}`);
        expect(`${cmd} ${missing}: ${b.all}`).toBe(`${cmd} ${missing}: ${a.all}`);
        expect(a.code).toBeGreaterThanOrEqual(500);
      }
      for (const cmd of ["MKD", "STOR"]) {
        const a = cmd === "STOR" ? (await c.store(`STOR ${there}.new/x`, "x")).final : await c.cmd(`MKD ${there}.d/x`);
        const b = cmd === "STOR" ? (await c.store(`STOR ${missing}.new/x`, "x")).final : await c.cmd(`MKD ${missing}.d/x`);
        expect(b.code).toBe(a.code);
      }
    }
    // MKD below an existing and a missing outside directory.
    expect((await c.cmd("MKD outdir/sub/x")).all).toBe((await c.cmd("MKD outdir/nothere/x")).all);
    // Inside the home, a missing name is still "no such file".
    expect((await c.cmd("SIZE inside/nothere.txt")).text).toMatch(/No such file/);
  });
});

describe("links that stay inside the home", () => {
  it("work as the directory they point to", async () => {
    const c = await login();
    expect((await c.retrieve("RETR inlink/ok.txt")).data.toString()).toBe("ok");
    expect((await c.cmd("CWD inlink")).code).toBe(250);
    expect((await c.retrieve("NLST")).data.toString()).toBe("ok.txt\r\n");
  });
});
