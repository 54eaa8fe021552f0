// Sizes as operators write them (issue 2: bytes, KB/MB/GB = 1000, KiB/MiB/GiB = 1024, "unlimited").
import { describe, expect, it } from "vitest";
import { formatSize, parseSize } from "../../src/core/units.js";

describe("parseSize", () => {
  it("reads plain bytes", () => {
    expect(parseSize("0")).toBe(0);
    expect(parseSize("1048576")).toBe(1048576);
    expect(parseSize("12B")).toBe(12);
  });

  it("reads decimal units as powers of 1000", () => {
    expect(parseSize("1KB")).toBe(1000);
    expect(parseSize("10MB")).toBe(10_000_000);
    expect(parseSize("2GB")).toBe(2_000_000_000);
    expect(parseSize("1TB")).toBe(1e12);
  });

  it("reads binary units as powers of 1024", () => {
    expect(parseSize("1KiB")).toBe(1024);
    expect(parseSize("5MiB")).toBe(5 * 1024 ** 2);
    expect(parseSize("1GiB")).toBe(1024 ** 3);
  });

  it("is case-insensitive, allows a space and a fraction that makes whole bytes", () => {
    expect(parseSize("1gib")).toBe(1024 ** 3);
    expect(parseSize("10 MB")).toBe(10_000_000);
    expect(parseSize("1.5KiB")).toBe(1536);
    expect(parseSize(" 3kb ")).toBe(3000);
    // Exact, where a binary fraction times the unit would miss the whole number.
    expect(parseSize("2.01KB")).toBe(2010);
    expect(parseSize("1.07GB")).toBe(1_070_000_000);
    expect(parseSize("0.29KB")).toBe(290);
  });

  it("reads unlimited as null", () => {
    expect(parseSize("unlimited")).toBeNull();
    expect(parseSize("UNLIMITED")).toBeNull();
  });

  it("refuses nonsense, negatives, unknown units and fractional bytes", () => {
    for (const bad of ["", "abc", "-1", "10XB", "1.5", "0.3KB.", "MB", "1e3", "10 M B", "1.0001KiB"]) {
      expect(() => parseSize(bad), bad).toThrow(RangeError);
    }
  });

  it("refuses sizes beyond exact integers", () => {
    expect(() => parseSize("99999999TiB")).toThrow(/too large/);
  });
});

describe("formatSize", () => {
  it("formats for people", () => {
    expect(formatSize(null)).toBe("unlimited");
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1024)).toBe("1.00 KiB");
    expect(formatSize(1024 ** 3)).toBe("1.00 GiB");
    expect(formatSize(150 * 1024 ** 2)).toBe("150 MiB");
    expect(formatSize(15.5 * 1024 ** 2)).toBe("15.5 MiB");
  });
});
