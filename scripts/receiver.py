#!/usr/bin/env python3
"""A webhook receiver for trying hookd by hand (Python 3 standard library only).

    python3 scripts/receiver.py --port 9000 [--secret whsec_...] [--fail N]

Listens on 127.0.0.1:PORT and accepts POST on any path. The first N requests are answered 500
(to watch hookd retry), every later one 204. Prints one line per webhook: time, webhook-id, the
status answered and, with --secret, whether the Standard Webhooks signature verifies.
Register the endpoint with hookd running under HOOKD_ALLOW_PRIVATE_TARGETS=true (loopback).
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PREFIX = "whsec_"


def decode_secret(secret):
    """The HMAC key of a `whsec_` secret: the base64 part, decoded."""
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(encoded, validate=True)


def verify(key, msg_id, timestamp, body, header):
    """Whether any `v1,` signature in the space-separated header matches."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for part in header.split():
        version, _, signature = part.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


class Receiver(BaseHTTPRequestHandler):
    # Set by main(): the HMAC key (or None), how many requests fail, and a shared counter.
    key = None
    fail = 0
    lock = threading.Lock()
    seen = 0

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        with Receiver.lock:
            Receiver.seen += 1
            status = 500 if Receiver.seen <= Receiver.fail else 204
        msg_id = self.headers.get("webhook-id", "")
        line = f"{datetime.now().isoformat(timespec='milliseconds')} {msg_id or '-'} {status}"
        if Receiver.key is not None:
            timestamp = self.headers.get("webhook-timestamp", "")
            header = self.headers.get("webhook-signature", "")
            ok = bool(msg_id and timestamp and header) and verify(
                Receiver.key, msg_id, timestamp, body, header
            )
            line += " signature ok" if ok else " signature INVALID"
        print(line, flush=True)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass  # one line per webhook is printed by do_POST


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000, help="port on 127.0.0.1 (default 9000)")
    parser.add_argument("--secret", help="the endpoint's whsec_ secret, to verify signatures")
    parser.add_argument("--fail", type=int, default=0, metavar="N",
                        help="answer 500 to the first N requests (default 0)")
    args = parser.parse_args()
    if args.secret is not None:
        try:
            Receiver.key = decode_secret(args.secret)
        except (binascii.Error, ValueError):
            parser.error("--secret must be whsec_ followed by standard base64")
    Receiver.fail = max(args.fail, 0)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    server.daemon_threads = True
    print(f"receiving webhooks on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
