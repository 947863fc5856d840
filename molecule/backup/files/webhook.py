"""A webhook receiver for the backup scenario: each POST is appended to a log as one JSON line.

    python3 webhook.py DIR    listen on a free port of 127.0.0.1, write it to DIR/webhook.port and
                              the process id to DIR/webhook.pid, append {"path", "body"} to
                              DIR/webhook.log
"""

import http.server
import json
import os
import sys


def main(directory):
    log = os.path.join(directory, "webhook.log")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with open(log, "a") as handle:
                handle.write(json.dumps({"path": self.path, "body": body.decode("utf-8", "replace")}) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    for name, value in (("webhook.pid", os.getpid()), ("webhook.port", server.server_address[1])):
        with open(os.path.join(directory, name + ".tmp"), "w") as handle:
            handle.write("%s\n" % value)
        os.rename(os.path.join(directory, name + ".tmp"), os.path.join(directory, name))
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
