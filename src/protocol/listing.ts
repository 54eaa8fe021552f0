// Directory listing formats: LIST in the `ls -l` form every client parses, NLST names, and the MLSx fact lines of
// RFC 3659 §7, plus the time-val format shared by MDTM, MFMT and the modify fact (RFC 3659 §2.3).

/** What an entry is; "other" for a kind the file system reports that none of these names. */
export type EntryType = "file" | "dir" | "link" | "fifo" | "socket" | "char" | "block" | "other";

/** The type letter `ls -l` writes for each kind. */
const LS_TYPE: Record<EntryType, string> = {
  file: "-",
  dir: "d",
  link: "l",
  fifo: "p",
  socket: "s",
  char: "c",
  block: "b",
  other: "?",
};

/** MLSx type= values of the special kinds, as "OS.unix=kind" (RFC 3659 §7.5.1: an OS-specific type). */
const MLSX_TYPE: Record<EntryType, string> = {
  file: "file",
  dir: "dir",
  link: "OS.unix=link",
  fifo: "OS.unix=fifo",
  socket: "OS.unix=socket",
  char: "OS.unix=chardev",
  block: "OS.unix=blockdev",
  other: "OS.unix=other",
};

export interface ListEntry {
  name: string;
  type: EntryType;
  size: number;
  /** Modification time in ms since the epoch. */
  mtimeMs: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  /** Owner and group, where known: with them the perm fact says what the server's own user may do. */
  uid?: number;
  gid?: number;
  /** Owner of the name itself where it differs from the file's: a link, listed with its target's facts. */
  nameUid?: number;
}

/** Who acts on the files: the server process's user and groups. */
export interface Accessor {
  uid: number;
  gids: ReadonlySet<number>;
}

let processAccessor: Accessor | null | undefined;

/** The server process's user and groups (null where the platform has no uids). */
export function currentAccessor(): Accessor | null {
  if (processAccessor === undefined) {
    processAccessor =
      typeof process.geteuid === "function" && typeof process.getegid === "function"
        ? { uid: process.geteuid(), gids: new Set([process.getegid(), ...(process.getgroups?.() ?? [])]) }
        : null;
  }
  return processAccessor;
}

/**
 * The sticky rule (mode bit 01000 on a directory): in such a directory only the owner of an entry's name, the
 * directory's owner or root may remove, rename or replace the entry. Unknown owner or accessor: allowed.
 */
export function stickyPermits(dir: { mode: number; uid?: number }, nameOwner: number | undefined, who: Accessor | null): boolean {
  if ((dir.mode & 0o1000) === 0 || !who || who.uid === 0 || nameOwner === undefined) return true;
  return nameOwner === who.uid || dir.uid === who.uid;
}

/** A sticky directory's mode and owner, for the perm facts of its entries; undefined when not sticky. */
export function stickyOf(dir: Pick<ListEntry, "mode" | "uid">): StickyDir | undefined {
  return (dir.mode & 0o1000) !== 0 && dir.uid !== undefined ? { mode: dir.mode, uid: dir.uid } : undefined;
}

export interface StickyDir {
  mode: number;
  uid: number;
}

export const MAY_READ = 4;
export const MAY_WRITE = 2;
export const MAY_SEARCH = 1;

/**
 * Whether `who` has every permission in `bits` (MAY_*) on an entry, by its mode bits as the kernel checks them
 * (owner, else group, else others; root may do anything). Unknown owner or accessor: assumed allowed.
 */
export function mayAccess(e: Pick<ListEntry, "mode" | "uid" | "gid">, who: Accessor | null, bits: number): boolean {
  if (!who || e.uid === undefined || who.uid === 0) return true;
  const shift = e.uid === who.uid ? 6 : e.gid !== undefined && who.gids.has(e.gid) ? 3 : 0;
  return ((e.mode >> shift) & bits) === bits;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const SIX_MONTHS_MS = 182.5 * 24 * 3600 * 1000;

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** "rwxr-xr-x" with the type letter in front, as ls prints it. */
export function modeString(type: EntryType, mode: number): string {
  const chars = "rwxrwxrwx";
  const bits = [...chars].map((c, i) => (mode & (1 << (8 - i)) ? c : "-"));
  // setuid, setgid and sticky take the x places, as ls shows them: lower case over x, upper case where x is off.
  const special: [number, number, string][] = [
    [0o4000, 2, "s"],
    [0o2000, 5, "s"],
    [0o1000, 8, "t"],
  ];
  for (const [bit, at, c] of special) if (mode & bit) bits[at] = bits[at] === "x" ? c : c.toUpperCase();
  return LS_TYPE[type] + bits.join("");
}

/** The date column of `ls -l`: "Mon DD HH:MM" within six months of now, "Mon DD  YYYY" otherwise (UTC). */
export function lsDate(mtimeMs: number, nowMs: number): string {
  const d = new Date(mtimeMs);
  const day = String(d.getUTCDate()).padStart(2, " ");
  const mon = MONTHS[d.getUTCMonth()]!;
  if (Math.abs(nowMs - mtimeMs) < SIX_MONTHS_MS && mtimeMs <= nowMs + 3600_000) {
    return `${mon} ${day} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  }
  return `${mon} ${day}  ${d.getUTCFullYear()}`;
}

/** One `ls -l` line without its line end. */
export function formatLsLine(e: ListEntry, owner: string, nowMs: number): string {
  const links = e.type === "dir" ? 2 : 1;
  const size = String(e.size).padStart(13, " ");
  const who = owner.length > 0 ? owner.slice(0, 16) : "ftp";
  return `${modeString(e.type, e.mode)} ${links} ${who} ${who} ${size} ${lsDate(e.mtimeMs, nowMs)} ${e.name}`;
}

/** RFC 3659 time-val in UTC: YYYYMMDDHHMMSS, with ".sss" when millis is set and non-zero. */
export function formatTimeVal(ms: number, millis = false): string {
  // Rounded to the millisecond: a time set from milliseconds comes back from the file system a few hundred
  // nanoseconds off (utimes takes seconds as a double), which truncation would show as the millisecond before.
  const d = new Date(millis ? Math.round(ms) : Math.floor(ms));
  const base =
    `${d.getUTCFullYear()}`.padStart(4, "0") +
    pad2(d.getUTCMonth() + 1) +
    pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) +
    pad2(d.getUTCMinutes()) +
    pad2(d.getUTCSeconds());
  const frac = d.getUTCMilliseconds();
  return millis && frac !== 0 ? `${base}.${String(frac).padStart(3, "0")}` : base;
}

/** Parses a time-val (YYYYMMDDHHMMSS[.fff]) as UTC; null when malformed or out of range. */
export function parseTimeVal(s: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return null;
  const frac = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  // setUTCFullYear, not Date.UTC: the latter reads years 0-99 as 1900-1999.
  const check = new Date(0);
  check.setUTCFullYear(y, mo - 1, d);
  check.setUTCHours(h, mi, Math.min(se, 59), frac);
  if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1) return null;
  return check.getTime();
}

/** The facts this server can give, in the order they are written (RFC 3659 §7.5). */
export const MLST_FACTS = ["type", "size", "modify", "perm", "unix.mode"] as const;
export type MlstFact = (typeof MLST_FACTS)[number];
export const DEFAULT_MLST_FACTS: readonly MlstFact[] = ["type", "size", "modify", "perm"];

/** The FEAT line: every supported fact, with "*" on the enabled ones. */
export function mlstFeatLine(enabled: readonly MlstFact[]): string {
  return "MLST " + MLST_FACTS.map((f) => `${f}${enabled.includes(f) ? "*" : ""};`).join("");
}

/** Parses the fact list of "OPTS MLST fact;fact;"; unknown facts are ignored as the RFC asks. */
export function parseMlstOpts(arg: string): MlstFact[] {
  const wanted = arg
    .split(";")
    .map((f) => f.trim().toLowerCase())
    .filter((f) => f.length > 0);
  return MLST_FACTS.filter((f) => wanted.includes(f));
}

/**
 * One MLSx entry: "fact=value;...; name". typeOverride lets MLST of a directory say "cdir" and MLSD's own
 * entries say "cdir"/"pdir". The perm fact (RFC 3659 §7.5.5) says what this server can do with the entry:
 * `writable` is whether its directory takes new, removed and renamed names (false for the home itself), `sticky`
 * is that directory when it is sticky, and the entry's own mode, owner and group against `who` decide the rest.
 */
export function formatMlsxLine(
  e: ListEntry,
  facts: readonly MlstFact[],
  opts: { writable: boolean; who?: Accessor | null; sticky?: StickyDir; typeOverride?: string; name?: string },
): string {
  let out = "";
  for (const f of facts) {
    switch (f) {
      case "type":
        out += `type=${opts.typeOverride ?? MLSX_TYPE[e.type]};`;
        break;
      case "size":
        if (e.type !== "dir") out += `size=${e.size};`;
        break;
      case "modify":
        out += `modify=${formatTimeVal(e.mtimeMs)};`;
        break;
      case "perm":
        out += `perm=${permFact(e, opts.writable, opts.who ?? null, opts.sticky)};`;
        break;
      case "unix.mode":
        out += `unix.mode=0${(e.mode & 0o7777).toString(8)};`;
        break;
    }
  }
  return `${out} ${opts.name ?? e.name}`;
}

function permFact(e: ListEntry, dirWritable: boolean, who: Accessor | null, sticky?: StickyDir): string {
  const may = (bits: number) => mayAccess(e, who, bits);
  const removable = dirWritable && (!sticky || stickyPermits(sticky, e.nameUid ?? e.uid, who));
  const rename = removable ? "f" : "";
  const remove = removable ? "d" : "";
  if (e.type === "dir") {
    const inside = may(MAY_WRITE | MAY_SEARCH);
    return rename + (may(MAY_READ | MAY_SEARCH) ? "l" : "") + (inside ? "c" : "") + remove + (inside ? "mp" : "") + (may(MAY_SEARCH) ? "e" : "");
  }
  if (e.type === "file") {
    const write = may(MAY_WRITE);
    // APPE writes the file in place; STOR over it writes a temporary file beside it where the directory allows
    // replacing the file, and the file in place where it does not: either way it takes write permission on the file.
    return (write ? "a" : "") + remove + rename + (may(MAY_READ) ? "r" : "") + (write ? "w" : "");
  }
  // A FIFO, socket or device is never read or written over FTP (RETR and STOR take regular files only): it can
  // only be deleted or renamed.
  return remove + rename;
}

/** Names compared per turn of the event loop while sortByName merges, and the length of the runs it sorts at once. */
const SORT_RUN = 2048;
const MERGE_STEPS = 16_384;

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * `items` in name order (UTF-16 code units, as `<` compares them). A large directory is sorted a run at a time and
 * the runs merged a bounded number of steps at a time, with a turn of the event loop in between: sorted in one go,
 * 100,000 long names held every other session for about 65 ms. Small lists are sorted in place at once.
 */
export async function sortByName<T extends { name: string }>(items: T[]): Promise<T[]> {
  if (items.length <= SORT_RUN) return items.sort(byName);
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  let runs: T[][] = [];
  for (let i = 0; i < items.length; i += SORT_RUN) {
    if (i > 0) await turn();
    runs.push(items.slice(i, i + SORT_RUN).sort(byName));
  }
  let steps = 0;
  while (runs.length > 1) {
    const merged: T[][] = [];
    for (let r = 0; r < runs.length; r += 2) {
      const a = runs[r]!;
      const b = runs[r + 1];
      if (!b) {
        merged.push(a);
        continue;
      }
      const out: T[] = new Array<T>(a.length + b.length);
      let x = 0;
      let y = 0;
      let k = 0;
      while (x < a.length && y < b.length) {
        // Ties keep a's first: the order of equal names stays as it came.
        out[k++] = byName(b[y]!, a[x]!) < 0 ? b[y++]! : a[x++]!;
        if (++steps >= MERGE_STEPS) {
          steps = 0;
          await turn();
        }
      }
      while (x < a.length) out[k++] = a[x++]!;
      while (y < b.length) out[k++] = b[y++]!;
      merged.push(out);
    }
    runs = merged;
  }
  return runs[0]!;
}

/** Lines of a listing made in one piece. */
const LISTING_BATCH = 256;

/**
 * The lines of a listing, CRLF-ended, in pieces of LISTING_BATCH entries: whoever takes a piece at a time can let the
 * event loop turn between them, so a large directory never holds the other sessions for the whole listing.
 */
export function* listingLines<T>(entries: readonly T[], line: (e: T) => string): Generator<string> {
  for (let i = 0; i < entries.length; i += LISTING_BATCH) {
    let out = "";
    for (const e of entries.slice(i, i + LISTING_BATCH)) out += line(e) + "\r\n";
    yield out;
  }
}
