// Pure pieces of the client, checked to the character: URLs, the progress formatter, HASH/FEAT parsing,
// CRC-32, patterns, netrc, the shell's word splitting, range splitting, mirror decisions, rates.
import { createHash } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ClientError, toClientError } from "../../src/client/errors.js";
import { globToRegExp, matchNames, splitPattern } from "../../src/client/glob.js";
import { crc32, hashLocalFile, parseHashFeature, parseHashReply, pickAlgorithm } from "../../src/client/hashing.js";
import { findNetrc, parseNetrc, resolveCredentials } from "../../src/client/credentials.js";
import { localDir } from "../../src/client/commands.js";
import { needsTransfer } from "../../src/client/mirror.js";
import { ProgressReporter, displayWidth, fitName, formatBar, formatBytes, formatDone, formatDuration, formatRate } from "../../src/client/progress.js";
import { parseCount, parseRate } from "../../src/client/runtime.js";
import { MIN_SEGMENT, parseSegmentState, splitRanges } from "../../src/client/segments.js";
import { leftByUs } from "../../src/client/transfer.js";
import { formatMdtm, parseFeatures, parseMdtm } from "../../src/client/session.js";
import { historyLine, lastWord, quoteWord, tokenize } from "../../src/client/shell.js";
import { displayUrl, parseFtpUrl } from "../../src/client/url.js";

describe("parseFtpUrl", () => {
  it("reads user, password, host, port and path", () => {
    expect(parseFtpUrl("ftp://bob:p%40ss@files.example.com:2121/pub/a%20b.txt")).toEqual({
      host: "files.example.com",
      port: 2121,
      user: "bob",
      password: "p@ss",
      path: "pub/a b.txt",
      isDir: false,
      tls: "none",
    });
  });
  it("defaults ports by scheme and treats ftps:// as implicit TLS", () => {
    expect(parseFtpUrl("ftp://h").port).toBe(21);
    expect(parseFtpUrl("ftps://h/").port).toBe(990);
    expect(parseFtpUrl("FTPS://h/").tls).toBe("implicit");
    expect(parseFtpUrl("ftp://h/dir/").isDir).toBe(true);
    expect(parseFtpUrl("ftp://h").isDir).toBe(true);
  });
  it("keeps a leading %2F as an absolute path and reads IPv6 hosts", () => {
    expect(parseFtpUrl("ftp://h/%2Fetc/x").path).toBe("/etc/x");
    const v6 = parseFtpUrl("ftp://u@[::1]:2100/x");
    expect(v6.host).toBe("::1");
    expect(v6.port).toBe(2100);
    expect(displayUrl(v6)).toBe("ftp://u@[::1]:2100/x");
  });
  it("refuses what is not an FTP URL, saying why", () => {
    const cases: [string, RegExp][] = [
      ["example.com/x", /expected ftp:\/\//],
      ["http://h/x", /unsupported scheme "http"/],
      ["ftp:///x", /no host/],
      ["ftp://h:0/", /invalid port "0"/],
      ["ftp://h:70000/", /invalid port "70000"/],
      ["ftp://h:21x/", /invalid port "21x"/],
      ["ftp://@h/", /empty user name/],
      ["ftp://[::1/", /unclosed "\["/],
      ["ftp://h/%zz", /invalid percent-encoding/],
      ["ftp://h/a%0Ab", /control characters/],
      ["ftp://h o/", /spaces/],
    ];
    for (const [url, re] of cases) {
      let err: unknown;
      try {
        parseFtpUrl(url);
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(ClientError);
      expect((err as ClientError).kind).toBe("usage");
      expect((err as Error).message, url).toMatch(re);
    }
  });
  it("round-trips any user and password through percent-encoding", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (user, password) => {
        const t = parseFtpUrl(`ftp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@host/`);
        return t.user === user && t.password === password;
      }),
    );
  });
});

describe("progress formatting", () => {
  it("formats sizes, rates and durations", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1024)).toBe("1.00 KiB");
    expect(formatBytes(1536 * 1024)).toBe("1.50 MiB");
    expect(formatBytes(52428800)).toBe("50.0 MiB");
    expect(formatBytes(300 * 1024 ** 3)).toBe("300 GiB");
    expect(formatRate(2 * 1024 * 1024)).toBe("2.00 MiB/s");
    expect(formatRate(Number.NaN)).toBe("-- B/s");
    expect(formatDuration(7.4)).toBe("7s");
    expect(formatDuration(65)).toBe("1m05s");
    expect(formatDuration(7380)).toBe("2h03m");
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe("--:--");
  });
  it("draws a bar with name, percent, bytes, rate and ETA in the terminal's width", () => {
    const st = { name: "report-2024.pdf", done: 4404019, total: 10485760, rate: 1572864 };
    expect(formatBar({ ...st, width: 120 })).toBe(
      "report-2024.pdf  [#################-----------------------]   41%  4.20 MiB/10.0 MiB  1.50 MiB/s  ETA 4s",
    );
    expect(formatBar({ ...st, width: 80 })).toBe("report-2024.pdf  [#####-------]   41%  4.20 MiB/10.0 MiB  1.50 MiB/s  ETA 4s");
    expect(formatBar({ ...st, width: 60 })).toBe("report-2024.pdf  41%  4.20 MiB/10.0 MiB  1.50 MiB/s  ETA 4s");
    expect(formatBar({ ...st, width: 40 })).toBe("report-2024.pdf  41%  4.20 MiB/10.0 MiB");
    expect(formatBar({ ...st, width: 25 })).toBe("report-2024.pdf  41%");
  });
  it("never draws past the terminal's width, whatever the numbers", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 80 }),
        fc.nat(),
        fc.option(fc.nat(), { nil: undefined }),
        fc.double({ min: 0, max: 1e12, noNaN: true }),
        fc.integer({ min: 30, max: 300 }),
        (name, done, total, rate, width) => {
          const line = formatBar({ name, done, total, rate, width });
          return [...line].length <= width - 1;
        },
      ),
    );
  });
  it("counts wide characters as two columns and shows control characters as ?, so the bar never wraps", () => {
    expect(displayWidth("日本語.bin")).toBe(10);
    expect(displayWidth("e\u0301cole")).toBe(5);
    const name = "日本語のファイル名前がとても長いです.bin";
    for (const width of [20, 40, 80, 120]) {
      const line = formatBar({ name, done: 1234567, total: 9999999, rate: 100000, width });
      expect(displayWidth(line)).toBeLessThanOrEqual(width - 1);
      expect(line).toContain(".bin");
    }
    expect(fitName("日本語のファイル", 8)).toBe("… ァイル");
    expect(displayWidth(fitName("日本語", 9))).toBe(9);
    expect(formatBar({ name: "a\x1b[2Jb\rc", done: 1, total: 2, rate: 1, width: 80 })).toMatch(/^a\?\[2Jb\?c /);
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom("a", "é", "日", "😀", "\u0301", "ｱ", " ", "\x1b"), maxLength: 60 }),
        fc.nat(),
        fc.option(fc.nat(), { nil: undefined }),
        fc.double({ min: 0, max: 1e12, noNaN: true }),
        fc.integer({ min: 11, max: 300 }),
        (n, done, total, rate, width) => displayWidth(formatBar({ name: n, done, total, rate, width })) <= width - 1,
      ),
    );
  });
  it("shows an unknown total and a finished empty file sensibly", () => {
    expect(formatBar({ name: "stream", done: 2048, total: undefined, rate: Number.NaN, width: 80 })).toBe(
      "stream    [-------------------]   --%           2.00 KiB      -- B/s  ETA --:--",
    );
    expect(formatBar({ name: "empty", done: 0, total: 0, rate: 0, width: 80 })).toContain("100%");
  });
  it("shortens long names from the front, keeping the extension", () => {
    expect(fitName("a-very-long-file-name.tar.gz", 12)).toBe("…name.tar.gz");
    expect(fitName("short", 8)).toBe("short   ");
  });
  it("summarises a finished file in one line", () => {
    expect(formatDone({ verb: "get", name: "a.bin", transferred: 1048576, size: 2097152, seconds: 0.5, resumedFrom: 1048576, verified: "SHA-256 verified" })).toBe(
      "get a.bin: 2.00 MiB in 0.5s (2.00 MiB/s), resumed at 1.00 MiB, SHA-256 verified",
    );
  });
  it("redraws with carriage returns on a terminal and clears before notes", () => {
    let t = 0;
    const written: string[] = [];
    const lines: string[] = [];
    const rep = new ProgressReporter("bar", (l) => lines.push(l), { write: (s) => written.push(s), columns: 90 }, () => t);
    const h = rep.start("get", "x.bin", 1000);
    t = 1000;
    h.update(500);
    rep.note("a note");
    t = 2000;
    h.update(1000);
    h.finish({ size: 1000, transferred: 1000, seconds: 2, resumedFrom: 0, verified: "size verified" });
    expect(written[0]).toMatch(/^\rx\.bin +\[-+\] +0% +0 B\/1000 B/);
    expect(written).toContain("\r\x1b[K");
    expect(written.some((w) => /^\rx\.bin +\[#+-+\] +50% +500 B\/1000 B +500 B\/s +ETA 1s/.test(w))).toBe(true);
    expect(lines).toEqual(["a note", "get x.bin: 1000 B in 2.0s (500 B/s), size verified"]);
    // Two transfers at once share one line: the first keeps it until it is done.
    written.length = 0;
    t = 10_000;
    const a = rep.start("get", "a.bin", 100);
    const b = rep.start("get", "b.bin", 100);
    t += 200;
    b.update(50);
    a.update(10);
    expect(written.some((w) => w.includes("b.bin"))).toBe(false);
    a.finish({ size: 100, transferred: 100, seconds: 1, resumedFrom: 0, verified: "ok" });
    t += 200;
    b.update(60);
    expect(written.at(-1)).toMatch(/^\rb\.bin +\[#+-+\] +60%/);
    const quiet = new ProgressReporter("quiet", (l) => lines.push(l), undefined);
    quiet.start("get", "y", 1).finish({ size: 1, transferred: 1, seconds: 1, resumedFrom: 0, verified: "" });
    quiet.note("hidden");
    expect(lines).toHaveLength(3);
  });

  it("a transfer that ends while another's bar is drawn clears that bar before its summary", () => {
    let t = 0;
    const out: string[] = []; // terminal writes and lines, in the order they reach the screen
    const rep = new ProgressReporter("bar", (l) => out.push(`line:${l}`), { write: (s) => out.push(s), columns: 90 }, () => t);
    const a = rep.start("put", "a.bin", 100);
    const b = rep.start("put", "b.bin", 100);
    t = 200;
    a.update(50);
    b.finish({ size: 100, transferred: 100, seconds: 1, resumedFrom: 0, verified: "ok" });
    const summary = out.findIndex((w) => w.startsWith("line:put b.bin"));
    expect(summary).toBeGreaterThan(0);
    expect(out[summary - 1]).toBe("\r\x1b[K");
    // a's bar comes back on its next update.
    t = 400;
    a.update(80);
    expect(out.at(-1)).toMatch(/^\ra\.bin +\[#+-+\] +80%/);
  });

  it("ends the bar's line on an interrupt and draws no more", () => {
    let t = 0;
    const written: string[] = [];
    const rep = new ProgressReporter("bar", () => undefined, { write: (s) => written.push(s), columns: 90 }, () => t);
    const h = rep.start("get", "x.bin", 1000);
    t = 500;
    h.update(300);
    rep.interrupt();
    expect(written.at(-1)).toBe("\n");
    const count = written.length;
    t = 1000;
    h.update(600);
    h.abort();
    expect(written).toHaveLength(count);
  });
});

describe("HASH and FEAT", () => {
  it("parses the HASH reply of draft-bryan-ftpext-hash", () => {
    expect(parseHashReply("213 SHA-256 0-1233 ABCDEF0123 some dir/file name.txt")).toEqual({
      algorithm: "SHA-256",
      start: 0,
      end: 1233,
      hex: "abcdef0123",
      path: "some dir/file name.txt",
    });
    expect(parseHashReply("213 MD5 10-20 00ff")).toMatchObject({ algorithm: "MD5", start: 10, end: 20, path: "" });
    expect(parseHashReply("213 1234")).toBeUndefined();
    // A slow server may send "213-" lines first; the hash is on the last line.
    expect(parseHashReply("213-\r\n213-\r\n213 SHA-256 0-49 169cd2 filename.ext")).toEqual({
      algorithm: "SHA-256",
      start: 0,
      end: 49,
      hex: "169cd2",
      path: "filename.ext",
    });
  });
  it("reads the offered algorithms and picks SHA-256 first", () => {
    const f = parseHashFeature("SHA-1;SHA-256*;MD5;CRC32;WHIRLPOOL");
    expect(f).toEqual({ algorithms: ["SHA-1", "SHA-256", "MD5", "CRC32"], selected: "SHA-256" });
    expect(pickAlgorithm(parseHashFeature("MD5*;SHA-1"))).toBe("SHA-1");
    expect(pickAlgorithm(parseHashFeature("CRC32*"))).toBe("CRC32");
    expect(pickAlgorithm(parseHashFeature(""))).toBeUndefined();
  });
  it("turns FEAT lines into capabilities", () => {
    const f = parseFeatures(new Map([["HASH", "SHA-256*;MD5"], ["RANG", "STREAM"], ["REST", "STREAM"], ["SIZE", ""], ["MLST", "type*;size*;"], ["AVBL", ""]]));
    expect(f.hash).toEqual(["SHA-256", "MD5"]);
    expect([f.rang, f.restStream, f.size, f.mlst, f.avbl, f.mdtm, f.mfmt]).toEqual([true, true, true, true, true, false, false]);
    expect(parseFeatures(new Map()).restStream).toBe(false);
  });
  it("computes CRC-32 like the standard check value, in pieces too", () => {
    expect(crc32(Buffer.from("123456789")).toString(16)).toBe("cbf43926");
    fc.assert(
      fc.property(fc.uint8Array(), fc.uint8Array(), (a, b) => crc32(Buffer.from(b), crc32(Buffer.from(a))) === crc32(Buffer.concat([a, b]))),
    );
  });
  it("hashes byte ranges of local files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "myftp-hash-"));
    try {
      const data = Buffer.from("hello, ranged world");
      await writeFile(join(dir, "f"), data);
      const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
      expect(await hashLocalFile(join(dir, "f"), "SHA-256")).toBe(sha(data));
      expect(await hashLocalFile(join(dir, "f"), "SHA-256", 0, 5)).toBe(sha(data.subarray(0, 5)));
      expect(await hashLocalFile(join(dir, "f"), "SHA-256", 7, 13)).toBe(sha(data.subarray(7, 13)));
      expect(await hashLocalFile(join(dir, "f"), "SHA-256", 4, 4)).toBe(sha(Buffer.alloc(0)));
      expect(await hashLocalFile(join(dir, "f"), "MD5")).toBe(createHash("md5").update(data).digest("hex"));
    } finally {
      await rm(dir, { recursive: true });
    }
  });
  it("reads and writes MDTM times", () => {
    const d = parseMdtm("20240229235958.5")!;
    expect(d.toISOString()).toBe("2024-02-29T23:59:58.500Z");
    expect(formatMdtm(d)).toBe("20240229235958");
    expect(parseMdtm("yesterday")).toBeUndefined();
  });
});

describe("patterns", () => {
  it("matches like a shell within one path segment", () => {
    expect(matchNames(["a.txt", "b.txt", "c.log", "dir/a.txt", ".hidden.txt"], "*.txt")).toEqual(["a.txt", "b.txt"]);
    // A name starting with "." matches only a pattern that starts with one, as in a shell: rm * keeps .htaccess.
    expect(matchNames([".htaccess", "index.html"], "*")).toEqual(["index.html"]);
    expect(matchNames([".htaccess", ".hidden.txt", "index.html"], ".h*")).toEqual([".hidden.txt", ".htaccess"]);
    expect(matchNames([".a", "b"], "?*")).toEqual(["b"]);
    expect(matchNames(["f1", "f2", "f10"], "f?")).toEqual(["f1", "f2"]);
    expect(matchNames(["a1", "b1", "c1"], "[ab]1")).toEqual(["a1", "b1"]);
    expect(matchNames(["a1", "b1", "c1"], "[!ab]1")).toEqual(["c1"]);
    expect(matchNames(["x*y", "xay"], "x\\*y")).toEqual(["x*y"]);
    expect(globToRegExp("a.b(c)").test("a.b(c)")).toBe(true);
    expect(globToRegExp("a.b").test("axb")).toBe(false);
    expect(splitPattern("logs/2024/*.gz")).toEqual({ dir: "logs/2024", base: "*.gz" });
    expect(splitPattern("/top*")).toEqual({ dir: "/", base: "top*" });
  });
});

describe("credentials", () => {
  const netrc = `# comment
machine files.example.com
  login alice
  password "sec ret"
machine files.example.com login bob password bobpw
macdef init
cd /pub
ls

default login anonymous password guest@
`;
  it("parses netrc with quotes, macros and a default entry", () => {
    const entries = parseNetrc(netrc);
    expect(entries).toEqual([
      { machine: "files.example.com", login: "alice", password: "sec ret" },
      { machine: "files.example.com", login: "bob", password: "bobpw" },
      { machine: undefined, login: "anonymous", password: "guest@" },
    ]);
    expect(findNetrc(entries, "files.example.com", "bob")?.password).toBe("bobpw");
    expect(findNetrc(entries, "files.example.com", undefined)?.login).toBe("alice");
    expect(findNetrc(entries, "elsewhere", undefined)?.login).toBe("anonymous");
  });
  it("takes the URL's password, then MYFTP_PASSWORD, then netrc, and asks only on a terminal", async () => {
    const home = await mkdtemp(join(tmpdir(), "myftp-cred-"));
    try {
      await writeFile(join(home, ".netrc"), "machine h login carol password fromnetrc\n", { mode: 0o600 });
      const env = { HOME: home };
      expect(await resolveCredentials("h", "u", "p", { env, interactive: false })).toEqual({ user: "u", password: "p", source: "url" });
      expect(await resolveCredentials("h", "u", undefined, { env: { ...env, MYFTP_PASSWORD: "e" }, interactive: false })).toMatchObject({ password: "e", source: "env" });
      expect(await resolveCredentials("h", undefined, undefined, { env, interactive: false })).toMatchObject({ user: "carol", password: "fromnetrc" });
      expect(await resolveCredentials("other", undefined, undefined, { env, interactive: false })).toMatchObject({ user: "anonymous", source: "anonymous" });
      await expect(resolveCredentials("other", "dave", undefined, { env, interactive: false })).rejects.toThrow(/no password for dave@other/);
      const asked: string[] = [];
      const c = await resolveCredentials("other", "dave", undefined, {
        env,
        interactive: true,
        prompt: async (q) => {
          asked.push(q);
          return "typed";
        },
      });
      expect(c).toMatchObject({ user: "dave", password: "typed", source: "prompt" });
      expect(asked).toEqual(["Password for dave@other: "]);
    } finally {
      await rm(home, { recursive: true });
    }
  });
  it.skipIf(process.platform === "win32")("does not use a password from a netrc file that group or others can access, and says how to fix it", async () => {
    const home = await mkdtemp(join(tmpdir(), "myftp-cred-"));
    try {
      const file = join(home, "my netrc");
      await writeFile(file, "machine h login carol password fromnetrc\ndefault login anonymous password guest@\n");
      const env = { HOME: home, NETRC: file };
      const warned: string[] = [];
      const warn = (line: string) => void warned.push(line);
      for (const mode of [0o644, 0o640, 0o604, 0o620, 0o601]) {
        await chmod(file, mode);
        warned.length = 0;
        // No terminal: the clear "no password" error, for the login name the file gives.
        await expect(resolveCredentials("h", undefined, undefined, { env, interactive: false, warn })).rejects.toThrow(/^no password for carol@h /);
        expect(warned).toEqual([
          `myftp: warning: not using the password in ${file}: group or others can access the file (mode ${mode.toString(8)}); fix it with: chmod 600 ${file}`,
        ]);
      }
      // On a terminal: asked instead.
      await chmod(file, 0o644);
      warned.length = 0;
      const asked: string[] = [];
      const prompt = async (q: string) => {
        asked.push(q);
        return "typed";
      };
      expect(await resolveCredentials("h", undefined, undefined, { env, interactive: true, prompt, warn })).toEqual({ user: "carol", password: "typed", source: "prompt" });
      expect(asked).toEqual(["Password for carol@h: "]);
      expect(warned).toHaveLength(1);
      // A password that would not be used anyway draws no warning; nor does an anonymous login's.
      warned.length = 0;
      expect(await resolveCredentials("h", "carol", "p", { env, interactive: false, warn })).toMatchObject({ source: "url" });
      expect(await resolveCredentials("h", "carol", undefined, { env: { ...env, MYFTP_PASSWORD: "e" }, interactive: false, warn })).toMatchObject({ source: "env" });
      expect(await resolveCredentials("other", undefined, undefined, { env, interactive: false, warn })).toEqual({ user: "anonymous", password: "guest@", source: "netrc" });
      expect(warned).toEqual([]);
      // Once only its owner can read it, the password is used.
      await chmod(file, 0o600);
      expect(await resolveCredentials("h", undefined, undefined, { env, interactive: false, warn })).toEqual({ user: "carol", password: "fromnetrc", source: "netrc" });
      await chmod(file, 0o400);
      expect(await resolveCredentials("h", undefined, undefined, { env, interactive: false, warn })).toMatchObject({ password: "fromnetrc" });
      expect(warned).toEqual([]);
    } finally {
      await rm(home, { recursive: true });
    }
  });
});

describe("shell words", () => {
  it("splits on spaces, honours quotes and backslashes", () => {
    expect(tokenize(`get "my file.txt" 'other one'  plain\\ space`)).toEqual(["get", "my file.txt", "other one", "plain space"]);
    expect(tokenize(`put a"b c"d`)).toEqual(["put", "ab cd"]);
    expect(tokenize("   ")).toEqual([]);
    expect(() => tokenize(`get "open`)).toThrow(/unbalanced " quote/);
  });
  it("quotes words so that tokenize gives them back", () => {
    fc.assert(fc.property(fc.array(fc.string({ minLength: 1 }), { maxLength: 5 }), (words) => {
      const clean = words.map((w) => w.replace(/\s/g, "_"));
      return JSON.stringify(tokenize(clean.map(quoteWord).join(" "))) === JSON.stringify(clean);
    }));
    expect(quoteWord("a b")).toBe('"a b"');
  });
  it("finds the word being completed", () => {
    expect(lastWord("get sub/fi")).toEqual({ raw: "sub/fi", value: "sub/fi", index: 1 });
    expect(lastWord("get ")).toEqual({ raw: "", value: "", index: 1 });
    expect(lastWord("ge")).toEqual({ raw: "ge", value: "ge", index: 0 });
    expect(lastWord('get "my fi')).toEqual({ raw: '"my fi', value: "my fi", index: 1 });
  });
});

describe("retries", () => {
  it("takes a partial for our own only within what our last attempt moved into it", () => {
    expect(leftByUs(undefined, 1000)).toBe(false);
    // Refused before a byte moved (450 busy), or decided to start over and then failed: the normal checks apply.
    expect(leftByUs({ offset: 0, moved: 0 }, 300_000)).toBe(false);
    expect(leftByUs({ offset: 5000, moved: 0 }, 5000)).toBe(false);
    expect(leftByUs({ offset: 0, moved: 4096 }, 4096)).toBe(true);
    expect(leftByUs({ offset: 1000, moved: 4096 }, 3000)).toBe(true);
    expect(leftByUs({ offset: 1000, moved: 4096 }, 5097)).toBe(false);
    expect(leftByUs({ offset: 1000, moved: 4096 }, 999)).toBe(false);
  });
});

describe("segments, mirror decisions, options", () => {
  it("splits a file into contiguous ranges covering it exactly", () => {
    fc.assert(
      fc.property(fc.nat(1 << 30), fc.nat(1 << 30), fc.integer({ min: 1, max: 16 }), (a, b, n) => {
        const [from, size] = a <= b ? [a, b] : [b, a];
        const segs = splitRanges(from, size, n);
        if (size === from) return segs.length === 0;
        if (segs.length < 1 || segs.length > n) return false;
        if (segs[0]!.start !== from || segs.at(-1)!.end !== size) return false;
        return segs.every((s, i) => s.end > s.start && s.pos === s.start && (i === 0 || segs[i - 1]!.end === s.start));
      }),
    );
    expect(splitRanges(0, MIN_SEGMENT, 4)).toHaveLength(1);
    expect(splitRanges(0, 10 * MIN_SEGMENT, 4).map((s) => s.end - s.start)).toEqual([655360, 655360, 655360, 655360]);
  });
  it("accepts only consistent saved segment states", () => {
    expect(parseSegmentState(JSON.stringify({ version: 1, remote: "r", size: 10, segments: [{ start: 0, end: 10, pos: 4 }] }))).toBeDefined();
    expect(parseSegmentState(JSON.stringify({ version: 1, remote: "r", size: 10, segments: [{ start: 0, end: 10, pos: 11 }] }))).toBeUndefined();
    expect(parseSegmentState(JSON.stringify({ version: 1, remote: "r", size: 10, segments: [{ start: 0, end: 12, pos: 1 }] }))).toBeUndefined();
    expect(parseSegmentState("{not json")).toBeUndefined();
  });
  it("copies a file that is missing, of another size, or newer at the source", () => {
    const t = new Date("2024-01-01T00:00:00Z");
    const later = new Date("2024-01-01T00:00:10Z");
    const f = (size: number, mtime?: Date) => ({ rel: "a", size, mtime });
    expect(needsTransfer(f(1, t), undefined)).toBe(true);
    expect(needsTransfer(f(1, t), f(2, t))).toBe(true);
    expect(needsTransfer(f(1, later), f(1, t))).toBe(true);
    expect(needsTransfer(f(1, t), f(1, later))).toBe(false);
    expect(needsTransfer(f(1, new Date(t.getTime() + 1000)), f(1, t))).toBe(false);
    expect(needsTransfer(f(1), f(1, t))).toBe(false);
  });
  it("parses rates and counts", () => {
    expect(parseRate("500k")).toBe(512000);
    expect(parseRate("2M")).toBe(2097152);
    expect(parseRate("1.5MiB/s")).toBe(1572864);
    expect(parseRate("123")).toBe(123);
    expect(() => parseRate("fast")).toThrow(/bad rate/);
    expect(parseCount("3", "--retries")).toBe(3);
    expect(() => parseCount("-1", "--retries")).toThrow(/--retries must be a whole number/);
  });
});

describe("the shell's history and lcd", () => {
  it("drops passwords from URLs in history lines", () => {
    expect(historyLine("open ftp://alice:secret@host")).toBe("open ftp://alice@host");
    expect(historyLine("open ftps://a:p%40x@h:990/dir/")).toBe("open ftps://a@h:990/dir/");
    expect(historyLine("open ftp://u:@h/ and ftp://v:w@k")).toBe("open ftp://u@h/ and ftp://v@k");
    for (const same of ["open ftp://alice@host/", "open ftp://host:21/", "get a:b@c", "lcd ~/x"]) expect(historyLine(same)).toBe(same);
  });

  it("drops passwords with spaces, typed in quotes or after backslashes", () => {
    expect(historyLine('open "ftp://alice:p w@host:2121/dir/"')).toBe("open ftp://alice@host:2121/dir/");
    expect(historyLine("open 'ftp://alice:a b c@host'")).toBe("open ftp://alice@host");
    expect(historyLine("open ftp://alice:p\\ w@host")).toBe("open ftp://alice@host");
    expect(historyLine('open "ftp://alice:p w@host')).toBe("open ftp://alice@host");
    expect(historyLine('open "ftp://alice:x\\"y z@h"')).toBe("open ftp://alice@h");
    for (const same of ['get "my file.txt"', "put 'a b' \"c d\"", 'open "ftp://alice@host/a b"', "ls a\\ b"]) expect(historyLine(same)).toBe(same);
  });

  it("reads ~ and ~/DIR in lcd as under the home", () => {
    expect(localDir(undefined, "/home/al")).toBe("/home/al");
    expect(localDir("~", "/home/al")).toBe("/home/al");
    expect(localDir("~/x/y", "/home/al")).toBe("/home/al/x/y");
    expect(localDir("~bob", "/home/al")).toBe("~bob");
    expect(localDir("/tmp", "/home/al")).toBe("/tmp");
  });
});

describe("errors in plain words", () => {
  it("maps replies and socket errors to kinds and exit codes", () => {
    const reply = (code: number, message: string) => Object.assign(new Error(message), { code });
    expect(toClientError(reply(530, "530 Login incorrect.")).message).toBe("login refused by the server (530 Login incorrect.)");
    expect(toClientError(reply(530, "530 Login incorrect.")).exitCode).toBe(4);
    expect(toClientError(reply(552, "552 Quota exceeded.")).exitCode).toBe(6);
    expect(toClientError(reply(550, "550 No such file.")).message).toBe("the server refused: No such file. (550)");
    expect(toClientError(reply(550, "550 No such file."), { action: "get x" }).exitCode).toBe(5);
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED", syscall: "connect" });
    expect(toClientError(refused, { endpoint: "h:21" }).message).toBe("cannot connect to h:21: connection refused");
    expect(toClientError(refused).exitCode).toBe(3);
    const enoent = Object.assign(new Error("ENOENT"), { code: "ENOENT", path: "/x" });
    expect(toClientError(enoent).message).toBe("no such local file or directory: /x");
    expect(toClientError(enoent).exitCode).toBe(8);
    // A server with passive mode off refuses EPSV and PASV: said so, exit 5, not the protocol library's words.
    const noPassive = new Error("None of the available transfer strategies work. Last error response was 'FTPError: 550 Permission denied.'.");
    const e = toClientError(noPassive, { action: "ls ." });
    expect(e.message).toBe("ls .: the server refused a passive data connection: Permission denied. (550); myftp has no active mode");
    expect(e.exitCode).toBe(5);
  });
});
