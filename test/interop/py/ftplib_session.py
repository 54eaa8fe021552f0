"""Drives myftpd with Python's standard ftplib through every command of issue 2.

Usage: python3 ftplib_session.py '<json config>'
Config: port, user, password, mode (pasv | epsv | port | eprt), local (dir of files to upload), remote (dir name).
Prints one JSON object: failures (list of strings; empty when all is well), sent (verbs sent), dataVerbs (the
data connection verbs used after login), downloads (name -> SHA-256 of what came back).
"""

import ftplib
import hashlib
import io
import json
import os
import socket
import sys
import time

cfg = json.loads(sys.argv[1])
failures = []
sent = []


def check(cond, what):
    if not cond:
        failures.append(what)


def expect_error(fn, prefix, what):
    try:
        fn()
        failures.append(f"{what}: succeeded, expected {prefix}")
    except ftplib.all_errors as e:
        check(str(e).startswith(prefix), f"{what}: got {e!r}, expected {prefix}")


def expect_code(resp, prefix, what):
    check(resp.startswith(prefix), f"{what}: got {resp!r}, expected {prefix}")


class Client(ftplib.FTP):
    """ftplib with a choice of EPSV (it only uses EPSV on IPv6) and EPRT (likewise)."""

    data_mode = "pasv"

    def putcmd(self, line):
        sent.append(line.split(" ")[0].upper())
        super().putcmd(line)

    def makepasv(self):
        if self.data_mode == "epsv":
            return ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())
        return super().makepasv()

    def makeport(self):
        if self.data_mode == "eprt":
            sock = socket.create_server(("127.0.0.1", 0), family=socket.AF_INET, backlog=1)
            self.sendeprt("127.0.0.1", sock.getsockname()[1])
            sock.settimeout(30)
            return sock
        return super().makeport()


def sha_of_retr(ftp, cmd, rest=None):
    h = hashlib.sha256()
    ftp.retrbinary(cmd, h.update, blocksize=1 << 20, rest=rest)
    return h.hexdigest()


def read_all(conn):
    chunks = []
    while True:
        b = conn.recv(1 << 16)
        if not b:
            break
        chunks.append(b)
    conn.close()
    return b"".join(chunks)


mode = cfg["mode"]
ftp = Client()
ftp.data_mode = mode
ftp.connect("127.0.0.1", cfg["port"], timeout=30)
check(ftp.welcome.startswith("220"), f"greeting {ftp.welcome!r}")

# Before login: the open commands work, the rest get 530.
expect_error(lambda: ftp.sendcmd("PWD"), "530", "PWD before login")
expect_error(lambda: ftp.sendcmd("PASV"), "530", "PASV before login")
expect_code(ftp.sendcmd("SYST"), "215", "SYST")
feat = ftp.sendcmd("FEAT")
expect_code(feat, "211", "FEAT")
feats = [line.strip() for line in feat.splitlines()[1:-1]]
for f in ("EPSV", "EPRT", "SIZE", "MDTM", "REST STREAM", "UTF8", "MFMT"):
    check(f in feats, f"FEAT lacks {f}: {feats}")
check(any(f.startswith("MLST ") for f in feats), f"FEAT lacks MLST: {feats}")
expect_code(ftp.sendcmd("OPTS UTF8 ON"), "200", "OPTS UTF8 ON")
expect_code(ftp.sendcmd("NOOP"), "200", "NOOP")
expect_code(ftp.sendcmd("HELP"), "214", "HELP")

# Login
expect_error(lambda: ftp.login(cfg["user"], "wrong password"), "530", "wrong password")
expect_code(ftp.login(cfg["user"], cfg["password"]), "230", "login")
ftp.set_pasv(mode in ("pasv", "epsv"))
after_login = len(sent)
stat = ftp.sendcmd("STAT")
expect_code(stat, "211", "STAT")
check("Logged in as " + cfg["user"] in stat, f"STAT text {stat!r}")

# Directories, with the X-aliases
check(ftp.pwd() == "/", "PWD at start")
expect_code(ftp.sendcmd("XPWD"), '257 "/"', "XPWD")
remote = cfg["remote"]
check(ftp.mkd(remote) == "/" + remote, "MKD answer")
ftp.cwd(remote)
check(ftp.pwd() == "/" + remote, "PWD after CWD")
expect_code(ftp.sendcmd("XMKD xdir"), "257", "XMKD")
expect_code(ftp.sendcmd("XCWD xdir"), "250", "XCWD")
check(ftp.pwd() == f"/{remote}/xdir", "PWD after XCWD")
expect_code(ftp.sendcmd("XCUP"), "250", "XCUP")
expect_code(ftp.sendcmd("XRMD xdir"), "250", "XRMD")
ftp.mkd("sub")
ftp.cwd("sub")
expect_code(ftp.sendcmd("CDUP"), "250", "CDUP")
check(ftp.pwd() == "/" + remote, "PWD after CDUP")
expect_code(ftp.rmd("sub"), "250", "RMD")
expect_error(lambda: ftp.cwd("no-such-dir"), "550", "CWD missing")
expect_error(lambda: ftp.rmd("no-such-dir"), "550", "RMD missing")

# Uploads and downloads of every file, compared by SHA-256
downloads = {}
local = cfg["local"]
names = sorted(os.listdir(local))
ftp.voidcmd("TYPE I")
for name in names:
    with open(os.path.join(local, name), "rb") as f:
        expect_code(ftp.storbinary(f"STOR {name}", f, blocksize=1 << 20), "226", f"STOR {name}")
    check(ftp.size(name) == os.path.getsize(os.path.join(local, name)), f"SIZE {name}")
    downloads[name] = sha_of_retr(ftp, f"RETR {name}")

# Listings
listed = ftp.nlst()
check(sorted(listed) == names, f"NLST {listed} != {names}")
lines = []
expect_code(ftp.retrlines("LIST", lines.append), "226", "LIST")
for name in names:
    check(any(line.endswith(" " + name) for line in lines), f"LIST lacks {name}: {lines}")
facts = dict(ftp.mlsd())
for name in names:
    f = facts.get(name)
    check(f is not None and f.get("type") == "file" and f.get("size") == str(os.path.getsize(os.path.join(local, name))), f"MLSD {name}: {f}")
mlst = ftp.sendcmd("MLST one.bin")
expect_code(mlst, "250", "MLST")
check("type=file;size=1;" in mlst, f"MLST facts {mlst!r}")

# Times
expect_code(ftp.sendcmd("MFMT 20200102030405 one.bin"), "213 Modify=20200102030405", "MFMT")
expect_code(ftp.sendcmd("MDTM one.bin"), "213 20200102030405", "MDTM")

# TYPE A converts line ends both ways
ftp.voidcmd("TYPE A")
expect_code(ftp.storlines("STOR text.txt", io.BytesIO(b"l1\nl2\n")), "226", "STOR in TYPE A")
got = []
ftp.retrlines("RETR text.txt", got.append)
check(got == ["l1", "l2"], f"RETR in TYPE A lines {got}")
conn = ftp.transfercmd("RETR text.txt")
wire = read_all(conn)
expect_code(ftp.voidresp(), "226", "raw RETR in TYPE A")
check(wire == b"l1\r\nl2\r\n", f"TYPE A wire bytes {wire!r}")
expect_error(lambda: ftp.size("one.bin"), "550", "SIZE in TYPE A")
ftp.voidcmd("TYPE I")
expect_code(ftp.sendcmd("MODE S"), "200", "MODE S")
expect_code(ftp.sendcmd("STRU F"), "200", "STRU F")
expect_code(ftp.sendcmd("ALLO 1000"), "200", "ALLO")

# REST: on the next RETR, even with commands between; past the end → 554
with open(os.path.join(local, "mib.bin"), "rb") as f:
    mib = f.read()
buf = bytearray()
ftp.retrbinary("RETR mib.bin", buf.extend, rest=1000)
check(bytes(buf) == mib[1000:], "RETR with REST 1000")
expect_code(ftp.sendcmd("REST 500"), "350", "REST")
ftp.sendcmd("NOOP")
ftp.pwd()
ftp.voidcmd("TYPE I")
conn = ftp.transfercmd("RETR mib.bin")
tail = read_all(conn)
ftp.voidresp()
check(tail == mib[500:], "REST applies to the next RETR whatever comes between")
expect_error(lambda: ftp.retrbinary("RETR one.bin", lambda b: None, rest=5), "554", "REST past the end")
ftp.voidcmd("NOOP")

# REST+STOR keeps the prefix; APPE appends
ftp.storbinary("STOR resumed.bin", io.BytesIO(mib[:300000]))
expect_code(ftp.storbinary("STOR resumed.bin", io.BytesIO(mib[300000:]), rest=300000), "226", "REST+STOR")
check(sha_of_retr(ftp, "RETR resumed.bin") == hashlib.sha256(mib).hexdigest(), "REST+STOR result")
ftp.storbinary("APPE appended.bin", io.BytesIO(b"abc"))
expect_code(ftp.storbinary("APPE appended.bin", io.BytesIO(b"def")), "226", "APPE")
out = bytearray()
ftp.retrbinary("RETR appended.bin", out.extend)
check(bytes(out) == b"abcdef", f"APPE result {bytes(out)!r}")

# ABOR during a download (ftplib sends it as urgent data) and during an upload: 426 then 226
conn = ftp.transfercmd("RETR /abort-src.bin")
conn.recv(1024)
sent.append("ABOR")
expect_code(ftp.abort(), "426", "ABOR during RETR")
expect_code(ftp.getresp(), "226", "226 after ABOR during RETR")
conn.close()
conn = ftp.transfercmd("STOR aborted-upload.bin")
conn.sendall(b"u" * 100000)
time.sleep(0.3)
sent.append("ABOR")
expect_code(ftp.abort(), "426", "ABOR during STOR")
expect_code(ftp.getresp(), "226", "226 after ABOR during STOR")
conn.close()
expect_code(ftp.sendcmd("NOOP"), "200", "NOOP after ABOR")
sent.append("ABOR")
expect_code(ftp.abort(), "225", "ABOR with no transfer")

# Rename and delete
expect_code(ftp.rename("text.txt", "renamed.txt"), "250", "RNFR/RNTO")
expect_error(lambda: ftp.sendcmd("RNTO nowhere"), "503", "RNTO without RNFR")
expect_code(ftp.delete("renamed.txt"), "250", "DELE")
expect_error(lambda: ftp.delete("renamed.txt"), "550", "DELE missing")
expect_error(lambda: ftp.sendcmd("FOOBAR"), "502", "unknown verb")

# The jail, seen from ftplib
expect_error(lambda: ftp.retrbinary("RETR ../../../../etc/passwd", lambda b: None), "550", "RETR ../../etc/passwd")
expect_error(lambda: ftp.retrbinary("RETR /etc/passwd", lambda b: None), "550", "RETR /etc/passwd")
expect_error(lambda: ftp.cwd("/etc"), "550", "CWD /etc (a planted link)")
expect_error(lambda: ftp.nlst("/etc"), "550", "NLST /etc")
expect_error(lambda: ftp.storbinary("STOR /etc/myftp-ftplib-never", io.BytesIO(b"x")), "550", "STOR into /etc")
ftp.cwd("..")
ftp.cwd("..")
check(ftp.pwd() == "/", "CWD .. stops at /")

expect_code(ftp.quit(), "221", "QUIT")
data_verbs = sorted({v for v in sent[after_login:] if v in ("PASV", "EPSV", "PORT", "EPRT")})
print(json.dumps({"failures": failures, "sent": sorted(set(sent)), "dataVerbs": data_verbs, "downloads": downloads}))
