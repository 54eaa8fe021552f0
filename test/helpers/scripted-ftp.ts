// A small scripted FTP server (Python standard library only) for what real servers do that myftpd does not:
// list a missing directory as empty, refuse MLSD on a path, lack SIZE, greet with 421, drop the control connection
// at a chosen command, reset the data connection and then answer 552. Listens on 127.0.0.1 port 0.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface ScriptedOptions {
  /** Files in the one flat directory "/", by name: size in bytes (content: byte i is i % 251). */
  readonly files?: Readonly<Record<string, number>>;
  /** Directories (empty) inside "/". */
  readonly dirs?: readonly string[];
  /** FEAT lines (default: SIZE, MDTM, REST STREAM). */
  readonly feat?: readonly string[];
  /** MLSD of a missing directory: "550" (refused), or "500" (as if the server had no MLSD). Default "550". */
  readonly mlsd?: "550" | "500";
  /** LIST of a missing directory: "empty" (150, then 226 with no data) or "550". Default "empty". */
  readonly listMissing?: "empty" | "550";
  /** MLST answers for files and directories (else it is 502). */
  readonly mlst?: boolean;
  /** SIZE answers 502. */
  readonly noSize?: boolean;
  /** LIST of a file lists nothing (the file's size shows in no listing). */
  readonly listNoFiles?: boolean;
  /** Close the control connection on this (1-based) SIZE of each connection, until this many connections did. */
  readonly dropAtSize?: { readonly nth: number; readonly times: number };
  /** Greet this many connections with 421 and close them. */
  readonly greet421?: number;
  /** STOR: read the data, then reset the data connection and answer 552 (a quota refusal). */
  readonly storQuotaReset?: boolean;
  /** The first RETR (of all connections) sends only this many bytes, closes the data connection and answers 426. */
  readonly cutFirstRetr?: number;
}

export interface ScriptedServer {
  readonly port: number;
  url(path?: string): string;
  /** The commands received so far, one per line, from the server's stderr. */
  commands(): string[];
  stop(): Promise<void>;
}

const SCRIPT = String.raw`
import json, socket, struct, sys, threading
cfg = json.loads(sys.argv[1])
files = cfg.get("files", {})
dirs = set(cfg.get("dirs", []))
feat = cfg.get("feat", ["SIZE", "MDTM", "REST STREAM"])
lock = threading.Lock()
state = {"conns": 0, "drops": 0}
def content(n): return bytes(i % 251 for i in range(n))
def norm(p):
    p = p.strip().strip("/")
    if p.startswith("-a"): p = p[2:].strip().strip("/")
    return p
def log(s):
    sys.stderr.write(s + "\n"); sys.stderr.flush()
def handle(c):
    with lock:
        state["conns"] += 1; n = state["conns"]
    f = c.makefile("rwb", buffering=0)
    def send(s): f.write((s + "\r\n").encode())
    if n <= cfg.get("greet421", 0):
        send("421 Too many users, try later"); c.close(); return
    send("220 scripted ready")
    pasv = None; rest = 0; sizes = 0
    def data():
        d, _ = pasv.accept(); return d
    while True:
        line = f.readline()
        if not line: return
        cmd = line.decode("utf-8", "replace").rstrip("\r\n"); verb = cmd.split(" ")[0].upper(); arg = cmd[len(verb):].strip()
        log(cmd if verb != "PASS" else "PASS ****")
        if verb == "USER": send("331 password please")
        elif verb == "PASS": send("230 logged in")
        elif verb == "FEAT": send("211-Features:\r\n" + "".join(" %s\r\n" % x for x in feat) + "211 End")
        elif verb == "PWD": send('257 "/" is the current directory')
        elif verb == "CWD":
            p = norm(arg)
            if p in ("", ".") or p in dirs: send("250 ok")
            else: send("550 No such directory")
        elif verb in ("TYPE", "STRU", "OPTS", "MODE", "PBSZ", "PROT"): send("200 ok")
        elif verb == "SIZE":
            sizes += 1
            d = cfg.get("dropAtSize")
            if d and sizes == d["nth"]:
                with lock:
                    drop = state["drops"] < d["times"]
                    if drop: state["drops"] += 1
                if drop: c.close(); return
            if cfg.get("noSize"): send("502 SIZE not implemented")
            elif norm(arg) in files: send("213 %d" % files[norm(arg)])
            else: send("550 No such file")
        elif verb == "MDTM":
            if norm(arg) in files: send("213 20200101000000")
            else: send("550 No such file")
        elif verb == "REST": rest = int(arg); send("350 restarting at %d" % rest)
        elif verb == "EPSV":
            pasv = socket.socket(); pasv.bind(("127.0.0.1", 0)); pasv.listen(1)
            send("229 Entering Extended Passive Mode (|||%d|)" % pasv.getsockname()[1])
        elif verb == "PASV":
            pasv = socket.socket(); pasv.bind(("127.0.0.1", 0)); pasv.listen(1); p = pasv.getsockname()[1]
            send("227 Entering Passive Mode (127,0,0,1,%d,%d)" % (p // 256, p % 256))
        elif verb == "MLST" and cfg.get("mlst"):
            p = norm(arg)
            if p in files: send("250-Listing /%s\r\n type=file;size=%d;modify=20200101000000; /%s\r\n250 End" % (p, files[p], p))
            elif p in dirs: send("250-Listing /%s\r\n type=dir;modify=20200101000000; /%s\r\n250 End" % (p, p))
            else: send("550 No such file")
        elif verb in ("MLSD", "LIST", "NLST"):
            p = norm(arg)
            exists = p in ("", ".") or p in dirs
            if verb == "MLSD" and not exists:
                send("550 Can't check for file existence" if cfg.get("mlsd", "550") == "550" else "500 Unknown command"); continue
            if verb == "LIST" and not exists and p not in files and cfg.get("listMissing", "empty") == "550":
                send("550 No such file or directory"); continue
            d = data(); send("150 Here comes the listing")
            if exists and p in ("", "."):
                if verb == "MLSD":
                    out = "".join("type=file;size=%d;modify=20200101000000; %s\r\n" % (s, nm) for nm, s in files.items())
                    out += "".join("type=dir;modify=20200101000000; %s\r\n" % nm for nm in dirs)
                else:
                    out = "".join("-rw-r--r-- 1 u g %d Jan 01 2020 %s\r\n" % (s, nm) for nm, s in files.items())
                    out += "".join("drwxr-xr-x 2 u g 4096 Jan 01 2020 %s\r\n" % nm for nm in dirs)
            elif p in files and verb == "LIST" and not cfg.get("listNoFiles"):
                out = "-rw-r--r-- 1 u g %d Jan 01 2020 %s\r\n" % (files[p], p)
            else:
                out = ""
            d.sendall(out.encode()); d.close(); send("226 Transfer done")
        elif verb == "RETR":
            p = norm(arg)
            if p not in files: send("550 No such file"); continue
            d = data(); send("150 Opening data connection")
            with lock:
                state["retrs"] = state.get("retrs", 0) + 1; first = state["retrs"] == 1
            cut = cfg.get("cutFirstRetr")
            if first and cut is not None:
                d.sendall(content(files[p])[rest:rest + cut]); rest = 0; d.close()
                send("426 Connection closed; transfer aborted"); continue
            d.sendall(content(files[p])[rest:]); rest = 0; d.close(); send("226 Transfer complete")
        elif verb in ("STOR", "APPE"):
            d = data(); send("150 Ok to send data")
            got = 0
            while True:
                b = d.recv(65536)
                if not b: break
                got += len(b)
                if cfg.get("storQuotaReset") and got >= 65536: break
            if cfg.get("storQuotaReset"):
                d.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); d.close()
                send("552-Transfer aborted (quota)\r\n552 Quota exceeded: won't be saved"); continue
            d.close(); files[norm(arg)] = got; send("226 Transfer complete")
        elif verb == "QUIT": send("221 Goodbye"); c.close(); return
        else: send("502 Command not implemented")
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(20)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
`;

/** Start the scripted server and resolve once it listens. */
export async function startScripted(opts: ScriptedOptions = {}): Promise<ScriptedServer> {
  const child: ChildProcess = spawn("/usr/bin/python3", ["-c", SCRIPT, JSON.stringify(opts)], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let log = "";
  child.stderr?.on("data", (d: Buffer) => {
    if (log.length < 1 << 20) log += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`scripted server did not start: ${log}`)), 15_000);
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      const n = Number.parseInt(line, 10);
      if (Number.isInteger(n) && n > 0) resolve(n);
      else reject(new Error(`scripted server printed ${line}: ${log}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`scripted server exited with ${code}: ${log}`));
    });
  });
  return {
    port,
    url: (path = "") => `ftp://u:p@127.0.0.1:${port}/${path}`,
    commands: () => log.split("\n").filter((l) => l !== "" && !l.startsWith("Traceback") && !l.startsWith(" ")),
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        process.kill(child.pid, "SIGKILL");
        await exited;
      }
    },
  };
}
