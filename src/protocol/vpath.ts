// Virtual paths: what the client sees. "/" is the user's home. Pure string work, no file system.

const FORBIDDEN = /[\r\n\0]/;

export class BadPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadPathError";
  }
}

/**
 * Resolves a client path against the current virtual directory and normalises it: "." and empty segments vanish,
 * ".." removes one segment and stops at "/". The result always starts with "/" and never ends with "/" (except "/").
 * CR, LF and NUL are refused.
 */
export function resolveVirtual(cwd: string, input: string): string {
  if (FORBIDDEN.test(input)) throw new BadPathError("path contains a forbidden character");
  const base = input.startsWith("/") ? [] : splitSegments(cwd);
  for (const seg of input.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") base.pop();
    else base.push(seg);
  }
  return "/" + base.join("/");
}

function splitSegments(p: string): string[] {
  return p.split("/").filter((s) => s !== "" && s !== ".");
}

/** The virtual parent of a normalised virtual path ("/" for "/" itself). */
export function virtualParent(vpath: string): string {
  const i = vpath.lastIndexOf("/");
  return i <= 0 ? "/" : vpath.slice(0, i);
}

/** The last segment of a normalised virtual path ("" for "/"). */
export function virtualBase(vpath: string): string {
  return vpath.slice(vpath.lastIndexOf("/") + 1);
}

/** Joins a normalised virtual directory and one entry name. */
export function virtualJoin(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}
