"""One AWS endpoint for the tests' second DynamoDB run: DynamoDB calls go to dynalite, every
other service (SQS, Secrets Manager, EventBridge) to moto. Listens on 127.0.0.1 only.

Usage: python3 router.py PORT DYNALITE_URL MOTO_URL
"""

import http.client
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DYNAMODB_TARGET = "DynamoDB_20120810."
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


def upstream_for(headers):
    target = headers.get("X-Amz-Target", "")
    return DYNALITE if target.startswith(DYNAMODB_TARGET) else MOTO


class Router(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        upstream = upstream_for(self.headers)
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        connection.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1])
    DYNALITE = urllib.parse.urlparse(sys.argv[2])
    MOTO = urllib.parse.urlparse(sys.argv[3])
    ThreadingHTTPServer(("127.0.0.1", port), Router).serve_forever()
