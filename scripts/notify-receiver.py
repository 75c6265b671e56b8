#!/usr/bin/env python3
"""A small notification receiver for `make demo` (docs/notifications.md).

Listens on a free loopback port (written to the file given as argument), checks each
POST's `X-Konductor-Signature-256` against `KONDUCTOR_NOTIFY_SECRET`, and prints each
event on one line: `signed <event> <id>: <message>`.
"""
import hashlib
import hmac
import http.server
import json
import os
import sys

SECRET = os.environ.get("KONDUCTOR_NOTIFY_SECRET", "").encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        good = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(good, self.headers.get("X-Konductor-Signature-256", ""))
        self.send_response(204 if signed else 401)
        self.end_headers()
        try:
            ev = json.loads(body)
            line = f"{ev['event']:<16} {ev['id']}: {ev['message']}"
        except (ValueError, KeyError, TypeError):
            line = f"not a Konductor event ({len(body)} bytes)"
        print(f"{'signed' if signed else 'BAD SIGNATURE'} {line}", flush=True)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
