"""A local stand-in for GitHub Actions, GitLab CI and Bitbucket Pipelines.

`make run` starts it so the demo's deploys really dispatch (to 127.0.0.1, nothing leaves the
machine); the end-to-end tests use it as their fake provider. It records every request and
answers like the providers' success responses (GitHub dispatch with return_run_details, GitLab
and Bitbucket pipeline creation, reading and cancelling a run (it is always still running), Slack's chat.postMessage, chat.update and
chat.postEphemeral). Tests can queue answers for a path prefix:
{"status": 503, "body": {...}, "delay": 0}; a delay longer than draven's timeout makes a call hang.
With "echo": true the answer's "message" quotes the request back, as careless providers do in
their 401s: every header, the body, and the credential again base64- and percent-encoded.

    python3 infra/demo_provider.py PORT      # serve until killed, logging one line per request
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeProvider:
    def __init__(self, port=0):
        self.requests = []
        self.scripts = {}  # path prefix -> list of answers
        self.in_flight = 0
        self.lock = threading.Lock()
        self.counter = 1000
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                provider.handle(self, body)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def script(self, prefix, *answers):
        with self.lock:
            self.scripts.setdefault(prefix, []).extend(answers)

    def unscript(self, prefix):
        """Drops the answers still queued for `prefix`: it answers as usual again."""
        with self.lock:
            self.scripts.pop(prefix, None)

    def received(self, prefix=""):
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(prefix)]

    def handle(self, handler, body):
        with self.lock:
            self.counter += 1
            n = self.counter
            record = {"method": handler.command, "path": handler.path, "headers": dict(handler.headers.items()),
                      "body": body, "answered": None}
            self.requests.append(record)
            answer = None
            for prefix, queue in self.scripts.items():
                if handler.path.startswith(prefix) and queue:
                    answer = queue.pop(0)
                    break
            self.in_flight += 1
        try:
            if answer is None:
                answer = self.default(handler.path, n, body)
            if answer.get("echo"):
                answer = dict(answer, body=dict(answer.get("body") or {}, message=echo(answer, record)))
            if answer.get("delay"):
                time.sleep(answer["delay"])
            status = answer["status"]
            payload = b"" if answer.get("body") is None else json.dumps(answer["body"]).encode()
            # Recorded before the answer leaves: the caller may act on it (and a test look) at once.
            record["answered"] = status
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            record["answered"] = "client gone"
        finally:
            with self.lock:
                self.in_flight -= 1

    def default(self, path, n, body=b""):
        # Calls about an existing run (draven's polling fallback and cancels): the run goes on.
        run = path.rstrip("/").rsplit("/", 2)
        if "/actions/runs/" in path:
            if path.endswith("/cancel"):
                return {"status": 202, "body": {}}
            return {"status": 200, "body": {"id": int(run[-1]) if run[-1].isdigit() else run[-1], "status": "in_progress",
                                            "conclusion": None, "html_url": f"https://github.example/acme/app/actions/runs/{run[-1]}"}}
        if "/projects/" in path and "/pipelines/" in path:
            if path.endswith("/cancel"):
                return {"status": 200, "body": {"id": int(run[-2]), "status": "canceled"}}
            return {"status": 200, "body": {"id": int(run[-1]), "status": "running", "web_url": f"https://gitlab.example/p/{run[-1]}"}}
        if "/repositories/" in path and "/pipelines/%7B" in path:
            if path.endswith("/stopPipeline"):
                return {"status": 204, "body": None}
            return {"status": 200, "body": {"uuid": run[-1].replace("%7B", "{").replace("%7D", "}"), "build_number": 1,
                                            "state": {"name": "IN_PROGRESS"}}}
        if "/actions/workflows/" in path:
            return {"status": 200, "body": {"workflow_run_id": n, "run_url": f"{self.url}/api/runs/{n}",
                                            "html_url": f"https://github.example/acme/app/actions/runs/{n}"}}
        if "/trigger/pipeline" in path or path.endswith("/pipeline"):
            return {"status": 201, "body": {"id": n, "web_url": f"https://gitlab.example/acme/app/-/pipelines/{n}", "status": "created"}}
        if "/pipelines/" in path:
            return {"status": 201, "body": {"uuid": "{%08d-0000-4000-8000-000000000000}" % n, "build_number": n,
                                            "state": {"name": "PENDING"}}}
        if path.endswith("/chat.postEphemeral"):
            return {"status": 200, "body": {"ok": True, "message_ts": f"{n}.000300"}}
        if path.endswith("/chat.postMessage") or path.endswith("/chat.update"):  # the Slack Web API (approval requests)
            sent = json.loads(body or b"{}")
            return {"status": 200, "body": {"ok": True, "channel": sent.get("channel"), "ts": sent.get("ts") or f"{n}.000200"}}
        if path.startswith("/slack/") or path.startswith("/teams/"):  # incoming webhooks of the chat tools
            return {"status": 200, "body": None}
        return {"status": 404, "body": {"message": "Not Found"}}


def echo(answer, record):
    """The answer's message followed by the request it answers, credential included."""
    import base64
    from urllib.parse import quote
    headers = record["headers"]
    credential = (headers.get("Authorization", "").split(" ", 1)[-1] or headers.get("PRIVATE-TOKEN", ""))
    return (f"{(answer.get('body') or {}).get('message', 'Bad credentials')}: you sent "
            + "; ".join(f"{k}: {v}" for k, v in headers.items())
            + f" with body {record['body'].decode(errors='replace')!r}"
            + f" (base64 {base64.b64encode(credential.encode()).decode()}, url {quote(credential, safe='')})")


if __name__ == "__main__":
    import sys

    provider = FakeProvider(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"demo provider on {provider.url}", flush=True)
    original = provider.handle

    def logged(handler, body):
        original(handler, body)
        print(f"{handler.command} {handler.path} -> {provider.requests[-1]['answered']}", flush=True)

    provider.handle = logged
    provider.server.serve_forever()
