// Virtual path resolution: the one place client input becomes a path.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BadPathError, resolveVirtual, virtualBase, virtualJoin, virtualParent } from "../../src/protocol/vpath.js";

describe("resolveVirtual", () => {
  it("normalises /a/../b to /b", () => {
    expect(resolveVirtual("/", "/a/../b")).toBe("/b");
  });

  it("keeps .. at / at /", () => {
    expect(resolveVirtual("/", "..")).toBe("/");
    expect(resolveVirtual("/", "../../..")).toBe("/");
    expect(resolveVirtual("/x", "../../../etc/passwd")).toBe("/etc/passwd");
    expect(resolveVirtual("/", "/../../etc")).toBe("/etc");
  });

  it("resolves relative paths against the current directory", () => {
    expect(resolveVirtual("/home/dir", "file")).toBe("/home/dir/file");
    expect(resolveVirtual("/home/dir", "../x")).toBe("/home/x");
    expect(resolveVirtual("/home/dir", "")).toBe("/home/dir");
    expect(resolveVirtual("/home/dir", ".")).toBe("/home/dir");
  });

  it("lets an absolute path ignore the current directory", () => {
    expect(resolveVirtual("/deep/down", "/top")).toBe("/top");
  });

  it("drops empty segments, . segments and trailing slashes", () => {
    expect(resolveVirtual("/", "//a///./b/")).toBe("/a/b");
    expect(resolveVirtual("/", "/")).toBe("/");
  });

  it("keeps names with spaces, leading dashes, dots inside and UTF-8 as they are", () => {
    expect(resolveVirtual("/", " a b ")).toBe("/ a b ");
    expect(resolveVirtual("/", "-rf")).toBe("/-rf");
    expect(resolveVirtual("/", "...")).toBe("/...");
    expect(resolveVirtual("/", "..a")).toBe("/..a");
    expect(resolveVirtual("/", "测试文件.txt")).toBe("/测试文件.txt");
  });

  it("refuses CR, LF and NUL anywhere", () => {
    for (const bad of ["a\rb", "a\nb", "a\0b", "\0", "/x/\n"]) {
      expect(() => resolveVirtual("/", bad)).toThrow(BadPathError);
    }
  });

  it("always yields a path that starts with / and has no . or .. segment", () => {
    const seg = fc.constantFrom("..", ".", "", "a", "b", "..a", "c d");
    fc.assert(
      fc.property(fc.array(seg, { maxLength: 10 }), fc.array(seg, { maxLength: 10 }), (cwdSegs, inSegs) => {
        const cwd = resolveVirtual("/", "/" + cwdSegs.join("/"));
        const out = resolveVirtual(cwd, inSegs.join("/"));
        expect(out.startsWith("/")).toBe(true);
        expect(out === "/" || !out.endsWith("/")).toBe(true);
        expect(out.split("/").slice(1).some((s) => s === "." || s === ".." || (s === "" && out !== "/"))).toBe(false);
      }),
    );
  });
});

describe("virtual path helpers", () => {
  it("virtualParent", () => {
    expect(virtualParent("/")).toBe("/");
    expect(virtualParent("/a")).toBe("/");
    expect(virtualParent("/a/b")).toBe("/a");
  });

  it("virtualBase", () => {
    expect(virtualBase("/")).toBe("");
    expect(virtualBase("/a/b c")).toBe("b c");
  });

  it("virtualJoin", () => {
    expect(virtualJoin("/", "x")).toBe("/x");
    expect(virtualJoin("/a", "x")).toBe("/a/x");
  });
});
