#!/usr/bin/env python3
"""A webhook receiver for twinloop: checks each POST's signature and prints its event as one
line of JSON on stdout.

twinloop signs every webhook body (registry events from `twinloop webhooks add`, and monitor
alerts) with HMAC-SHA256 under the webhook's secret and sends it as
`X-Twinloop-Signature-256: sha256=<hex>`. A request whose signature does not match gets a 401
and is not printed; the server retries it a bounded number of times.

    python3 examples/webhook_receiver.py --port 8000 --secret at-least-8-chars
    twinloop webhooks add http://127.0.0.1:8000/ --secret at-least-8-chars

Standard library only.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_HEADER = "X-Twinloop-Signature-256"


def expected_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def handler_for(secret: bytes):
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            given = self.headers.get(SIGNATURE_HEADER, "")
            if not hmac.compare_digest(given, expected_signature(secret, body)):
                sys.stderr.write(f"webhook_receiver: refused a POST: {SIGNATURE_HEADER} does not match\n")
                self.reply(401)
                return
            try:
                event = json.loads(body)
            except ValueError:
                self.reply(400)
                return
            print(json.dumps(event, separators=(",", ":"), sort_keys=True), flush=True)
            self.reply(200)

        def reply(self, status: int):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            # No access log: stdout carries the events alone, stderr only refusals.
            pass

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--secret",
        default=os.environ.get("TWINLOOP_WEBHOOK_SECRET"),
        help="the webhook's secret (default: $TWINLOOP_WEBHOOK_SECRET)",
    )
    args = parser.parse_args()
    if not args.secret:
        parser.error("give --secret (or set TWINLOOP_WEBHOOK_SECRET): it checks every signature")
    server = ThreadingHTTPServer((args.host, args.port), handler_for(args.secret.encode()))
    sys.stderr.write(f"webhook_receiver: listening on http://{args.host}:{server.server_port}/\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
