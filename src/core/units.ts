// Byte sizes as operators write them: "1048576", "10MB" (powers of 1000), "10MiB" (powers of 1024), "unlimited".

const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  TB: 1000 ** 4,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
  TIB: 1024 ** 4,
};

/** Parses a size; null means unlimited. Throws a RangeError with a readable message when malformed. */
export function parseSize(text: string): number | null {
  const t = text.trim();
  if (/^unlimited$/i.test(t)) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(t);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) {
    throw new RangeError(`invalid size "${text}": use bytes, KB/MB/GB/TB, KiB/MiB/GiB/TiB, or "unlimited"`);
  }
  // In exact integers: a binary fraction times the unit can miss a whole number ("2.01KB" is 2010 bytes, but
  // 2.01 * 1000 is 2009.9999999999998 in floating point).
  const [whole, fraction = ""] = m[1]!.split(".");
  const scale = 10n ** BigInt(fraction.length);
  const scaled = BigInt(whole! + fraction) * BigInt(unit);
  if (scaled / scale > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`size "${text}" is too large`);
  if (scaled % scale !== 0n) throw new RangeError(`size "${text}" is not a whole number of bytes`);
  return Number(scaled / scale);
}

/** "1.5 MiB" style, for people; exact bytes stay available elsewhere. */
export function formatSize(bytes: number | null): string {
  if (bytes === null) return "unlimited";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}
