// The bench's world: a work directory, the shared file tree every server serves, and the one user.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { homedir } from "node:os";
import path from "node:path";

export const USER = "myftpbench";
const USER_COMMENT = "myftp bench user";
export const CACHE = process.env.MYFTP_BENCH_CACHE ?? path.join(homedir(), ".cache", "myftp-bench");
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
/** S7's file: HASHed by 20 sessions at once. */
export const HASH_FILE = "big200.bin";

function freeBytes(dir) {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
}

/**
 * Where the tree lives: tmpfs when it has room (so S2 measures the servers, not disk writeback),
 * else /tmp. Fixed paths, because the system user's home must point at the tree.
 */
export function chooseWorkDir(bigSize, extra = 0) {
  const need = 3 * bigSize + extra + 512 * MiB;
  if (existsSync("/dev/shm") && freeBytes("/dev/shm") > need) return "/dev/shm/myftp-bench";
  return "/tmp/myftp-bench";
}

/** One bench at a time: the tree and the system user's home are shared. */
export function takeLock(work) {
  mkdirSync(work, { recursive: true });
  const lock = path.join(work, "lock");
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, "utf8"));
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = pid !== process.pid;
    } catch {
      /* stale */
    }
    if (alive) throw new Error(`another bench (pid ${pid}) is using ${work}`);
  }
  writeFileSync(lock, String(process.pid));
}

function writePatternFile(file, size) {
  // Random bytes, 1 MiB repeated with the block number stamped in: cheap to make, not all zeros.
  const block = randomBytes(MiB);
  const fd = openSync(file, "w");
  try {
    for (let off = 0, i = 0; off < size; off += MiB, i++) {
      block.writeUInt32BE(i, 0);
      writeSync(fd, block, 0, Math.min(MiB, size - off));
    }
  } finally {
    closeSync(fd);
  }
}

/** Random bytes throughout (for S7: what a hash reads should not repeat). */
function writeRandomFile(file, size) {
  const fd = openSync(file, "w");
  try {
    for (let off = 0; off < size; off += MiB) writeSync(fd, randomBytes(Math.min(MiB, size - off)));
  } finally {
    closeSync(fd);
  }
}

/**
 * The tree every server serves as the user's home:
 *   big.bin (S1, and the S2 source), mid.bin (S6 downloads), small/f000.. (S3, S6 and S7 LIST), upload/,
 *   and big200.bin (S7 HASH; only when `hashSize` is set: when S7 runs).
 */
export function buildTree(work, { bigSize, midSize, smallCount, smallSize, hashSize }) {
  const tree = path.join(work, "tree");
  mkdirSync(path.join(tree, "small"), { recursive: true });
  mkdirSync(path.join(tree, "upload"), { recursive: true });
  const big = path.join(tree, "big.bin");
  if (!existsSync(big) || statSync(big).size !== bigSize) writePatternFile(big, bigSize);
  const mid = path.join(tree, "mid.bin");
  if (!existsSync(mid) || statSync(mid).size !== midSize) writePatternFile(mid, midSize);
  const hashed = path.join(tree, HASH_FILE);
  if (hashSize && (!existsSync(hashed) || statSync(hashed).size !== hashSize)) writeRandomFile(hashed, hashSize);
  for (let i = 0; i < smallCount; i++) {
    const f = path.join(tree, "small", `f${String(i).padStart(3, "0")}`);
    if (!existsSync(f) || statSync(f).size !== smallSize) writeFileSync(f, randomBytes(smallSize));
  }
  clearUploads(tree);
  return tree;
}

export function clearUploads(tree) {
  const dir = path.join(tree, "upload");
  for (const name of readdirSync(dir)) rmSync(path.join(dir, name), { force: true, recursive: true });
}

/**
 * Touch fresh memory once. On this VM the first write into never-touched guest RAM runs ~4x slower
 * than later ones; without this the first upload of a run measures the hypervisor, not the server.
 */
export function warmMemory(work, size) {
  const f = path.join(work, "warm.tmp");
  writePatternFile(f, size);
  rmSync(f, { force: true });
}

export function chownTree(tree, uid, gid) {
  const walk = (p) => {
    chownSync(p, uid, gid);
    if (statSync(p).isDirectory()) for (const n of readdirSync(p)) walk(path.join(p, n));
  };
  walk(tree);
}

function passwdEntry(name) {
  const r = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
  if (r.status !== 0) return null;
  const [, , uid, gid, gecos, home, shell] = r.stdout.trim().split(":");
  return { uid: Number(uid), gid: Number(gid), gecos, home, shell };
}

function benchPassword() {
  const file = path.join(CACHE, "password");
  mkdirSync(CACHE, { recursive: true, mode: 0o700 });
  if (!existsSync(file)) writeFileSync(file, randomBytes(18).toString("base64url") + "\n", { mode: 0o600 });
  return readFileSync(file, "utf8").trim();
}

/**
 * The one login every server shares. Peers that authenticate against the system (vsftpd through PAM,
 * pure-ftpd through /etc/shadow) need a real account: a dedicated system user, created once and only
 * ever modified if it carries our comment. Its shell is /bin/sh because vsftpd's PAM stack
 * (pam_shells) refuses users whose shell is not in /etc/shells; its password is random per machine.
 * Returns { user, password, uid, gid, system: bool, notes: [] }.
 */
export function ensureUser(tree, { wantSystemUser }) {
  const password = benchPassword();
  const notes = [];
  if (!wantSystemUser) return { user: USER, password, uid: null, gid: null, system: false, notes };
  if (process.getuid?.() !== 0) {
    notes.push("not root: cannot create the system user the system-auth peers need");
    return { user: USER, password, uid: null, gid: null, system: false, notes };
  }
  let ent = passwdEntry(USER);
  if (ent && ent.gecos !== USER_COMMENT) {
    notes.push(`a user named ${USER} exists and is not ours (comment "${ent.gecos}"): left alone`);
    return { user: USER, password, uid: null, gid: null, system: false, notes };
  }
  if (!ent) {
    execFileSync("useradd", [
      "--system", "--no-create-home", "--home-dir", tree, "--shell", "/bin/sh",
      "--user-group", "--comment", USER_COMMENT, USER,
    ]);
    notes.push(`created system user ${USER} (home ${tree}, shell /bin/sh, random password in ${CACHE}/password); remove with: userdel ${USER}`);
    ent = passwdEntry(USER);
  } else {
    if (ent.home !== tree) execFileSync("usermod", ["--home", tree, USER]);
    notes.push(`using system user ${USER} (created by an earlier bench run; remove with: userdel ${USER})`);
  }
  // yescrypt, as Debian hashes its users' passwords: what the system-auth peers pay per login.
  const r = spawnSync("chpasswd", ["-c", "YESCRYPT"], { input: `${USER}:${password}\n` });
  if (r.status !== 0) execFileSync("chpasswd", [], { input: `${USER}:${password}\n` });
  return { user: USER, password, uid: ent.uid, gid: ent.gid, system: true, notes };
}
