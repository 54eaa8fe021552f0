// Property-based fuzzing of the path jail: the virtual path resolver (pure) and LocalStorage on a real temp dir
// with symlinks planted to lead out of the home. Whatever path a client sends, nothing outside the home is read,
// listed, created, changed or removed.

import * as fc from "fast-check";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadPathError, resolveVirtual } from "../../src/protocol/vpath.js";
import { LocalStorage } from "../../src/storage/local.js";
import { tempDir } from "../helpers/myftpd.js";

describe("virtual path resolver", () => {
  const segment = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("..", ".", "", "a", "b c", "...", "..a", "~", "\\..", "%2e%2e") },
    { weight: 2, arbitrary: fc.string({ maxLength: 6 }) },
  );
  const vpathInput = fc.array(segment, { maxLength: 12 }).map((parts) => parts.join("/"));

  it("always yields a normalised absolute path with no dot segments, idempotently", () => {
    fc.assert(
      fc.property(vpathInput, vpathInput, (cwdRaw, input) => {
        fc.pre(!/[\r\n\0]/.test(cwdRaw + input));
        const cwd = resolveVirtual("/", cwdRaw);
        const r = resolveVirtual(cwd, input);
        expect(r.startsWith("/")).toBe(true);
        expect(r === "/" || !r.endsWith("/")).toBe(true);
        const segs = r.split("/").slice(1);
        if (r !== "/") expect(segs.every((x) => x !== "" && x !== "." && x !== "..")).toBe(true);
        expect(resolveVirtual("/", r)).toBe(r);
        expect(resolveVirtual(cwd, r)).toBe(r);
      }),
      { numRuns: 1000, interruptAfterTimeLimit: 10_000 },
    );
  });

  it("refuses CR, LF and NUL anywhere, and nothing else", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.constantFrom("\r", "\n", "\0"), fc.nat(), (s, bad, at) => {
        const i = at % (s.length + 1);
        expect(() => resolveVirtual("/", s.slice(0, i) + bad + s.slice(i))).toThrow(BadPathError);
      }),
      { numRuns: 300 },
    );
  });
});

describe("LocalStorage jail on a real directory with planted symlinks", () => {
  let root: string;
  let home: string;
  let outside: string;
  let storage: LocalStorage;
  let before: string;

  /** Every entry under a directory with its type and content hash (links by target): what must never change. */
  function snapshot(dir: string): string {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const name of readdirSync(d).sort()) {
        const full = path.join(d, name);
        const st = lstatSync(full);
        if (st.isSymbolicLink()) out.push(`L ${full} -> ${readlinkSync(full)}`);
        else if (st.isDirectory()) {
          out.push(`D ${full} ${st.mode & 0o777}`);
          walk(full);
        } else out.push(`F ${full} ${st.size} ${st.mode & 0o777} ${createHash("sha256").update(readFileSync(full)).digest("hex")} ${st.mtimeMs}`);
      }
    };
    walk(dir);
    return out.join("\n");
  }

  beforeAll(async () => {
    root = tempDir("myftp-jail-");
    home = path.join(root, "home");
    outside = path.join(root, "outside");
    mkdirSync(path.join(home, "sub", "deeper"), { recursive: true });
    mkdirSync(path.join(outside, "dir"), { recursive: true });
    writeFileSync(path.join(outside, "secret.txt"), "not yours\n");
    writeFileSync(path.join(outside, "dir", "inner.txt"), "nor this\n");
    writeFileSync(path.join(home, "file.txt"), "mine\n");
    writeFileSync(path.join(home, "sub", "deeper", "f.txt"), "mine too\n");
    // Links that lead out: relative and absolute, to directories and files, dangling, and loops.
    symlinkSync("..", path.join(home, "up"));
    symlinkSync("../..", path.join(home, "sub", "up2"));
    symlinkSync(outside, path.join(home, "esc"));
    symlinkSync(path.join(outside, "secret.txt"), path.join(home, "secret-link"));
    symlinkSync(path.join(outside, "new-file"), path.join(home, "dangling"));
    symlinkSync(path.join(outside, "newdir", "x"), path.join(home, "dangling-deep"));
    symlinkSync("loop", path.join(home, "loop"));
    symlinkSync(path.join(home, "sub"), path.join(home, "inner")); // stays inside: allowed
    symlinkSync("../../outside/dir", path.join(home, "sub", "rel-esc"));
    storage = await LocalStorage.open(home);
    before = snapshot(outside) + "\n" + snapshot(root).split("\n").filter((l) => !l.includes(`${home}/`)).join("\n");
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  const segment = fc.constantFrom(
    "up", "up2", "esc", "secret-link", "dangling", "dangling-deep", "loop", "inner", "rel-esc", "sub", "deeper",
    "file.txt", "f.txt", "secret.txt", "dir", "inner.txt", "new", "newdir", "x", "..", ".", "", "home", "outside",
  );
  const clientPath = fc.tuple(fc.boolean(), fc.array(segment, { minLength: 1, maxLength: 6 })).map(([abs, segs]) => (abs ? "/" : "") + segs.join("/"));
  const operation = fc.constantFrom("stat", "list", "read", "diskPath", "mkdir", "write", "temp", "rmdir", "unlink", "rename", "mtime");

  it("never maps a client path outside the home, whatever the operation", async () => {
    const realHome = realpathSync(home);
    const inside = (p: string) => p === realHome || p.startsWith(realHome + path.sep);
    await fc.assert(
      fc.asyncProperty(clientPath, clientPath, operation, fc.constantFrom("/", "/sub", "/inner", "/sub/deeper"), async (p, q, op, cwd) => {
        const v = resolveVirtual(cwd, p);
        const w = resolveVirtual(cwd, q);
        try {
          switch (op) {
            case "stat":
              await storage.stat(v);
              break;
            case "list":
              await storage.list(v);
              // It listed: then the directory it listed is inside.
              expect(inside(await storage.diskPathOf(v))).toBe(true);
              break;
            case "read": {
              const r = await storage.openRead(v);
              await r.handle.close();
              expect(inside(r.diskPath)).toBe(true);
              break;
            }
            case "diskPath":
              expect(inside(await storage.diskPathOf(v))).toBe(true);
              break;
            case "mkdir":
              await storage.mkdir(v);
              break;
            case "write": {
              const r = await storage.openWrite(v);
              await r.handle.close();
              expect(inside(r.diskPath)).toBe(true);
              break;
            }
            case "temp": {
              const r = await storage.openTemp(v);
              await r.handle.close();
              expect(inside(r.tempPath)).toBe(true);
              await storage.removeTemp(r.tempPath);
              break;
            }
            case "rmdir":
              await storage.rmdir(v);
              break;
            case "unlink":
              await storage.unlink(v);
              break;
            case "rename":
              await storage.rename(v, w);
              break;
            case "mtime":
              await storage.setMtime(v, 0);
              break;
          }
        } catch (err) {
          // Refusals are expected; a failed expectation above is not.
          if ((err as Error).name === "AssertionError") throw err;
        }
      }),
      { numRuns: 600, interruptAfterTimeLimit: 20_000 },
    );
    const after = snapshot(outside) + "\n" + snapshot(root).split("\n").filter((l) => !l.includes(`${home}/`)).join("\n");
    expect(after).toBe(before);
  });

  it("reads a file through a link that stays inside, and refuses the ones that lead out", async () => {
    // Earlier random renames may have moved things: rebuild the fixture's known entries first.
    const fresh = path.join(root, "fresh");
    mkdirSync(path.join(fresh, "sub"), { recursive: true });
    writeFileSync(path.join(fresh, "sub", "f.txt"), "inside\n");
    symlinkSync(path.join(fresh, "sub"), path.join(fresh, "inner"));
    symlinkSync(outside, path.join(fresh, "esc"));
    symlinkSync("..", path.join(fresh, "up"));
    const s = await LocalStorage.open(fresh);
    const r = await s.openRead("/inner/f.txt");
    await r.handle.close();
    expect(r.size).toBe(7);
    await expect(s.openRead("/esc/secret.txt")).rejects.toMatchObject({ code: "outside-home" });
    await expect(s.list("/up")).rejects.toMatchObject({ code: "outside-home" });
    await expect(s.openWrite("/esc/new.txt")).rejects.toMatchObject({ code: "outside-home" });
    await expect(s.mkdir("/esc/newdir")).rejects.toMatchObject({ code: "outside-home" });
  });
});
