#!/usr/bin/env python3
"""A small in-house service with a line protocol over TCP: what the plugin's
tests run against.

Each request is one line, each answer one line: `OK [text]` or `ERR message`.

    ADMIN TOKEN              makes this connection an admin's
    CREATE NAME PASSWORD     admin: adds a user             ERR exists
    DELETE NAME              admin: removes a user          ERR no such user
    LOGIN NAME PASSWORD      anyone: checks a password      ERR denied
    PING                     anyone: OK

Usage: keyserver.py [--port N] [--admin-token TOKEN]
It prints `listening on PORT` once it accepts connections (port 0: any free one).
"""

import argparse
import socketserver
import threading

users = {}
lock = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    admin_token = ""

    def answer(self, line):
        self.wfile.write(line.encode() + b"\n")

    def handle(self):
        admin = False
        for raw in self.rfile:
            words = raw.decode(errors="replace").split()
            if not words:
                continue
            verb, args = words[0].upper(), words[1:]
            if verb == "PING":
                self.answer("OK")
            elif verb == "ADMIN" and len(args) == 1:
                admin = args[0] == self.admin_token
                self.answer("OK" if admin else "ERR bad admin token")
            elif verb == "LOGIN" and len(args) == 2:
                with lock:
                    ok = users.get(args[0]) == args[1]
                self.answer("OK" if ok else "ERR denied")
            elif verb in ("CREATE", "DELETE") and not admin:
                self.answer("ERR admin only")
            elif verb == "CREATE" and len(args) == 2:
                with lock:
                    exists = args[0] in users
                    if not exists:
                        users[args[0]] = args[1]
                self.answer("ERR exists" if exists else "OK")
            elif verb == "DELETE" and len(args) == 1:
                with lock:
                    gone = users.pop(args[0], None)
                self.answer("OK" if gone else "ERR no such user")
            else:
                self.answer("ERR unknown command")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--admin-token", default="admin-token")
    args = parser.parse_args()
    Handler.admin_token = args.admin_token
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
