"""A webhook receiver for the fleet's scheduled jobs, run on fleet1 by a systemd unit of the schedule step.

    python3 webhook.py PORT LOG   listen on PORT of every address of the host and append each POST to LOG
                                  as one JSON line {"path", "body"} (the body as text)

Bounded: a body over MAX_BODY bytes is refused (413) unread, a client has TIMEOUT seconds per request,
and the receiver ends after MAX_REQUESTS requests (its unit bounds its life with RuntimeMaxSec= too).
"""

import http.server
import json
import os
import sys

MAX_BODY = 65536
MAX_REQUESTS = 2000
TIMEOUT = 10


def main(port, log):
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = TIMEOUT

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            line = json.dumps({"path": self.path, "body": body.decode("utf-8", "replace")}) + "\n"
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("", port), Handler)
    for _request in range(MAX_REQUESTS):
        server.handle_request()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
