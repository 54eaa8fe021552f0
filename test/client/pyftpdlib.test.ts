// myftp against pyftpdlib: a server nobody here wrote, without HASH, RANG, AVBL or SITE QUOTA, so every
// fallback of the client is exercised. Plus what only this server lets us set up: a per-address
// connection limit (421), a crash and restart mid-transfer.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { defaultPeerUser, startPyftpd, type PeerServer } from "../helpers/peers.js";
import { sha256File } from "../helpers/util.js";
import { clientWorkDir, makeFile, runMyftp, sizeOf, spawnMyftp, collect, waitFor } from "./cli-helpers.js";
import { defineClientMatrix, type ServerUnderTest } from "./matrix.js";

const MiB = 1024 * 1024;

function adapt(p: PeerServer): ServerUnderTest {
  const u = p.users[0]!;
  return {
    url: (path = "") => p.url(u, path),
    urlNoPassword: (path = "") => `ftp://${encodeURIComponent(u.name)}@${p.host}:${p.port}/${path}`,
    user: u.name,
    password: u.password,
    host: p.host,
    port: p.port,
    home: p.home,
    stop: () => p.stop(),
  };
}

defineClientMatrix("pyftpdlib", async () => adapt(await startPyftpd()), { hash: false });

describe("myftp against pyftpdlib: limits, crashes and terminals", () => {
  const servers: PeerServer[] = [];
  const work = clientWorkDir(async () => {
    for (const s of servers) await s.stop();
  });

  it("backs off when the server refuses connections beyond its limit (421) and still gets the file", async () => {
    const srv = await startPyftpd({ maxConsPerIp: 2 });
    servers.push(srv);
    await makeFile(join(srv.home, "limited.bin"), 6 * MiB);
    const dst = join(work.path, "limited.bin");
    // Slow enough that all four connections are wanted at once.
    const r = await runMyftp(["get", "-n", "4", "--limit-rate", "8M", srv.url(undefined, "limited.bin"), dst]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/refused connection \d \(421\); backing off/);
    expect(await sha256File(dst)).toBe(await sha256File(join(srv.home, "limited.bin")));
  });

  it("reconnects and resumes when the server goes away mid-transfer", async () => {
    const first = await startPyftpd();
    await makeFile(join(first.home, "crash.bin"), 8 * MiB);
    const dst = join(work.path, "crash.bin");
    const child = spawnMyftp(["get", "--limit-rate", "4M", "--retries", "5", first.url(undefined, "crash.bin"), dst]);
    const done = collect(child);
    expect(await waitFor(async () => (await sizeOf(dst)) >= MiB, 20_000)).toBe(true);
    await first.crash();
    // The same server comes back on the same port, serving the same files.
    const second = await startPyftpd({ port: first.port, home: first.home });
    servers.push(second, first);
    const r = await done;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/connection lost during get crash\.bin .*; retry 1\/5/);
    expect(r.stdout).toMatch(/resumed at|size verified/);
    expect(await sha256File(dst)).toBe(await sha256File(join(first.home, "crash.bin")));
  });

  it("reconnects every range of a segmented download when the server goes away mid-transfer", async () => {
    const first = await startPyftpd();
    await makeFile(join(first.home, "crash-seg.bin"), 8 * MiB);
    const dst = join(work.path, "crash-seg.bin");
    const state = `${dst}.myftp-segments`;
    const child = spawnMyftp(["get", "-n", "3", "--limit-rate", "4M", "--retries", "5", first.url(undefined, "crash-seg.bin"), dst]);
    const done = collect(child);
    expect(await waitFor(async () => (await readFile(state, "utf8").catch(() => "")).includes('"pos"'), 20_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    await first.crash();
    const second = await startPyftpd({ port: first.port, home: first.home });
    servers.push(second, first);
    const r = await done;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/connection \d lost at byte \d+ .*; retry 1\/5/);
    expect(await sha256File(dst)).toBe(await sha256File(join(first.home, "crash-seg.bin")));
    expect(await sizeOf(state)).toBe(-1);
  });

  it("reconnects and resumes an upload when the server goes away mid-transfer", async () => {
    const first = await startPyftpd();
    const src = join(work.path, "crash-up.bin");
    await makeFile(src, 8 * MiB);
    const target = join(first.home, "crash-up.bin");
    const child = spawnMyftp(["put", "--limit-rate", "4M", "--retries", "5", src, first.url(undefined, "crash-up.bin")]);
    const done = collect(child);
    expect(await waitFor(async () => (await sizeOf(target)) >= MiB, 20_000)).toBe(true);
    await first.crash();
    const second = await startPyftpd({ port: first.port, home: first.home });
    servers.push(second, first);
    const r = await done;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/connection lost during put .*crash-up\.bin .*; retry 1\/5/);
    expect(await sha256File(target)).toBe(await sha256File(src));
  });

  it("gives up after --retries attempts when the server stays away", async () => {
    const srv = await startPyftpd();
    await makeFile(join(srv.home, "gone.bin"), 8 * MiB);
    const dst = join(work.path, "gone.bin");
    const child = spawnMyftp(["get", "--limit-rate", "4M", "--retries", "1", srv.url(undefined, "gone.bin"), dst]);
    const done = collect(child);
    expect(await waitFor(async () => (await sizeOf(dst)) >= MiB, 20_000)).toBe(true);
    await srv.stop();
    const r = await done;
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/retry 1\/1/);
    expect(r.stderr).toMatch(/^myftp: get gone\.bin: cannot connect to 127\.0\.0\.1:\d+: connection refused\n$/);
    expect(await sizeOf(dst)).toBeGreaterThanOrEqual(MiB);
  });

  it("draws a progress bar on a terminal and one line per file otherwise", async () => {
    const srv = await startPyftpd();
    servers.push(srv);
    await makeFile(join(srv.home, "bar.bin"), 3 * MiB);
    const dst = join(work.path, "bar.bin");
    const { BIN } = await import("./cli-helpers.js");
    // `script` gives the client a pseudo-terminal; its output is what a person would see.
    const cmd = `${process.execPath} ${BIN} get --limit-rate 3M ${srv.url(undefined, "bar.bin")} ${dst}`;
    const out = await promisify(execFile)("script", ["-qec", cmd, "/dev/null"], { env: { ...process.env, COLUMNS: "100", HOME: work.path }, timeout: 30_000 });
    const text = out.stdout;
    const frames = text.split("\r").filter((f) => f.includes("bar.bin") && f.includes("%"));
    expect(frames.length).toBeGreaterThanOrEqual(3);
    expect(frames.some((f) => /bar\.bin +\[#+-+\] +\d+%/.test(f))).toBe(true);
    expect(frames.some((f) => /\[#+\] +100% +3\.00 MiB\/3\.00 MiB/.test(f))).toBe(true);
    expect(text).toMatch(/ETA \d+s/);
    expect(text).toContain("get bar.bin: 3.00 MiB in");
    expect(await sha256File(dst)).toBe(await sha256File(join(srv.home, "bar.bin")));
    // Not a terminal: no bar, no carriage returns, one line for the file.
    const plain = await runMyftp(["get", "--no-resume", srv.url(undefined, "bar.bin"), dst]);
    expect(plain.stdout).not.toContain("\r");
    expect(plain.stdout).not.toContain("[#");
    expect(plain.stdout.split("\n").filter((l) => l.startsWith("get bar.bin:"))).toHaveLength(1);
    const quiet = await runMyftp(["get", "--quiet", "--no-resume", srv.url(undefined, "bar.bin"), dst]);
    expect(quiet.code).toBe(0);
    expect(quiet.stdout).toBe("");
  });

  it("answers usage mistakes with one line and exit code 2", async () => {
    const missing = await runMyftp(["get"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("myftp: missing required argument 'url'\n");
    const badCount = await runMyftp(["get", "-n", "zero", "ftp://127.0.0.1:1/x"]);
    expect(badCount.code).toBe(2);
    expect(badCount.stderr).toBe('myftp: -n must be a whole number of at least 1, not "zero"\n');
    const badRate = await runMyftp(["get", "--limit-rate", "fast", "ftp://127.0.0.1:1/x"]);
    expect(badRate.code).toBe(2);
    expect(badRate.stderr).toBe('myftp: bad rate "fast" (use e.g. 500k or 2M)\n');
    const dirUrl = await runMyftp(["get", "ftp://127.0.0.1:1/some/dir/"]);
    expect(dirUrl.code).toBe(2);
    expect(dirUrl.stderr).toBe("myftp: get: the URL names a directory, not a file: ftp://127.0.0.1:1/some/dir/\n");
    const help = await runMyftp(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Exit codes: 0 success");
  });

  it("uses the user from MYFTP_USER when the URL has none", async () => {
    const srv = await startPyftpd();
    servers.push(srv);
    const r = await runMyftp(["ls", `ftp://${srv.host}:${srv.port}/`], { env: { HOME: work.path, MYFTP_USER: defaultPeerUser.name, MYFTP_PASSWORD: defaultPeerUser.password } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });
});
