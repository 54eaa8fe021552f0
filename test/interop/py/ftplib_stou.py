"""Drives myftpd's STOU with Python's standard ftplib: storbinary("STOU name", f) and storbinary("STOU", f).

Usage: python3 ftplib_stou.py '<json config>'
Config: port, user, password, remote (an existing dir), files (list of [command, local file to send]).
Prints one JSON object: stored (per command: the 150, the final reply, the name parsed from the 150, and the SHA-256
of the file fetched back by that name), failures (list of strings; empty when all is well).
"""

import ftplib
import hashlib
import io
import json
import re
import sys

cfg = json.loads(sys.argv[1])
failures = []


class Client(ftplib.FTP):
    """ftplib, keeping the preliminary reply of each transfer command (storbinary returns only the final one)."""

    prelims = []

    def sendcmd(self, cmd):
        resp = super().sendcmd(cmd)
        if cmd.upper().startswith("STOU"):
            self.prelims.append(resp)
        return resp


ftp = Client()
ftp.connect("127.0.0.1", cfg["port"], timeout=30)
ftp.login(cfg["user"], cfg["password"])
ftp.cwd(cfg["remote"])

stored = []
for command, local in cfg["files"]:
    with open(local, "rb") as f:
        final = ftp.storbinary(command, f, blocksize=1 << 16)
    prelim = Client.prelims[-1]
    # RFC 1123 §4.1.2.9: "150 FILE: name".
    m = re.match(r"^150 FILE: (.+)$", prelim)
    name = m.group(1) if m else None
    fetched = None
    if name is None:
        failures.append(f"{command}: no name in {prelim!r}")
    else:
        h = hashlib.sha256()
        ftp.retrbinary(f"RETR {name}", h.update)
        fetched = h.hexdigest()
    stored.append({"command": command, "prelim": prelim, "final": final, "name": name, "fetched": fetched})

try:
    ftp.storbinary("STOU", io.BytesIO(b"x"), rest=5)
    failures.append("REST 5 + STOU succeeded")
except ftplib.error_perm as e:
    if not str(e).startswith("503"):
        failures.append(f"REST 5 + STOU: {e!r}")

ftp.quit()
print(json.dumps({"stored": stored, "failures": failures}))
