#!/usr/bin/env python3
"""The tavern oracle: an example remote plugin for provenant, in Python with
its standard library only.

provenant calls it over HTTP (manifest kind ``remote_feature``):

* ``POST /evaluate-condition`` with ``{"condition_id", "context", "params",
  "timeout_ms", "call"}``, answered by ``{"result": <bool>, "metadata"?}``;
* ``POST /apply-effect`` with ``{"effect_id", ...}``, answered by
  ``{"result"?, "writes"?: [...], "metadata"?}``.

``context`` holds only what the plugin's permissions allow (see
manifest.json). ``writes`` are capability requests as data; the engine checks
each against the permissions and records it as an event.

Run it with ``python3 server.py --port 8700``; ``--port 0`` picks a free
port. The first line it prints is ``listening on http://127.0.0.1:<port>``.
If ``ORACLE_TOKEN`` is set, every request must carry
``Authorization: Bearer <that token>`` (the manifest's ``token_env`` names the
variable the engine reads it from).
"""

import argparse
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OMENS = ["crows at dawn", "a red moon", "doves over the well"]


def is_fated(request):
    """True for one NPC and tick in three: a deterministic answer, so that a
    replay with ``--remote-live`` finds the same one."""
    call = request.get("call", {})
    npc = request.get("context", {}).get("npc_id", "")
    return (call.get("tick", 0) + len(npc)) % 3 == 0


def prophesy(request):
    """Sets the session's omen (the plugin's own flag) and logs it."""
    tick = request.get("call", {}).get("tick", 0)
    omen = OMENS[tick % len(OMENS)]
    seen = request.get("context", {}).get("session", {}).get("flags", {})
    before = seen.get("plugin:tavern-oracle:omen")
    return {
        "result": {"omen": omen, "changed": before != omen},
        "writes": [
            {"capability": "set_session_flag", "key": "omen", "value": omen},
            {"capability": "log", "level": "info", "message": "the oracle saw " + omen},
        ],
    }


class Oracle(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the engine reuses connections
    # Headers and body go out as two writes: without this, Nagle's algorithm
    # holds the body until the engine's delayed ACK (40 ms a call).
    disable_nagle_algorithm = True

    def do_POST(self):
        token = os.environ.get("ORACLE_TOKEN")
        if token and not hmac.compare_digest(
            self.headers.get("Authorization", ""), "Bearer " + token
        ):
            return self.answer(401, {"error": "missing or wrong token"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, json.JSONDecodeError) as e:
            return self.answer(400, {"error": "not JSON: %s" % e})
        if self.path == "/evaluate-condition":
            if request.get("condition_id") != "plugin:tavern-oracle:is_fated":
                return self.answer(404, {"error": "no such condition"})
            return self.answer(200, {"result": is_fated(request)})
        if self.path == "/apply-effect":
            if request.get("effect_id") != "effect:plugin:tavern-oracle:prophesy":
                return self.answer(404, {"error": "no such effect"})
            return self.answer(200, prophesy(request))
        return self.answer(404, {"error": "no such operation " + self.path})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        if os.environ.get("ORACLE_VERBOSE"):
            sys.stderr.write("oracle: " + format % args + "\n")


def main():
    parser = argparse.ArgumentParser(description="The tavern oracle, a remote plugin for provenant.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700, help="0 picks a free port")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Oracle)
    server.daemon_threads = True
    print("listening on http://%s:%d" % server.server_address[:2], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
