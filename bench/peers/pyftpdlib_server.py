#!/usr/bin/env python3
"""Peer launcher for the myftp benchmark: a stock pyftpdlib server.

Runs pyftpdlib's default single-process async FTPServer with one virtual user
(DummyAuthorizer, plain-text password compare), bound to 127.0.0.1. Prints one
line "ftp://127.0.0.1:PORT" once listening. Must run under the Debian python3
that has python3-pyftpdlib installed (/usr/bin/python3).
"""
import argparse
import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--pasv", required=True, help="MIN-MAX")
    ap.add_argument("--max-cons", type=int, default=2000)
    a = ap.parse_args()

    # Per-command INFO logging would be extra work the other servers do not do.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    auth = DummyAuthorizer()
    auth.add_user(a.user, a.password, a.home, perm="elradfmwMT")
    lo, hi = (int(x) for x in a.pasv.split("-"))

    class Handler(FTPHandler):
        pass

    Handler.authorizer = auth
    Handler.passive_ports = range(lo, hi + 1)
    Handler.masquerade_address = None

    server = FTPServer(("127.0.0.1", a.port), Handler, backlog=1024)
    server.max_cons = a.max_cons
    server.max_cons_per_ip = a.max_cons
    port = server.socket.getsockname()[1]
    print(f"pyftpdlib listening on ftp://127.0.0.1:{port}", flush=True)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
