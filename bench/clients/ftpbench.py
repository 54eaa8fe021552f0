#!/usr/bin/env python3
"""Benchmark clients for the myftp bench, written against Python's stdlib only.

These are the independent clients of `npm run bench`: each subcommand drives
one scenario against any FTP server on loopback and prints one JSON object on
its last stdout line. Every loop is bounded by a count or a deadline, and
every socket has a timeout, so a stuck server cannot hang the bench.

The password comes from the MYFTP_BENCH_PASSWORD environment variable so it
does not show in the process list.

  download  S1: RETR one big file, bytes and seconds from RETR to 226
  upload    S2: STOR one big file with sendfile(), seconds from STOR to 226
  files     S3: N concurrent ftplib clients, each M small files on one control connection
  logins    S4: W workers log in and out until a deadline; logins/s and latency percentiles
  idle      S5: open N logged-in sessions, say READY, hold them until stdin has a line
  list      S6: LIST latency percentiles while L sessions upload and download
  hashload  S7: LIST latency percentiles on the idle server, then while N sessions keep HASHing a big file
"""
import argparse
import ftplib
import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import socket
import sys
import threading
import time

TIMEOUT = 30.0
now = time.monotonic  # CLOCK_MONOTONIC: one clock for all processes


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))  # nearest rank
    return s[k]


def login(a):
    f = ftplib.FTP(timeout=TIMEOUT)
    f.connect(a.host, a.port)
    f.login(a.user, a.password)
    f.voidcmd("TYPE I")
    return f


def recv_all(conn, bufsize=1 << 20):
    buf = bytearray(bufsize)
    mv = memoryview(buf)
    n = 0
    while True:
        k = conn.recv_into(mv)
        if not k:
            return n
        n += k


# ---------------------------------------------------------------- S1 / S2

def cmd_download(a):
    f = login(a)
    t0 = now()
    conn = f.transfercmd("RETR " + a.path)
    n = recv_all(conn)
    conn.close()
    f.voidresp()
    t1 = now()
    f.quit()
    ok = a.size is None or n == a.size
    emit({"bytes": n, "seconds": t1 - t0, "ok": ok})


def cmd_upload(a):
    f = login(a)
    size = os.path.getsize(a.src) if a.size is None else a.size
    t0 = now()
    conn = f.transfercmd("STOR " + a.path)
    with open(a.src, "rb") as fh:
        n = conn.sendfile(fh, 0, size)
    conn.close()
    f.voidresp()
    t1 = now()
    f.quit()
    emit({"bytes": n, "seconds": t1 - t0, "ok": n == size})


def _collect(procs, q, wait):
    """The workers' reports, one each, until one does not come within wait() seconds (a callable: the time left)."""
    results = []
    for _ in procs:
        left = wait()
        if left <= 0:
            break
        try:
            results.append(q.get(timeout=left))
        except Exception:
            break
    return results


def _reap(procs, wait=lambda: 5):
    """Waits for every worker to end, terminating the ones that do not within wait() seconds."""
    for p in procs:
        p.join(timeout=wait())
        if p.is_alive():
            p.terminate()
            p.join(1)


def _quit(f):
    try:
        f.quit()
    except Exception:
        pass


# ---------------------------------------------------------------- S3

def _files_worker(a, idx, barrier, q):
    res = {"files": 0, "bytes": 0, "start": None, "end": None, "error": None}
    try:
        f = login(a)
        barrier.wait(timeout=60)
        res["start"] = now()
        for i in range(a.files):
            name = "%s/f%03d" % (a.dir, i % a.pool)
            got = [0]

            def cb(chunk, got=got):
                got[0] += len(chunk)

            f.retrbinary("RETR " + name, cb, blocksize=65536)
            if got[0] != a.file_size:
                raise RuntimeError("short file %s: %d bytes" % (name, got[0]))
            res["files"] += 1
            res["bytes"] += got[0]
        res["end"] = now()
        f.quit()
    except Exception as e:  # reported, not fatal to the others
        res["error"] = "client %d: %r" % (idx, e)
        if res["end"] is None:
            res["end"] = now()
        try:
            barrier.abort()
        except Exception:
            pass
    q.put(res)


def cmd_files(a):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(a.clients + 1)
    q = ctx.Queue()
    procs = [ctx.Process(target=_files_worker, args=(a, i, barrier, q)) for i in range(a.clients)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=90)
        emit({"phase": "start"})  # all logged in: the runner starts counting server CPU here
    except Exception:
        pass
    deadline = now() + a.timeout
    results = _collect(procs, q, lambda: deadline - now())
    _reap(procs, lambda: max(0.1, deadline - now()))
    errors = [r["error"] for r in results if r["error"]]
    if len(results) < a.clients:
        errors.append("%d clients did not report" % (a.clients - len(results)))
    starts = [r["start"] for r in results if r["start"] is not None]
    ends = [r["end"] for r in results if r["end"] is not None]
    files = sum(r["files"] for r in results)
    secs = (max(ends) - min(starts)) if starts and ends else None
    emit({"files": files, "bytes": sum(r["bytes"] for r in results), "seconds": secs,
          "expected": a.clients * a.files, "errors": errors[:5], "error_count": len(errors),
          "ok": not errors and files == a.clients * a.files})


# ---------------------------------------------------------------- raw control-connection helpers (S4, S5)

class Ctrl:
    """A bare control connection: enough of RFC 959 to log in, idle and quit."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb")

    def reply(self):
        line = self.rf.readline(8192)
        if not line:
            raise EOFError("connection closed")
        code = line[:3]
        if line[3:4] == b"-":
            for _ in range(1000):
                nxt = self.rf.readline(8192)
                if not nxt:
                    raise EOFError("connection closed in multi-line reply")
                if nxt[:3] == code and nxt[3:4] == b" ":
                    break
        return int(code)

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def login(self, user, password):
        c = self.reply()
        if c != 220:
            raise RuntimeError("greeting %d" % c)
        c = self.cmd("USER " + user)
        if c == 331:
            c = self.cmd("PASS " + password)
        if c != 230:
            raise RuntimeError("login %d" % c)

    def quit_and_drain(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply()
            # Let the server close first so TIME_WAIT lands on its side, not on our ephemeral ports.
            self.sock.settimeout(5)
            for _ in range(100):
                if not self.sock.recv(4096):
                    break
        finally:
            self.close()

    def close(self):
        try:
            self.rf.close()
        finally:
            self.sock.close()


# ---------------------------------------------------------------- S4

def _logins_worker(a, idx, barrier, q):
    lat = []
    errors = 0
    first_error = None
    try:
        barrier.wait(timeout=60)
    except Exception as e:
        q.put({"lat": [], "errors": 1, "first_error": repr(e)})
        return
    t_end = now() + a.seconds
    for _ in range(10_000_000):
        t0 = now()
        if t0 >= t_end:
            break
        try:
            c = Ctrl(a.host, a.port)
            try:
                c.login(a.user, a.password)
                lat.append(now() - t0)
                c.quit_and_drain()
            except Exception:
                c.close()
                raise
        except Exception as e:
            errors += 1
            if first_error is None:
                first_error = "worker %d: %r" % (idx, e)
            time.sleep(0.01)
    q.put({"lat": lat, "errors": errors, "first_error": first_error})


def cmd_logins(a):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(a.workers + 1)
    q = ctx.Queue()
    procs = [ctx.Process(target=_logins_worker, args=(a, i, barrier, q)) for i in range(a.workers)]
    for p in procs:
        p.start()
    barrier.wait(timeout=60)
    t0 = now()
    results = _collect(procs, q, lambda: a.seconds + 2 * TIMEOUT)
    t1 = now()
    _reap(procs)
    lat = [x for r in results for x in r["lat"]]
    errors = sum(r["errors"] for r in results) + (a.workers - len(results))
    first = next((r["first_error"] for r in results if r["first_error"]), None)
    emit({"logins": len(lat), "seconds": t1 - t0, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
          "max": max(lat) if lat else None, "errors": errors, "first_error": first, "ok": errors == 0 and len(lat) > 0})


# ---------------------------------------------------------------- S5

def cmd_idle(a):
    sessions = [None] * a.sessions
    errors = []
    lock = threading.Lock()
    next_i = [0]

    def opener():
        for _ in range(a.sessions):
            with lock:
                i = next_i[0]
                if i >= a.sessions or len(errors) > 10:
                    return
                next_i[0] += 1
            try:
                c = Ctrl(a.host, a.port)
                try:
                    c.login(a.user, a.password)
                except Exception:
                    c.close()
                    raise
                c.sock.settimeout(None)
                sessions[i] = c
            except Exception as e:
                with lock:
                    errors.append("session %d: %r" % (i, e))

    # The runner measures its baseline now, with this process already alive: PSS splits shared pages
    # among all processes mapping them, and a Python client shares libpython with a Python server.
    emit({"phase": "base"})
    sys.stdin.readline()
    t0 = now()
    threads = [threading.Thread(target=opener, daemon=True) for _ in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    opened = sum(1 for s in sessions if s is not None)
    emit({"ready": True, "sessions": opened, "seconds": now() - t0, "errors": errors[:5],
          "ok": opened == a.sessions})
    # Hold the sessions idle until the runner has measured (one line or EOF on stdin).
    sys.stdin.readline()
    alive = 0
    for s in sessions:
        if s is None:
            continue
        try:
            s.sock.setblocking(False)
            try:
                d = s.sock.recv(1)
                alive += 0 if d == b"" else 1
            except BlockingIOError:
                alive += 1  # nothing to read: still open
            s.sock.setblocking(True)
            s.sock.settimeout(2)
            s.sock.sendall(b"QUIT\r\n")
        except Exception:
            pass
        finally:
            s.close()
    emit({"done": True, "alive_at_end": alive})


# ---------------------------------------------------------------- S6

def _load_worker(a, idx, up, stop, started, q):
    moved = 0
    files = 0
    err = None
    try:
        f = login(a)
        with started.get_lock():
            started.value += 1
        for _ in range(100000):
            if stop.is_set():
                break
            if up:
                conn = f.transfercmd("STOR %s/s6-%d.bin" % (a.upload_dir, idx))
                with open(a.src, "rb") as fh:
                    moved += conn.sendfile(fh, 0, a.load_size)
                conn.close()
            else:
                conn = f.transfercmd("RETR " + a.load_path)
                moved += recv_all(conn, 256 * 1024)
                conn.close()
            f.voidresp()
            files += 1
        f.quit()
    except Exception as e:
        err = "%s %d: %r" % ("upload" if up else "download", idx, e)
    q.put({"bytes": moved, "files": files, "error": err})


def cmd_list(a):
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    started = ctx.Value("i", 0)
    q = ctx.Queue()
    procs = []
    for i in range(a.load):
        up = i % 2 == 0
        procs.append(ctx.Process(target=_load_worker, args=(a, i, up, stop, started, q)))
    for p in procs:
        p.start()
    probe = login(a)
    probe.voidcmd("TYPE A")
    ramp_deadline = now() + 30
    while started.value < a.load and now() < ramp_deadline:
        time.sleep(0.02)
    time.sleep(a.ramp)
    lat = []
    errors = []
    t_start = now()
    t_end = t_start + a.seconds
    for _ in range(1_000_000):
        if now() >= t_end:
            break
        lines = []
        t0 = now()
        try:
            probe.retrlines("LIST " + a.dir, lines.append)
        except Exception as e:
            errors.append(repr(e))
            break
        lat.append(now() - t0)
        if len(lines) < a.expect_entries:
            errors.append("LIST returned %d lines" % len(lines))
            break
        time.sleep(a.gap)
    t_stop = now()
    stop.set()
    results = _collect(procs, q, lambda: 60)
    _reap(procs)
    _quit(probe)
    errors += [r["error"] for r in results if r["error"]]
    load_bytes = sum(r["bytes"] for r in results)
    emit({"lists": len(lat), "seconds": t_stop - t_start, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
          "max": max(lat) if lat else None, "load_bytes": load_bytes, "errors": errors[:5],
          "ok": not errors and len(lat) > 0})


# ---------------------------------------------------------------- S7

HASH_REPLY = re.compile(r"^213 (\S+) (\d+)-(\d+) ([0-9A-Fa-f]+) (.+)$")


def _probe_lists(probe, a, seconds):
    """LIST a.dir back to back on one session until the deadline; latencies (PASV + LIST + 226)."""
    lat = []
    errors = []
    t_end = now() + seconds
    for _ in range(1_000_000):
        if now() >= t_end:
            break
        lines = []
        t0 = now()
        try:
            probe.retrlines("LIST " + a.dir, lines.append)
        except Exception as e:
            errors.append("LIST: %r" % (e,))
            break
        lat.append(now() - t0)
        if len(lines) < a.expect_entries:
            errors.append("LIST returned %d lines" % len(lines))
            break
        time.sleep(a.gap)
    return lat, errors


def _hash_worker(a, idx, size, expected, started, go, stop, hard_end, q):
    """One control connection: HASH the file, check the reply, again until told to stop."""
    res = {"hashes": 0, "first_start": None, "first_end": None, "last_end": None, "secs": [], "error": None}
    f = None
    try:
        f = ftplib.FTP(timeout=a.hash_timeout)
        f.connect(a.host, a.port)
        f.login(a.user, a.password)
        f.voidcmd("TYPE I")
        with started.get_lock():
            started.value += 1
        if not go.wait(timeout=a.baseline + 120):
            raise RuntimeError("never told to start")
        for i in range(100000):
            if i > 0 and (stop.is_set() or now() >= hard_end.value):
                break
            t0 = now()
            resp = f.sendcmd("HASH " + a.path)
            t1 = now()
            m = HASH_REPLY.match(resp)
            if not m:
                raise RuntimeError("unexpected HASH reply %r" % resp[:200])
            alg, lo, hi, digest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).lower()
            if alg != "SHA-256" or lo != 0 or hi != size - 1:
                raise RuntimeError("HASH reply for the wrong thing: %r" % resp[:200])
            if digest != expected:
                raise RuntimeError("HASH digest %s differs from hashlib's %s" % (digest, expected))
            if i == 0:
                res["first_start"], res["first_end"] = t0, t1
            res["last_end"] = t1
            res["secs"].append(t1 - t0)
            res["hashes"] += 1
        f.quit()
    except Exception as e:
        res["error"] = "hash %d: %r" % (idx, e)
        if f is not None:
            try:
                f.close()
            except Exception:
                pass
    q.put(res)


def cmd_hashload(a):
    size = os.path.getsize(a.src)
    h = hashlib.sha256()
    with open(a.src, "rb") as fh:
        for _ in range(size // (1 << 20) + 2):
            b = fh.read(1 << 20)
            if not b:
                break
            h.update(b)
    expected = h.hexdigest()

    probe = login(a)
    feat = probe.sendcmd("FEAT")
    if not re.search(r"^\s*HASH\b.*SHA-256", feat, re.M):
        probe.quit()
        emit({"ok": False, "errors": ["server has no HASH with SHA-256 in FEAT"]})
        return
    probe.voidcmd("TYPE A")

    ctx = mp.get_context("fork")
    started = ctx.Value("i", 0)
    go = ctx.Event()
    stop = ctx.Event()
    hard_end = ctx.Value("d", now() + a.baseline + a.seconds + 300)
    q = ctx.Queue()
    procs = [ctx.Process(target=_hash_worker, args=(a, i, size, expected, started, go, stop, hard_end, q))
             for i in range(a.hashes)]
    for p in procs:
        p.start()
    ramp_deadline = now() + 60
    while started.value < a.hashes and now() < ramp_deadline:
        time.sleep(0.02)
    errors = []
    if started.value < a.hashes:
        errors.append("only %d of %d HASH sessions logged in" % (started.value, a.hashes))
    time.sleep(a.ramp)

    # Baseline: the same probe, the HASH sessions logged in and idle.
    t_b = now()
    idle_lat, e = _probe_lists(probe, a, a.baseline)
    idle_secs = now() - t_b
    errors += ["idle " + x for x in e]

    # Load: every HASH session sends HASH, and again as soon as its reply comes, until the probe is done.
    go.set()
    t_go = now()
    hard_end.value = t_go + a.seconds + 60
    time.sleep(a.ramp)
    t_start = now()
    lat, e = _probe_lists(probe, a, a.seconds)
    t_stop = now()
    stop.set()
    errors += e

    results = _collect(procs, q, lambda: max(1.0, hard_end.value - now()) + a.hash_timeout)
    _reap(procs)
    _quit(probe)
    errors += [r["error"] for r in results if r["error"]]
    if len(results) < a.hashes:
        errors.append("%d HASH sessions did not report" % (a.hashes - len(results)))
    firsts = [r for r in results if r["first_end"] is not None]
    wall = (max(r["first_end"] for r in firsts) - t_go) if len(firsts) == a.hashes else None
    hashes = sum(r["hashes"] for r in results)
    secs = [x for r in results for x in r["secs"]]
    last_ends = [r["last_end"] for r in results if r["last_end"] is not None]
    # Every session re-sends HASH until it sees the stop, so each had one in flight through the whole
    # probe window when its last reply came after the probe's end.
    covered = len(last_ends) == a.hashes and min(last_ends) >= t_stop
    emit({"lists": len(lat), "seconds": t_stop - t_start, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
          "max": max(lat) if lat else None,
          "idle_lists": len(idle_lat), "idle_seconds": idle_secs, "idle_p50": percentile(idle_lat, 50),
          "idle_p99": percentile(idle_lat, 99), "idle_max": max(idle_lat) if idle_lat else None,
          "hash_wall": wall, "hashes": hashes, "hash_bytes": hashes * size,
          "hash_p50": percentile(secs, 50), "hash_max": max(secs) if secs else None,
          "load_seconds": (max(last_ends) - t_go) if last_ends else None, "load_covered_probe": covered,
          "digest": expected, "errors": errors[:5],
          "ok": not errors and len(lat) > 0 and len(idle_lat) > 0 and wall is not None and covered})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("download")
    p.add_argument("--path", required=True)
    p.add_argument("--size", type=int)
    p = sub.add_parser("upload")
    p.add_argument("--src", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--size", type=int)
    p = sub.add_parser("files")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--files", type=int, default=50)
    p.add_argument("--pool", type=int, default=50, help="distinct files on the server")
    p.add_argument("--dir", default="small")
    p.add_argument("--file-size", type=int, default=16384)
    p.add_argument("--timeout", type=float, default=300)
    p = sub.add_parser("logins")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10)
    p = sub.add_parser("idle")
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--threads", type=int, default=8)
    p = sub.add_parser("list")
    p.add_argument("--load", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--ramp", type=float, default=0.5)
    p.add_argument("--gap", type=float, default=0.005)
    p.add_argument("--dir", default="small")
    p.add_argument("--expect-entries", type=int, default=50)
    p.add_argument("--src", required=True, help="local file the uploaders send from")
    p.add_argument("--load-path", required=True, help="remote file the downloaders fetch")
    p.add_argument("--load-size", type=int, required=True)
    p.add_argument("--upload-dir", default="upload")
    p = sub.add_parser("hashload")
    p.add_argument("--hashes", type=int, default=20, help="concurrent HASH sessions")
    p.add_argument("--seconds", type=float, default=10, help="probe window under HASH load")
    p.add_argument("--baseline", type=float, default=5, help="probe window on the idle server, just before")
    p.add_argument("--ramp", type=float, default=0.3)
    p.add_argument("--gap", type=float, default=0.005)
    p.add_argument("--dir", default="small")
    p.add_argument("--expect-entries", type=int, default=50)
    p.add_argument("--src", required=True, help="local copy of the file, for hashlib's digest")
    p.add_argument("--path", required=True, help="remote path of the file to HASH")
    p.add_argument("--hash-timeout", type=float, default=120, help="socket timeout of a HASH session")

    a = ap.parse_args()
    a.password = os.environ.get("MYFTP_BENCH_PASSWORD", "")
    {"download": cmd_download, "upload": cmd_upload, "files": cmd_files, "logins": cmd_logins,
     "idle": cmd_idle, "list": cmd_list, "hashload": cmd_hashload}[a.cmd](a)


if __name__ == "__main__":
    main()
