// `myftpd serve` settings: defaults, config file (TOML or JSON), flags win, unknown keys and bad values refused
// with a message naming the key.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, resolveServeSettings } from "../../src/cli/settings.js";

const dir = mkdtempSync(path.join(tmpdir(), "myftp-settings-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(ext: string, text: string): string {
  const p = path.join(dir, `c${n++}.${ext}`);
  writeFileSync(p, text);
  return p;
}

describe("resolveServeSettings", () => {
  it("has the documented defaults", () => {
    const s = resolveServeSettings({});
    expect(s.host).toBe("0.0.0.0");
    expect(s.port).toBe(2121);
    expect(s.pasvRange).toEqual([50000, 50100]);
    expect(s.pasvAddress).toBeNull();
    expect(s.idleTimeout).toBe(300);
    expect(path.isAbsolute(s.data)).toBe(true);
  });

  it("takes flags as strings the way the command line gives them", () => {
    const s = resolveServeSettings({ port: "0", host: "127.0.0.1", pasvRange: "40000-40010", idleTimeout: "5", requireTls: true });
    expect(s.port).toBe(0);
    expect(s.host).toBe("127.0.0.1");
    expect(s.pasvRange).toEqual([40000, 40010]);
    expect(s.idleTimeout).toBe(5);
    expect(s.requireTls).toBe(true);
  });

  it("reads a TOML config file with the flags' names", () => {
    const f = file("toml", 'port = 2200\npasv-range = "51000-51010"\nidle-timeout = 60\nlog-level = "warn"\ndata = "rel"\n');
    const s = resolveServeSettings({}, f);
    expect(s.port).toBe(2200);
    expect(s.pasvRange).toEqual([51000, 51010]);
    expect(s.idleTimeout).toBe(60);
    expect(s.logLevel).toBe("warn");
    // Relative paths in a config file are taken relative to the file.
    expect(s.data).toBe(path.join(dir, "rel"));
  });

  it("reads a JSON config file, with a range given as an array", () => {
    const f = file("json", JSON.stringify({ port: 2300, "pasv-range": [52000, 52001], "max-sessions": 3 }));
    const s = resolveServeSettings({}, f);
    expect(s.port).toBe(2300);
    expect(s.pasvRange).toEqual([52000, 52001]);
    expect(s.maxSessions).toBe(3);
  });

  it("lets flags win over the file", () => {
    const f = file("toml", "port = 2200\nidle-timeout = 60\n");
    const s = resolveServeSettings({ port: "2400" }, f);
    expect(s.port).toBe(2400);
    expect(s.idleTimeout).toBe(60);
  });

  it("refuses an unknown key, naming it", () => {
    const f = file("toml", "port = 2200\nmax-sesions = 3\n");
    expect(() => resolveServeSettings({}, f)).toThrow(ConfigError);
    expect(() => resolveServeSettings({}, f)).toThrow(/max-sesions/);
  });

  it.each([
    ["port = 70000", "port"],
    ['port = "abc"', "port"],
    ["port = -1", "port"],
    ["port = 1.5", "port"],
    ['pasv-range = "60000-50000"', "pasv-range"],
    ['pasv-range = "80-90"', "pasv-range"],
    ['pasv-range = "50000"', "pasv-range"],
    ['pasv-address = "::1"', "pasv-address"],
    ['host = "bad host!"', "host"],
    ["idle-timeout = 100000", "idle-timeout"],
    ['require-tls = "maybe"', "require-tls"],
    ['log-level = "loud"', "log-level"],
  ])("refuses the bad value %s naming %s", (line, key) => {
    const f = file("toml", line + "\n");
    expect(() => resolveServeSettings({}, f)).toThrow(new RegExp(`"${key}"`));
  });

  it("refuses bad flag values, naming the flag", () => {
    expect(() => resolveServeSettings({ port: "x" })).toThrow(/--port/);
    expect(() => resolveServeSettings({ pasvRange: "1-2" })).toThrow(/pasv-range/);
  });

  it("accepts 0-0 as 'any passive port'", () => {
    expect(resolveServeSettings({ pasvRange: "0-0" }).pasvRange).toEqual([0, 0]);
  });

  it("refuses a file that is not valid TOML or JSON, and a missing file", () => {
    expect(() => resolveServeSettings({}, file("toml", "port = = 1\n"))).toThrow(/not valid TOML/);
    expect(() => resolveServeSettings({}, file("json", "{ port: 1 }"))).toThrow(/not valid JSON/);
    expect(() => resolveServeSettings({}, path.join(dir, "missing.toml"))).toThrow(/cannot read/);
  });
});
