// Start FTP servers that nobody on this project wrote, for client tests.
// Each server listens on 127.0.0.1 port 0 with its own temporary home directory.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export interface PeerUser {
  readonly name: string;
  readonly password: string;
}

export interface PeerOptions {
  /** Users to create; each gets the whole temp home with full permissions. */
  readonly users?: readonly PeerUser[];
  /** Offer explicit TLS (AUTH TLS) with a self-signed certificate written to certFile. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Limit simultaneous connections from one address (the server answers 421 above it). */
  readonly maxConsPerIp?: number;
  /** Use this directory as the home instead of a fresh temp dir (it is not removed on stop). */
  readonly home?: string;
}

export interface PeerServer {
  readonly host: string;
  readonly port: number;
  readonly home: string;
  readonly users: readonly PeerUser[];
  url(user?: PeerUser, path?: string, scheme?: string): string;
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
if cfg.get("tls"):
    from pyftpdlib.handlers import TLS_FTPHandler
    handler = TLS_FTPHandler
    handler.certfile = cfg["tls"]["certFile"]
    handler.keyfile = cfg["tls"]["keyFile"]
handler.authorizer = auth
handler.passive_ports = None
handler.banner = "peer ready"
if cfg.get("maxConsPerIp"):
    pass
server = FTPServer(("127.0.0.1", 0), handler)
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
  const cfg = { users, home, tls: opts.tls, maxConsPerIp: opts.maxConsPerIp };
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
