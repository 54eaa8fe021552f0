// Start FTP servers that nobody on this project wrote, for client tests.
// Each server listens on 127.0.0.1 port 0 with its own temporary home directory.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { freePort } from "./util.js";

export interface PeerUser {
  readonly name: string;
  readonly password: string;
}

export interface PeerOptions {
  /** Users to create; each gets the whole temp home with full permissions. */
  readonly users?: readonly PeerUser[];
  /** Limit simultaneous connections from one address (the server answers 421 above it). */
  readonly maxConsPerIp?: number;
  /** Use this directory as the home instead of a fresh temp dir (it is not removed on stop). */
  readonly home?: string;
  /** Listen on this port instead of port 0 (to restart a server where clients expect it). */
  readonly port?: number;
  /** PEM file holding the certificate and its key: explicit TLS (AUTH TLS) is offered. */
  readonly tlsCertKeyFile?: string;
}

export interface PeerServer {
  readonly host: string;
  readonly port: number;
  readonly home: string;
  readonly users: readonly PeerUser[];
  url(user?: PeerUser, path?: string, scheme?: string): string;
  /** Stop the server at once, as a crash would (SIGKILL); the home stays. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

const PYTHON = "/usr/bin/python3";

const SCRIPT = String.raw`
import json, sys, logging
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
cfg = json.loads(sys.argv[1])
logging.basicConfig(level=logging.CRITICAL)
auth = DummyAuthorizer()
for u in cfg["users"]:
    auth.add_user(u["name"], u["password"], cfg["home"], perm="elradfmwMT")
handler = FTPHandler
if cfg.get("tlsCertKeyFile"):
    from pyftpdlib.handlers import TLS_FTPHandler
    handler = TLS_FTPHandler
    handler.certfile = cfg["tlsCertKeyFile"]
handler.authorizer = auth
handler.passive_ports = None
handler.banner = "peer ready"
server = FTPServer(("127.0.0.1", cfg.get("port") or 0), handler)
if cfg.get("maxConsPerIp"):
    server.max_cons_per_ip = cfg["maxConsPerIp"]
print(server.socket.getsockname()[1], flush=True)
server.serve_forever(timeout=0.5, blocking=True, handle_exit=True)
`;

export const defaultPeerUser: PeerUser = { name: "alice", password: "s3cret-alice" };

/** Start pyftpdlib on 127.0.0.1 port 0 and resolve once it listens. */
export async function startPyftpd(opts: PeerOptions = {}): Promise<PeerServer> {
  const ownHome = opts.home === undefined;
  const home = opts.home ?? (await mkdtemp(join(tmpdir(), "myftp-peer-")));
  const users = opts.users ?? [defaultPeerUser];
  const cfg = { users, home, maxConsPerIp: opts.maxConsPerIp, port: opts.port, tlsCertKeyFile: opts.tlsCertKeyFile };
  const child: ChildProcess = spawn(PYTHON, ["-c", SCRIPT, JSON.stringify(cfg)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`peer server did not start: ${stderr}`)), 15_000);
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", (line) => {
      clearTimeout(timer);
      const n = Number.parseInt(line, 10);
      if (Number.isInteger(n) && n > 0) resolve(n);
      else reject(new Error(`peer server printed ${line}: ${stderr}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`peer server exited with ${code}: ${stderr}`));
    });
  });
  const host = "127.0.0.1";
  return {
    host,
    port,
    home,
    users,
    url(user = users[0], path = "", scheme = "ftp") {
      const cred = user ? `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@` : "";
      return `${scheme}://${cred}${host}:${port}/${path}`;
    },
    async crash() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGKILL");
        await exited;
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
      if (ownHome) await rm(home, { recursive: true, force: true });
    },
  };
}

export interface VsftpdOptions {
  /** Certificate and key (PEM) for explicit TLS; TLS is then required for logins and data. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

export interface VsftpdServer {
  readonly host: string;
  readonly port: number;
  /** The anonymous user's root directory. */
  readonly home: string;
  url(path?: string): string;
  stop(): Promise<void>;
}

async function accepts(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const sock = connect({ port, host: "127.0.0.1" }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.on("error", () => resolve(false));
  });
}

/**
 * Start vsftpd on 127.0.0.1 with anonymous access (uploads allowed) to a temp directory, running as
 * the launching user. vsftpd cannot report a port it picked, so we pick a free one and retry on a clash.
 */
export async function startVsftpd(opts: VsftpdOptions = {}): Promise<VsftpdServer> {
  const dir = await mkdtemp(join(tmpdir(), "myftp-vsftpd-"));
  const home = join(dir, "anon");
  await mkdir(home);
  await mkdir(join(dir, "empty"));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const conf = [
      "listen=YES",
      "listen_address=127.0.0.1",
      `listen_port=${port}`,
      "background=NO",
      "anonymous_enable=YES",
      "local_enable=NO",
      `anon_root=${home}`,
      "no_anon_password=YES",
      "write_enable=YES",
      "anon_upload_enable=YES",
      "anon_mkdir_write_enable=YES",
      "anon_other_write_enable=YES",
      "anon_umask=022",
      "run_as_launching_user=YES",
      "seccomp_sandbox=NO",
      `secure_chroot_dir=${join(dir, "empty")}`,
      "pasv_enable=YES",
      "xferlog_enable=NO",
      ...(opts.tls
        ? [
            "ssl_enable=YES",
            "allow_anon_ssl=YES",
            "force_anon_data_ssl=YES",
            "force_anon_logins_ssl=YES",
            `rsa_cert_file=${opts.tls.certFile}`,
            `rsa_private_key_file=${opts.tls.keyFile}`,
            "require_ssl_reuse=NO",
          ]
        : []),
    ].join("\n");
    const confFile = join(dir, "vsftpd.conf");
    await writeFile(confFile, `${conf}\n`);
    const child = spawn("/usr/sbin/vsftpd", [confFile], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    let up = false;
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      if (await accepts(port)) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!up) {
      if (child.exitCode === null) child.kill("SIGKILL");
      if (attempt === 4) throw new Error(`vsftpd did not start: ${output}`);
      continue;
    }
    return {
      host: "127.0.0.1",
      port,
      home,
      url: (path = "") => `ftp://127.0.0.1:${port}/${path}`,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((r) => child.once("exit", () => r()));
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  throw new Error("vsftpd did not start");
}
