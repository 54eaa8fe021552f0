// Progress output. The formatting is pure (tested to the character); the reporter decides where it goes:
// a redrawn bar on a terminal, one line per finished file otherwise, nothing with --quiet.

import { formatSize } from "../core/units.js";

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "?";
  return formatSize(n);
}

export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) return "-- B/s";
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** Seconds as "7s", "1m05s", "2h03m"; "--:--" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(s / 3600);
  if (h >= 100) return ">99h";
  return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export interface BarState {
  readonly name: string;
  /** Bytes done in total, including any resumed prefix. */
  readonly done: number;
  /** Total size, or undefined when unknown. */
  readonly total: number | undefined;
  /** Bytes per second over the recent past. */
  readonly rate: number;
  /** Terminal width in columns. */
  readonly width: number;
}

/**
 * Code points a terminal shows two columns wide (East Asian Wide and Fullwidth, and emoji), as [first, last] pairs in
 * ascending order.
 */
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], [0x231a, 0x231b], [0x2329, 0x232a], [0x23e9, 0x23ec], [0x23f0, 0x23f0], [0x23f3, 0x23f3],
  [0x25fd, 0x25fe], [0x2614, 0x2615], [0x2648, 0x2653], [0x267f, 0x267f], [0x2693, 0x2693], [0x26a1, 0x26a1],
  [0x26aa, 0x26ab], [0x26bd, 0x26be], [0x26c4, 0x26c5], [0x26ce, 0x26ce], [0x26d4, 0x26d4], [0x26ea, 0x26ea],
  [0x26f2, 0x26f3], [0x26f5, 0x26f5], [0x26fa, 0x26fa], [0x26fd, 0x26fd], [0x2705, 0x2705], [0x270a, 0x270b],
  [0x2728, 0x2728], [0x274c, 0x274c], [0x274e, 0x274e], [0x2753, 0x2755], [0x2757, 0x2757], [0x2795, 0x2797],
  [0x27b0, 0x27b0], [0x27bf, 0x27bf], [0x2b1b, 0x2b1c], [0x2b50, 0x2b50], [0x2b55, 0x2b55], [0x2e80, 0x303e],
  [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xa000, 0xa4cf], [0xa960, 0xa97f], [0xac00, 0xd7a3],
  [0xf900, 0xfaff], [0xfe10, 0xfe19], [0xfe30, 0xfe6f], [0xff00, 0xff60], [0xffe0, 0xffe6], [0x16fe0, 0x16fe4],
  [0x17000, 0x18cff], [0x1b000, 0x1b2ff], [0x1f004, 0x1f004], [0x1f0cf, 0x1f0cf], [0x1f18e, 0x1f18e],
  [0x1f191, 0x1f19a], [0x1f200, 0x1f251], [0x1f300, 0x1f64f], [0x1f680, 0x1f6ff], [0x1f7e0, 0x1f7eb],
  [0x1f90c, 0x1f9ff], [0x1fa70, 0x1faff], [0x20000, 0x3fffd],
];

/** Columns one code point takes on a terminal: 0 for combining marks and format characters, 2 for wide ones. */
export function charWidth(ch: string): number {
  const cp = ch.codePointAt(0)!;
  if (/^[\p{Mn}\p{Me}\p{Cf}]$/u.test(ch)) return 0;
  let lo = 0;
  let hi = WIDE.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = WIDE[mid]!;
    if (cp < a) hi = mid - 1;
    else if (cp > b) lo = mid + 1;
    else return 2;
  }
  return 1;
}

/** Columns a string takes on a terminal. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += charWidth(ch);
  return w;
}

/** Control characters: in a name a server sent, they would move the cursor, end the line or drive the terminal. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Text as a terminal should show it: control characters as "?", as ls shows them. */
export function printable(text: string): string {
  return text.replace(CONTROL, "?");
}

/** Whether text holds a control character. */
export function hasControl(text: string): boolean {
  return printable(text) !== text;
}

/** Shorten a name to `max` columns, keeping its end (the extension) visible; shorter names are padded to `max`. */
export function fitName(name: string, max: number): string {
  const text = printable(name);
  const width = displayWidth(text);
  if (width <= max) return text + " ".repeat(Math.max(0, max - width));
  const chars = [...text];
  // The end of the name that fits in the columns left after the "…" (none for a 1-column field).
  const room = max <= 1 ? max : max - 1;
  let tail = "";
  let used = 0;
  for (let i = chars.length - 1; i >= 0; i--) {
    const w = charWidth(chars[i]!);
    if (used + w > room) break;
    tail = chars[i]! + tail;
    used += w;
  }
  // A wide character that did not fit whole leaves a column: a space fills it, so the field keeps its width.
  return `${max <= 1 ? "" : "…"}${" ".repeat(room - used)}${tail}`;
}

/**
 * One bar line: "name  [#####-----]  42%  4.20 MiB/10.0 MiB  1.50 MiB/s  ETA 4s", fitted to `width`
 * columns. Fields have fixed widths so the bar does not jitter; on a narrow terminal the bar goes
 * first, then the ETA, then the rate.
 */
export function formatBar(st: BarState): string {
  const width = Math.max(10, st.width - 1);
  const known = st.total !== undefined && st.total > 0;
  const fraction = known ? Math.min(1, st.done / st.total!) : st.total === 0 ? 1 : undefined;
  const pct = fraction === undefined ? " --%" : `${String(Math.floor(fraction * 100)).padStart(3)}%`;
  const bytes = (st.total === undefined ? formatBytes(st.done) : `${formatBytes(st.done)}/${formatBytes(st.total)}`).padStart(17);
  const rate = formatRate(st.rate).padStart(10);
  const remaining = known && st.rate > 0 ? (st.total! - st.done) / st.rate : fraction === 1 ? 0 : Number.NaN;
  const eta = `ETA ${formatDuration(remaining)}`.padEnd(9);
  const nameWidth = Math.min(Math.max(8, displayWidth(printable(st.name))), 20);
  const fields = [pct, bytes, rate, eta];
  const full = fields.join("  ");
  const room = width - nameWidth - full.length - 4;
  if (room >= 10) {
    const barWidth = Math.min(room, 42) - 2;
    const filled = fraction === undefined ? 0 : Math.round(fraction * barWidth);
    const bar = `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]`;
    return `${fitName(st.name, nameWidth)}  ${bar}  ${full}`.trimEnd();
  }
  for (let keep = fields.length; keep >= 1; keep--) {
    const tail = fields.slice(0, keep).map((f) => f.trim()).join("  ");
    const nameRoom = width - tail.length - 2;
    if (nameRoom >= 4) return `${fitName(st.name, Math.min(nameRoom, Math.max(4, displayWidth(printable(st.name)))))}  ${tail}`;
  }
  return fitName(`${fitName(st.name, 4)} ${pct.trim()}`, width).trimEnd();
}

export interface DoneState {
  readonly verb: string; // "get", "put"
  readonly name: string;
  /** Bytes moved over the network in this run. */
  readonly transferred: number;
  /** Final size of the file. */
  readonly size: number;
  readonly seconds: number;
  /** Bytes already there before this run (resumed). */
  readonly resumedFrom: number;
  /** How the result was checked, e.g. "SHA-256 verified" or "size verified". */
  readonly verified: string;
}

/** The line printed for a finished file when no bar is drawn. */
export function formatDone(d: DoneState): string {
  const rate = d.seconds > 0 ? d.transferred / d.seconds : Number.NaN;
  const resumed = d.resumedFrom > 0 ? `, resumed at ${formatBytes(d.resumedFrom)}` : "";
  const speed = Number.isFinite(rate) ? ` (${formatRate(rate)})` : "";
  return `${d.verb} ${d.name}: ${formatBytes(d.size)} in ${d.seconds.toFixed(1)}s${speed}${resumed}, ${d.verified}`;
}

/** Rate over a sliding window of samples. */
export class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 3000) {}
  add(now: number, totalBytes: number): void {
    this.samples.push({ t: now, bytes: totalBytes });
    while (this.samples.length > 2 && now - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }
  rate(): number {
    if (this.samples.length < 2) return Number.NaN;
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (b.bytes - a.bytes) / dt : Number.NaN;
  }
}

export type ProgressMode = "bar" | "lines" | "quiet";

export interface ProgressHandle {
  /** Total bytes done so far (including the resumed prefix). */
  update(done: number): void;
  setTotal(total: number | undefined): void;
  /** Finish: clear the bar and print the summary line (unless quiet). */
  finish(d: Omit<DoneState, "name" | "verb"> & { name?: string }): void;
  /** Clear the bar without a summary (failure). */
  abort(): void;
}

export interface Terminal {
  write(s: string): void;
  readonly columns: number | undefined;
}

export class ProgressReporter {
  private clearActive: (() => void) | undefined;
  /** With several transfers at once, the oldest running one has the bar line. */
  private owner: object | undefined;

  constructor(
    readonly mode: ProgressMode,
    private readonly out: (line: string) => void,
    private readonly term: Terminal | undefined,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Set once interrupt() ran: nothing is drawn any more. */
  private stopped = false;
  private endActive: (() => void) | undefined;

  /**
   * Ctrl-C: end the line of the bar being drawn (it stays as it was, the shell's prompt goes below it) and draw no
   * more bars.
   */
  interrupt(): void {
    this.stopped = true;
    this.endActive?.();
  }

  /** Print a line of information, clearing a bar that is being drawn (it is redrawn on the next update). */
  note(line: string): void {
    if (this.mode === "quiet") return;
    this.clearActive?.();
    this.out(line);
  }

  start(verb: string, name: string, total: number | undefined, done = 0): ProgressHandle {
    const meter = new RateMeter();
    let cur = done;
    let tot = total;
    let lastDraw = 0;
    let drawn = false;
    const me = {};
    const clear = () => {
      if (drawn && this.term) this.term.write("\r\x1b[K");
      drawn = false;
    };
    const end = () => {
      if (drawn && this.term) this.term.write("\n");
      drawn = false;
    };
    const draw = (force: boolean) => {
      if (this.mode !== "bar" || !this.term || this.stopped) return;
      const t = this.now();
      meter.add(t, cur);
      if (this.owner === undefined) {
        this.owner = me;
        this.clearActive = clear;
        this.endActive = end;
      }
      if (this.owner !== me || (!force && t - lastDraw < 100)) return;
      lastDraw = t;
      const line = formatBar({ name, done: cur, total: tot, rate: meter.rate(), width: this.term.columns || 80 });
      this.term.write(`\r${line}\x1b[K`);
      drawn = true;
    };
    const release = () => {
      if (this.owner !== me) return;
      this.owner = undefined;
      this.clearActive = undefined;
      this.endActive = undefined;
    };
    meter.add(this.now(), cur);
    draw(true);
    return {
      update: (d) => {
        cur = d;
        draw(false);
      },
      setTotal: (t) => {
        tot = t;
      },
      finish: (d) => {
        cur = d.size;
        draw(true);
        clear();
        release();
        // Printed as a note: another transfer's bar on the line is cleared first (it is redrawn on its next update).
        this.note(formatDone({ verb, name: d.name ?? name, ...d }));
      },
      abort: () => {
        clear();
        release();
      },
    };
  }
}
