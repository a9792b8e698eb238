"""An in-house user API as small teams write them: Python's standard-library
http.server, whose BaseHTTPRequestHandler reads a request body only by its
Content-Length. A chunked body is left unread (and what is left of it spoils
the connection), so a client must frame every body with Content-Length.

    python3 inventory_service.py API_KEY

prints the port it listens on (127.0.0.1, chosen by the system), then serves:

    GET    /api/users          the names of all users
    POST   /api/users          {"name", "password", "groups"}: 201, 409 if taken
    DELETE /api/users/<name>   204, or 404 for a user that does not exist
    GET    /_test/state        (no key) every user and every request recorded

Every /api call needs "Authorization: Bearer API_KEY". A POST whose groups
hold "close-before-answering" creates the user and then closes the connection
without an answer, as a service that crashes mid-request would.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = sys.argv[1]
PREFIX = "/api/users"
lock = threading.Lock()
users = {}
recorded = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.path != "/_test/state":
            with lock:
                recorded.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body_length": len(data),
                    }
                )
        return data

    def answer(self, status, document=None):
        data = b"" if document is None else json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.headers.get("Authorization") == "Bearer " + API_KEY:
            return True
        self.answer(401, {"error": "a valid API key is required"})
        return False

    def do_GET(self):
        self.body()
        if self.path == "/_test/state":
            with lock:
                self.answer(200, {"users": list(users.values()), "requests": recorded})
        elif self.path == PREFIX:
            if self.authorized():
                with lock:
                    self.answer(200, sorted(users))
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self):
        data = self.body()
        if self.path != PREFIX:
            return self.answer(404, {"error": "not found"})
        if not self.authorized():
            return
        try:
            user = json.loads(data)
            name, password, groups = user["name"], user["password"], user["groups"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "expected {name, password, groups}"})
        with lock:
            if name in users:
                return self.answer(409, {"error": "the user exists"})
            users[name] = {"name": name, "password": password, "groups": groups}
        if "close-before-answering" in groups:
            self.close_connection = True
            return
        self.answer(201, {"name": name})

    def do_DELETE(self):
        self.body()
        if not self.path.startswith(PREFIX + "/"):
            return self.answer(404, {"error": "not found"})
        if not self.authorized():
            return
        with lock:
            gone = users.pop(self.path[len(PREFIX) + 1 :], None)
        if gone is None:
            self.answer(404, {"error": "no such user"})
        else:
            self.answer(204)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
