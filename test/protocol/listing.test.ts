// Listing formats: LIST in `ls -l` form, MLSx facts (RFC 3659 §7) and time-val (RFC 3659 §2.3).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Accessor,
  MAY_READ,
  MAY_SEARCH,
  MAY_WRITE,
  mayAccess,
  DEFAULT_MLST_FACTS,
  formatLsLine,
  formatMlsxLine,
  formatTimeVal,
  sortByName,
  lsDate,
  mlstFeatLine,
  modeString,
  parseMlstOpts,
  parseTimeVal,
  type ListEntry,
} from "../../src/protocol/listing.js";

const NOW = Date.UTC(2024, 5, 15, 12, 0, 0); // 2024-06-15 12:00 UTC
const file: ListEntry = { name: "report.txt", type: "file", size: 1234, mtimeMs: Date.UTC(2024, 5, 1, 9, 5, 7), mode: 0o644 };
const dir: ListEntry = { name: "photos", type: "dir", size: 4096, mtimeMs: Date.UTC(2020, 0, 2, 3, 4, 5), mode: 0o755 };

describe("modeString", () => {
  it("writes the type letter and nine permission letters as ls does", () => {
    expect(modeString("file", 0o644)).toBe("-rw-r--r--");
    expect(modeString("dir", 0o755)).toBe("drwxr-xr-x");
    expect(modeString("link", 0o777)).toBe("lrwxrwxrwx");
    expect(modeString("file", 0)).toBe("----------");
    expect(modeString("other", 0o600)).toBe("?rw-------");
  });

  it("shows setuid, setgid and sticky in the x places, upper case where x is off", () => {
    expect(modeString("dir", 0o1777)).toBe("drwxrwxrwt");
    expect(modeString("dir", 0o1770)).toBe("drwxrwx--T");
    expect(modeString("file", 0o4755)).toBe("-rwsr-xr-x");
    expect(modeString("file", 0o2644)).toBe("-rw-r-Sr--");
  });

  it("writes ls's letters for FIFOs, sockets and devices", () => {
    expect(modeString("fifo", 0o644)).toBe("prw-r--r--");
    expect(modeString("socket", 0o755)).toBe("srwxr-xr-x");
    expect(modeString("char", 0o666)).toBe("crw-rw-rw-");
    expect(modeString("block", 0o660)).toBe("brw-rw----");
  });
});

describe("lsDate", () => {
  it("shows the time for dates within six months", () => {
    expect(lsDate(file.mtimeMs, NOW)).toBe("Jun  1 09:05");
  });

  it("shows the year for older dates", () => {
    expect(lsDate(dir.mtimeMs, NOW)).toBe("Jan  2  2020");
  });

  it("shows the year for dates more than an hour in the future", () => {
    expect(lsDate(Date.UTC(2024, 6, 1), NOW)).toBe("Jul  1  2024");
  });

  it("pads one-digit days with a space and keeps two-digit days", () => {
    expect(lsDate(Date.UTC(2024, 5, 12, 0, 0), NOW)).toBe("Jun 12 00:00");
  });
});

describe("formatLsLine", () => {
  it("writes perms, links, owner, group, size, date, name", () => {
    expect(formatLsLine(file, "alice", NOW)).toBe("-rw-r--r-- 1 alice alice          1234 Jun  1 09:05 report.txt");
    expect(formatLsLine(dir, "alice", NOW)).toBe("drwxr-xr-x 2 alice alice          4096 Jan  2  2020 photos");
  });

  it("keeps names with spaces, leading dashes and UTF-8 verbatim at the end of the line", () => {
    const line = formatLsLine({ ...file, name: " -odd 测试 name" }, "bob", NOW);
    expect(line.endsWith("09:05  -odd 测试 name")).toBe(true);
  });

  it("uses ftp for an empty owner", () => {
    expect(formatLsLine(file, "", NOW)).toContain(" ftp ftp ");
  });
});

describe("time-val (RFC 3659 §2.3: YYYYMMDDHHMMSS[.sss], always UTC)", () => {
  it("formats in UTC without fraction by default", () => {
    expect(formatTimeVal(Date.UTC(2024, 0, 2, 3, 4, 5, 678))).toBe("20240102030405");
  });

  it("adds milliseconds only when asked and non-zero", () => {
    expect(formatTimeVal(Date.UTC(2024, 0, 2, 3, 4, 5, 678), true)).toBe("20240102030405.678");
    expect(formatTimeVal(Date.UTC(2024, 0, 2, 3, 4, 5, 0), true)).toBe("20240102030405");
  });

  it("parses what it formats", () => {
    expect(parseTimeVal("20240102030405")).toBe(Date.UTC(2024, 0, 2, 3, 4, 5));
    expect(parseTimeVal("20240102030405.5")).toBe(Date.UTC(2024, 0, 2, 3, 4, 5, 500));
    expect(parseTimeVal("19700101000000")).toBe(0);
  });

  it("reads four-digit years literally, also below 100", () => {
    const ms = parseTimeVal("00500101000000")!;
    expect(new Date(ms).getUTCFullYear()).toBe(50);
    expect(formatTimeVal(ms)).toBe("00500101000000");
    expect(formatTimeVal(parseTimeVal("19991231235959")!)).toBe("19991231235959");
  });

  it("accepts February 29 only in leap years", () => {
    expect(parseTimeVal("20240229000000")).toBe(Date.UTC(2024, 1, 29));
    expect(parseTimeVal("20230229000000")).toBeNull();
  });

  it("refuses malformed or out-of-range values", () => {
    for (const bad of ["", "2024010203040", "202401020304056", "20241302030405", "20240002030405", "20240132030405", "20240102240000", "20240102006000", "2024-01-02 03:04:05", "20240102030405.", "x0240102030405"]) {
      expect(parseTimeVal(bad), bad).toBeNull();
    }
  });
});

describe("MLSx facts (RFC 3659 §7)", () => {
  it("advertises every fact in FEAT with * on the enabled ones (§7.8)", () => {
    expect(mlstFeatLine(DEFAULT_MLST_FACTS)).toBe("MLST type*;size*;modify*;perm*;unix.mode;");
    expect(mlstFeatLine([])).toBe("MLST type;size;modify;perm;unix.mode;");
  });

  it("parses OPTS MLST fact lists case-insensitively and ignores unknown facts (§7.9)", () => {
    expect(parseMlstOpts("size;Type;bogus;")).toEqual(["type", "size"]);
    expect(parseMlstOpts("")).toEqual([]);
    expect(parseMlstOpts("UNIX.mode")).toEqual(["unix.mode"]);
  });

  it("writes 'fact=value;...' then one space then the name (§7.2)", () => {
    expect(formatMlsxLine(file, DEFAULT_MLST_FACTS, { writable: true })).toBe(
      "type=file;size=1234;modify=20240601090507;perm=adfrw; report.txt",
    );
  });

  it("gives directories no size and directory permissions", () => {
    expect(formatMlsxLine(dir, DEFAULT_MLST_FACTS, { writable: true })).toBe("type=dir;modify=20200102030405;perm=flcdmpe; photos");
    // In a directory that takes no new names: no delete or rename; what happens inside the entry itself is still
    // allowed, STOR over a file included (it writes the file in place there).
    expect(formatMlsxLine(dir, ["perm"], { writable: false })).toBe("perm=lcmpe; photos");
    expect(formatMlsxLine(file, ["perm"], { writable: false })).toBe("perm=arw; report.txt");
  });

  it("says in perm what the server's user may do, by mode bits for owner, group and others (RFC 3659 §7.5.5)", () => {
    const me: Accessor = { uid: 1000, gids: new Set([1000, 50]) };
    const perm = (e: Partial<ListEntry>, writable = true, who: Accessor | null = me) =>
      formatMlsxLine({ ...(e.type === "dir" ? dir : file), ...e }, ["perm"], { writable, who });
    // Files: owner bits for the owner, group bits for a member, other bits for the rest.
    expect(perm({ uid: 1000, gid: 1000, mode: 0o644 })).toBe("perm=adfrw; report.txt");
    expect(perm({ uid: 1000, gid: 1000, mode: 0o444 })).toBe("perm=dfr; report.txt");
    expect(perm({ uid: 0, gid: 50, mode: 0o664 })).toBe("perm=adfrw; report.txt");
    expect(perm({ uid: 0, gid: 0, mode: 0o644 })).toBe("perm=dfr; report.txt");
    expect(perm({ uid: 0, gid: 0, mode: 0o600 })).toBe("perm=df; report.txt");
    expect(perm({ uid: 0, gid: 0, mode: 0o600 }, false)).toBe("perm=; report.txt");
    // The owner's bits count for the owner even when the others' would allow more, as the kernel checks them.
    expect(perm({ uid: 1000, gid: 0, mode: 0o077 })).toBe("perm=df; report.txt");
    // Directories: l needs read and search, e search, c/m/p write and search.
    expect(perm({ type: "dir", uid: 1000, gid: 1000, mode: 0o755 })).toBe("perm=flcdmpe; photos");
    expect(perm({ type: "dir", uid: 0, gid: 0, mode: 0o755 })).toBe("perm=flde; photos");
    expect(perm({ type: "dir", uid: 0, gid: 0, mode: 0o711 })).toBe("perm=fde; photos");
    expect(perm({ type: "dir", uid: 0, gid: 0, mode: 0o700 }, false)).toBe("perm=; photos");
    // Root may do anything; no owner known or no accessor: the mode alone is not judged.
    expect(perm({ uid: 5, gid: 5, mode: 0o000 }, true, { uid: 0, gids: new Set([0]) })).toBe("perm=adfrw; report.txt");
    expect(perm({ mode: 0o000 })).toBe("perm=adfrw; report.txt");
    expect(perm({ uid: 5, gid: 5, mode: 0o000 }, true, null)).toBe("perm=adfrw; report.txt");
    expect(mayAccess({ uid: 1000, gid: 1, mode: 0o500 }, me, MAY_READ | MAY_SEARCH)).toBe(true);
    expect(mayAccess({ uid: 1000, gid: 1, mode: 0o500 }, me, MAY_WRITE)).toBe(false);
  });

  it("types FIFOs, sockets and devices as OS.unix= kinds (RFC 3659 §7.5.1) with only delete and rename allowed", () => {
    const special = (type: ListEntry["type"]): ListEntry => ({ ...file, name: "x", type, size: 0 });
    const line = (type: ListEntry["type"], writable = true) => formatMlsxLine(special(type), DEFAULT_MLST_FACTS, { writable });
    expect(line("fifo")).toBe("type=OS.unix=fifo;size=0;modify=20240601090507;perm=df; x");
    expect(line("socket")).toBe("type=OS.unix=socket;size=0;modify=20240601090507;perm=df; x");
    expect(line("char")).toBe("type=OS.unix=chardev;size=0;modify=20240601090507;perm=df; x");
    expect(line("block", false)).toBe("type=OS.unix=blockdev;size=0;modify=20240601090507;perm=; x");
    // Every line stays in RFC 3659's grammar: facts are fact=value; with a token value, one space, then the name.
    for (const t of ["fifo", "socket", "char", "block", "link", "other"] as const) {
      expect(line(t)).toMatch(/^([a-z.]+=[A-Za-z0-9.=]*;)+ x$/i);
    }
  });

  it("writes unix.mode in octal and honours type and name overrides", () => {
    expect(formatMlsxLine(dir, ["type", "unix.mode"], { writable: true, typeOverride: "cdir", name: "/photos" })).toBe(
      "type=cdir;unix.mode=0755; /photos",
    );
  });

  it("writes only the selected facts, in the standard order", () => {
    expect(formatMlsxLine(file, ["size"], { writable: true })).toBe("size=1234; report.txt");
    expect(formatMlsxLine(file, [], { writable: true })).toBe(" report.txt");
  });

  it("keeps a name with leading spaces intact after the single separator space", () => {
    expect(formatMlsxLine({ ...file, name: "  two" }, ["type"], { writable: true })).toBe("type=file;   two");
  });
});

describe("sortByName", () => {
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  it("orders as one in-place sort does, stable for equal names, small lists and ones of many runs alike", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ maxLength: 6 }), { maxLength: 9000 }), async (names) => {
        const items = names.map((name, i) => ({ name, i }));
        const want = [...items].sort(byName);
        expect(await sortByName([...items])).toEqual(want);
      }),
      { numRuns: 30 },
    );
  });

  it("sorts 100,000 names of a directory (many runs and merges) into order", async () => {
    const items = Array.from({ length: 100_000 }, (_, i) => ({ name: `entry-${String((i * 7919) % 100_000).padStart(6, "0")}` }));
    const out = await sortByName(items);
    expect(out).toHaveLength(100_000);
    for (let i = 1; i < out.length; i++) expect(out[i - 1]!.name < out[i]!.name).toBe(true);
  });
});
