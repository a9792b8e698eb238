#!/usr/bin/env python3
"""A small in-house service with a user API: what the plugin's tests run against.

Built on Python's standard-library http.server, like many in-house services; it
reads request bodies by Content-Length only, so a client that sends chunked
bodies gets 411, as such services give.

    POST   /users          {"username", "password", "group"}  admin  201 | 409
    DELETE /users/NAME                                          admin  204 | 404
    GET    /users                                               admin  200 [names]
    POST   /login          {"username", "password"}                    200 | 401

Admin calls carry `Authorization: Bearer TOKEN`. Usage:
    inventory.py [--port N] [--admin-token TOKEN]
It prints `listening on PORT` once it accepts connections (port 0: any free one).
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

users = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    admin_token = ""

    def log_message(self, *args):
        pass

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        """The request's JSON body, or None after answering 411/400."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self.reply(411, {"error": "send a Content-Length, not a chunked body"})
            return None
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            self.reply(400, {"error": "the body is not JSON"})
            return None

    def is_admin(self):
        if self.headers.get("Authorization") == f"Bearer {self.admin_token}":
            return True
        self.reply(401, {"error": "the admin token is required"})
        return False

    def do_GET(self):
        if self.path != "/users":
            return self.reply(404, {"error": "no such path"})
        if self.is_admin():
            with lock:
                self.reply(200, sorted(users))

    def do_POST(self):
        if self.path not in ("/users", "/login"):
            return self.reply(404, {"error": "no such path"})
        body = self.body()
        if body is None:
            return
        name, password = body.get("username"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return self.reply(400, {"error": "username and password are required"})
        if self.path == "/login":
            with lock:
                ok = users.get(name, {}).get("password") == password
            return self.reply(200 if ok else 401, {"ok": ok})
        if not self.is_admin():
            return
        with lock:
            if name in users:
                return self.reply(409, {"error": "the user exists"})
            users[name] = {"password": password, "group": body.get("group")}
        self.reply(201, {"username": name})

    def do_DELETE(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return self.reply(411, {"error": "send a Content-Length, not a chunked body"})
        if not self.path.startswith("/users/"):
            return self.reply(404, {"error": "no such path"})
        if not self.is_admin():
            return
        with lock:
            gone = users.pop(self.path[len("/users/"):], None)
        self.reply(204 if gone else 404)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--admin-token", default="admin-token")
    args = parser.parse_args()
    Handler.admin_token = args.admin_token
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
