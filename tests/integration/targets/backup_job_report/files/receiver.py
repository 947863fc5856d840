"""A webhook receiver for the test: listens on 127.0.0.1 on a port the kernel picks, writes {"port", "pid"} to
PORT_FILE (whole, by rename), appends each POST as a JSON line {"path", "type", "body"} to LOG_FILE, answers
500 to paths below /fail/ and 204 to the others, and stops after LIFETIME seconds at most.

    receiver.py PORT_FILE LOG_FILE LIFETIME
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(self.server.log_file, "a") as f:
            f.write(json.dumps(dict(path=self.path, type=self.headers.get("Content-Type"),
                                    body=json.loads(body))) + "\n")
        self.send_response(500 if self.path.startswith("/fail/") else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    port_file, log_file, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    server.log_file = log_file
    with open(port_file + ".tmp", "w") as f:
        json.dump(dict(port=server.server_address[1], pid=os.getpid()), f)
    os.rename(port_file + ".tmp", port_file)
    timer = threading.Timer(lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
