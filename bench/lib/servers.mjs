// Launchers for myftpd and its peers. Each starts one server on 127.0.0.1 with the shared user and
// tree, reports its root pid and control port, and stops exactly the processes it started.
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { CpuMeter, processTree } from "./procfs.mjs";
import { CACHE } from "./setup.mjs";

const SYSTEM_PYTHON = "/usr/bin/python3";
const HERE = path.dirname(new URL(import.meta.url).pathname);
const BENCH = path.resolve(HERE, "..");
const ROOT = path.resolve(BENCH, "..");

// Separate passive ranges below the kernel's ephemeral range (32768+) so no server's data ports
// collide with another's or with client sockets.
const PASV = {
  myftpd: [20000, 20999],
  vsftpd: [21000, 21999],
  pyftpdlib: [22000, 22999],
  "pure-ftpd": [23000, 23999],
};

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sleepUnref = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** Resolves once a 220 greeting arrives on host:port (or rejects at the deadline). */
async function waitGreeting(port, deadlineMs) {
  const end = Date.now() + deadlineMs;
  for (let i = 0; i < 1000 && Date.now() < end; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      let buf = "";
      const done = (v) => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(2000, () => done(false));
      s.on("data", (d) => {
        buf += d;
        if (/^220[ -]/.test(buf)) done(true);
      });
      s.on("error", () => done(false));
      s.on("close", () => done(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`no 220 greeting on port ${port} within ${deadlineMs} ms`);
}

function tail(file, n = 15) {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

/**
 * Spawns a server, logs its output to a file, and waits until it is ready: either a line carrying
 * ftp://HOST:PORT (port parsed from it) or, when `port` is known in advance, a 220 greeting.
 */
class Proc {
  constructor(name, logDir) {
    this.name = name;
    this.log = path.join(logDir, `${name}.log`);
    this.child = null;
    this.pid = null;
    this.port = null;
    this.seen = new Set(); // every pid ever observed in the tree, for a clean stop
    this.cpu = new CpuMeter(name);
  }

  async start(cmd, args, { port = null, env, cwd, readyMs = 20000 } = {}) {
    this.port = null;
    this.inspectUrl = null;
    const out = createWriteStream(this.log, { flags: "a" });
    out.write(`\n# ${new Date().toISOString()} ${cmd} ${args.join(" ")}\n`);
    // stdin is /dev/null: pure-ftpd takes a socket on fd 0 (Node's default pipe) for inetd mode.
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.pid = child.pid;
    this.cpu.attach(child.pid);
    this.exited = new Promise((resolve) => child.once("exit", (code, sig) => resolve({ code, sig })));
    let announced;
    const urlSeen = new Promise((resolve) => (announced = resolve));
    let lineBuf = "";
    const onData = (d) => {
      out.write(d);
      lineBuf = (lineBuf + d).slice(-4096);
      const insp = /Debugger listening on (ws:\/\/\S+)/.exec(lineBuf);
      if (insp) this.inspectUrl = insp[1];
      if (this.port) return;
      const m = /ftp:\/\/[^\s:/]+:(\d+)/.exec(lineBuf);
      if (m) announced(Number(m[1]));
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const failed = this.exited.then(({ code, sig }) => {
      throw new Error(`${this.name} exited during start (code ${code}, signal ${sig}):\n${tail(this.log)}`);
    });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name} did not become ready within ${readyMs} ms:\n${tail(this.log)}`)),
        readyMs,
      );
    });
    try {
      if (port) {
        this.port = port;
        await Promise.race([waitGreeting(port, readyMs), failed, timeout]);
      } else {
        this.port = await Promise.race([urlSeen, failed, timeout]);
        await Promise.race([waitGreeting(this.port, 5000), failed]);
      }
    } catch (e) {
      await this.stop();
      throw e;
    } finally {
      clearTimeout(timer);
      failed.catch(() => {});
      timeout.catch(() => {});
    }
    return this;
  }

  /** Remember the tree's pids so a stop can end session processes we caused, and nothing else. */
  track() {
    if (!this.pid) return [];
    const pids = processTree(this.pid);
    for (const p of pids) this.seen.add(p);
    return pids;
  }

  async stop() {
    if (!this.child) return;
    this.track();
    const child = this.child;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const r = await Promise.race([this.exited, sleepUnref(8000).then(() => null)]);
      if (r === null) {
        child.kill("SIGKILL");
        await Promise.race([this.exited, sleepUnref(2000)]);
      }
    }
    // Session processes of forking servers that outlived their listener: give them a moment to exit.
    for (let i = 0; i < 50 && this.cpu.members().length > 0; i++) await sleepUnref(20);
    for (const p of this.seen) {
      if (p === this.pid) continue;
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        if (!/\((vsftpd|pure-ftpd)\)/.test(stat)) continue; // pid reused by something else
        process.kill(p, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    this.seen.clear();
  }

  /** After the last stop: drop the CPU meter's cgroup. */
  dispose() {
    this.cpu.release();
  }
}

function versionOf(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8", input: "", timeout: 5000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0];
}

function dpkgVersion(pkg) {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Version}", pkg], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

// ------------------------------------------------------------------------------------------------

export class Myftpd {
  name = "myftpd";
  constructor(ctx) {
    this.ctx = ctx;
    this.entry = path.join(ROOT, "dist", "cli", "myftpd.js");
    this.data = path.join(ctx.work, "myftpd-data");
    this.proc = new Proc("myftpd", ctx.logDir);
    this.flagsMissing = [];
  }

  probe() {
    if (!existsSync(this.entry)) {
      return { available: false, reason: "dist/cli/myftpd.js not built yet", hint: "npm run build" };
    }
    const help = spawnSync(process.execPath, [this.entry, "serve", "--help"], { encoding: "utf8", timeout: 15000 });
    const text = `${help.stdout}${help.stderr}`;
    if (help.status !== 0 || !/--pasv-range/.test(text)) {
      return { available: false, reason: `myftpd serve --help failed or lacks --pasv-range: ${text.trim().split("\n")[0] ?? ""}` };
    }
    this.help = text;
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8"));
    const rev = spawnSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout?.trim();
    return { available: true, version: `${pkg.version} (${rev || "?"}, node ${process.version})` };
  }

  async prepare() {
    const { user, password, tree } = this.ctx;
    rmSync(this.data, { recursive: true, force: true });
    mkdirSync(this.data, { recursive: true });
    const r = spawnSync(
      process.execPath,
      [this.entry, "user", "add", user, "--data", this.data, "--home", tree, "--quota", "unlimited", "--password-stdin"],
      { input: `${password}\n`, encoding: "utf8", timeout: 60000 },
    );
    if (r.status !== 0) throw new Error(`myftpd user add failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
  }

  async start() {
    const [lo, hi] = PASV.myftpd;
    const args = [this.entry, "serve", "--data", this.data, "--host", "127.0.0.1", "--port", "0", "--pasv-range", `${lo}-${hi}`];
    // Raised limits for S4/S5, and logging at warn like the peers (no per-transfer log lines);
    // each passed only where this build knows it.
    for (const [flag, value] of [
      ["--log-level", "warn"],
      ["--max-sessions", "1000"],
      ["--max-connections-per-ip", "1000"],
      ["--max-sessions-per-user", "1000"],
    ]) {
      if (this.help.includes(flag)) args.push(flag, value);
      else if (!this.flagsMissing.includes(flag)) this.flagsMissing.push(flag);
    }
    // Extra serve flags for experiments, e.g. MYFTP_BENCH_ARGS="--transfer-processes 0".
    args.push(...(process.env.MYFTP_BENCH_ARGS ?? "").split(/\s+/).filter(Boolean));
    // The node options the myftpd bin starts node with (its second line, run by the shell): the bench starts node
    // itself, the one it runs on, so it passes them too and measures the server as the bin runs it.
    const nodeArgs = binNodeOptions(this.entry);
    // Extra node options for experiments, e.g. MYFTP_BENCH_NODE_ARGS="--max-semi-space-size=64".
    nodeArgs.push(...(process.env.MYFTP_BENCH_NODE_ARGS ?? "").split(/\s+/).filter(Boolean));
    // S5 restarts myftpd with the inspector on a random loopback port, to collect garbage before it measures.
    if (this.ctx.inspect) nodeArgs.push("--inspect=127.0.0.1:0");
    if (this.ctx.profileDir) {
      const label = this.ctx.profileLabel ?? "run";
      nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${this.ctx.profileDir}`, `--cpu-prof-name=myftpd-${label}-${Date.now()}.cpuprofile`);
    }
    await this.proc.start(process.execPath, [...nodeArgs, ...args], { cwd: ROOT });
  }

  /** Full garbage collection through the inspector; false when it could not be done. */
  collectGarbage() {
    const url = this.proc.inspectUrl;
    if (!url) return false;
    const flags = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-websocket", "--no-warnings"] : [];
    const r = spawnSync(process.execPath, [...flags, path.join(HERE, "node-gc.mjs"), url], { encoding: "utf8", timeout: 20000 });
    return r.status === 0;
  }
}

export class Vsftpd {
  name = "vsftpd";
  constructor(ctx) {
    this.ctx = ctx;
    this.bin = ["/usr/sbin/vsftpd", "/usr/local/sbin/vsftpd"].find((p) => existsSync(p));
    this.proc = new Proc("vsftpd", ctx.logDir);
  }

  probe() {
    if (!this.bin) return { available: false, reason: "not installed", hint: "apt-get install vsftpd" };
    if (!this.ctx.systemUser) return { available: false, reason: "needs the system user (run the bench as root)" };
    return { available: true, version: dpkgVersion("vsftpd") ?? versionOf(this.bin, ["-v"]) };
  }

  async prepare() {}

  async start() {
    const { work, tree } = this.ctx;
    const empty = path.join(work, "vsftpd-empty");
    mkdirSync(empty, { recursive: true, mode: 0o755 });
    const port = await freePort();
    const [lo, hi] = PASV.vsftpd;
    const conf = path.join(work, "vsftpd.conf");
    writeFileSync(
      conf,
      [
        "listen=YES",
        "listen_ipv6=NO",
        "listen_address=127.0.0.1",
        `listen_port=${port}`,
        "background=NO",
        "anonymous_enable=NO",
        "local_enable=YES",
        "write_enable=YES",
        `local_root=${tree}`,
        "chroot_local_user=YES",
        "allow_writeable_chroot=YES",
        `secure_chroot_dir=${empty}`,
        "pam_service_name=vsftpd",
        "pasv_enable=YES",
        `pasv_min_port=${lo}`,
        `pasv_max_port=${hi}`,
        "pasv_address=127.0.0.1",
        "xferlog_enable=NO",
        "dirmessage_enable=NO",
        // Namespaces and seccomp are unavailable in some sandboxes; they cost little either way.
        "isolate=NO",
        "isolate_network=NO",
        "seccomp_sandbox=NO",
        "max_clients=2000",
        "max_per_ip=2000",
        "",
      ].join("\n"),
    );
    await this.proc.start(this.bin, [conf], { port });
  }
}

export class Pyftpdlib {
  name = "pyftpdlib";
  constructor(ctx) {
    this.ctx = ctx;
    this.proc = new Proc("pyftpdlib", ctx.logDir);
  }

  probe() {
    const r = spawnSync(SYSTEM_PYTHON, ["-c", "import pyftpdlib; print(pyftpdlib.__ver__)"], { encoding: "utf8" });
    if (r.status !== 0) return { available: false, reason: `not importable by ${SYSTEM_PYTHON}`, hint: "apt-get install python3-pyftpdlib" };
    return { available: true, version: `${r.stdout.trim()} (python ${versionOf(SYSTEM_PYTHON, ["-V"]).replace("Python ", "")})` };
  }

  async prepare() {}

  async start() {
    const [lo, hi] = PASV.pyftpdlib;
    const { tree, user, password } = this.ctx;
    await this.proc.start(SYSTEM_PYTHON, [
      path.join(BENCH, "peers", "pyftpdlib_server.py"),
      "--home", tree, "--user", user, "--password", password, "--port", "0", "--pasv", `${lo}-${hi}`,
    ]);
  }
}

export const PURE_FTPD_CACHE = path.join(CACHE, "pure-ftpd");

export class PureFtpd {
  name = "pure-ftpd";
  constructor(ctx) {
    this.ctx = ctx;
    this.bin = ["/usr/sbin/pure-ftpd", path.join(PURE_FTPD_CACHE, "usr", "sbin", "pure-ftpd")].find((p) => existsSync(p));
    this.proc = new Proc("pure-ftpd", ctx.logDir);
  }

  probe() {
    const hint =
      `it conflicts with vsftpd as a package, so unpack it without installing: ` +
      `mkdir -p ${CACHE} && cd ${CACHE} && apt-get download pure-ftpd && dpkg -x pure-ftpd_*.deb pure-ftpd`;
    if (!this.bin) return { available: false, reason: "not installed", hint };
    if (!this.ctx.systemUser) return { available: false, reason: "needs the system user (run the bench as root)" };
    const v = /v(\d[\w.]*)/.exec(versionOf(this.bin, ["--help"]));
    return { available: true, version: dpkgVersion("pure-ftpd") ?? (v ? v[1] : "?") };
  }

  async prepare() {}

  async start() {
    const port = await freePort();
    const [lo, hi] = PASV["pure-ftpd"];
    // -l unix: the system's /etc/shadow (yescrypt); -A chroot; -E no anonymous; -H no DNS.
    await this.proc.start(
      this.bin,
      ["-S", `127.0.0.1,${port}`, "-l", "unix", "-A", "-E", "-H", "-c", "1000", "-C", "1000", "-p", `${lo}:${hi}`, "-P", "127.0.0.1"],
      { port },
    );
  }
}

export const SERVER_CLASSES = [Myftpd, Vsftpd, Pyftpdlib, PureFtpd];

/** The options in the myftpd bin's `exec node OPTIONS "$0" "$@"` line (none if it has no such line). */
export function binNodeOptions(entry) {
  const m = /^\/\/\S*\s+true;\s*exec node((?:\s+--[\w-]+(?:=\S+)?)*)\s+"\$0"/m.exec(readFileSync(entry, "utf8").split("\n").slice(0, 3).join("\n"));
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}
