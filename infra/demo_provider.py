"""A local stand-in for GitHub Actions, GitLab CI and Bitbucket Pipelines.

`make run` starts it so the demo's deploys really dispatch (to 127.0.0.1, nothing leaves the
machine) and really run; the end-to-end tests use it as their fake provider. It records every
request and answers like the providers' success responses (GitHub dispatch with return_run_details,
GitLab and Bitbucket pipeline creation, reading and cancelling a run, Slack's chat.postMessage,
chat.update and chat.postEphemeral). Tests can queue answers for a path prefix:
{"status": 503, "body": {...}, "delay": 0}; a delay longer than draven's timeout makes a call hang.
With "echo": true the answer's "message" quotes the request back, as careless providers do in
their 401s: every header, the body, and the credential again base64- and percent-encoded.

With `pipelines` (demo_pipeline.Pipelines) a dispatch also runs: after answering, the stand-in runs
the pipeline template's deploy step as the real CI would (the runner, fetched from draven's
/runner.sh, with the variables draven sent); reading a run answers its real state, and cancelling it
stops it. Without, a run is always still running (what most tests want: they play the runner).

    python3 infra/demo_provider.py PORT      # serve until killed, logging one line per request

`make run` sets DEMO_DRAVEN_URL (draven's URL), DEMO_RUNNER_SECRET_FILE (the project's runner
secret, a 0600 file: the CI secret), DEMO_PROJECT (the repository the pipeline checks out, default
infra/examples/demo) and DEMO_CI_DIR (the runs' logs and checkouts): then dispatches run.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from demo_pipeline import Refused, dispatch_kind


class FakeProvider:
    def __init__(self, port=0, pipelines=None):
        self.pipelines = pipelines
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
                      "body": body, "answered": None, "at": time.monotonic()}  # "at": when it arrived (bench.py)
            self.requests.append(record)
            answer = None
            for prefix, queue in self.scripts.items():
                if handler.path.startswith(prefix) and queue:
                    answer = queue.pop(0)
                    break
            self.in_flight += 1
        run = None
        try:
            if answer is None and self.pipelines is not None and dispatch_kind(handler.command, handler.path):
                try:
                    run = self.pipelines.plan(dispatch_kind(handler.command, handler.path), handler.path, body, n)
                except Refused as refused:
                    answer = {"status": refused.status, "body": {"message": refused.message}}
                except Exception as e:  # the stand-in could not read the template: say so, as a 500
                    answer = {"status": 500, "body": {"message": f"the stand-in CI failed: {e!r}"}}
            if answer is None:
                answer = self.default(handler.path, n, body, handler.command)
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
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            record["answered"] = "client gone"
        finally:
            # The real CI starts the run after it answered, and also when its caller went away before reading
            # the answer (the dispatch was taken all the same).
            if run is not None:
                run.start()
            with self.lock:
                self.in_flight -= 1

    def ran(self, provider, run_id, cancel=False):
        """The pipeline run the stand-in started for this run id, if any (cancelled in the background
        when `cancel`: the provider answers at once and stops the run after)."""
        run = self.pipelines.find(provider, run_id) if self.pipelines is not None else None
        if run is not None and cancel:
            threading.Thread(target=run.cancel, daemon=True).start()
        return run

    def default(self, path, n, body=b"", method="POST"):
        # Calls about an existing run (draven's polling fallback and cancels): the run goes on, unless
        # the stand-in really runs it (then it answers the run's state).
        run = path.rstrip("/").rsplit("/", 2)
        if "/actions/runs/" in path:
            if path.endswith("/cancel"):
                self.ran("github", run[-2], cancel=True)
                return {"status": 202, "body": {}}
            real = self.ran("github", run[-1])
            status = "completed" if real and real.state == "completed" else "in_progress"
            return {"status": 200, "body": {"id": int(run[-1]) if run[-1].isdigit() else run[-1], "status": status,
                                            "conclusion": real.conclusion if real else None,
                                            "html_url": f"https://github.example/acme/app/actions/runs/{run[-1]}"}}
        if "/projects/" in path and "/pipelines/" in path:
            if path.endswith("/cancel"):
                self.ran("gitlab", run[-2], cancel=True)
                return {"status": 200, "body": {"id": int(run[-2]), "status": "canceled"}}
            real = self.ran("gitlab", run[-1])
            status = {"success": "success", "failure": "failed", "cancelled": "canceled"}.get(
                real.conclusion if real else None, "running")
            return {"status": 200, "body": {"id": int(run[-1]), "status": status, "web_url": f"https://gitlab.example/p/{run[-1]}"}}
        if "/repositories/" in path and "/pipelines/%7B" in path:
            uuid = (run[-2] if path.endswith("/stopPipeline") else run[-1]).replace("%7B", "{").replace("%7D", "}")
            number = uuid.strip("{}").split("-")[0]
            if path.endswith("/stopPipeline"):
                self.ran("bitbucket", int(number) if number.isdigit() else number, cancel=True)
                return {"status": 204, "body": None}
            real = self.ran("bitbucket", int(number) if number.isdigit() else number)
            state = {"name": "IN_PROGRESS"}
            if real and real.state == "completed":
                result = {"success": "SUCCESSFUL", "failure": "FAILED", "cancelled": "STOPPED"}[real.conclusion]
                state = {"name": "COMPLETED", "result": {"name": result}}
            return {"status": 200, "body": {"uuid": uuid, "build_number": 1, "state": state}}
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


def demo_pipelines(environ):
    """The pipelines `make run` asks for through DEMO_* variables (see the module's doc), or None."""
    import os
    from pathlib import Path

    from demo_pipeline import Pipelines

    url, secret_file = environ.get("DEMO_DRAVEN_URL"), environ.get("DEMO_RUNNER_SECRET_FILE")
    if not url or not secret_file:
        return None
    here = Path(__file__).resolve().parent
    # The runner machine's environment: the demo's pace, and a heartbeat every second (DEMO_HEARTBEAT_EVERY)
    # so that the demo's short deploys show their progress.
    machine = {k: v for k, v in environ.items() if k.startswith("DEMO_") and k.endswith("_SECONDS")}
    machine["DRAVEN_HEARTBEAT_EVERY"] = environ.get("DEMO_HEARTBEAT_EVERY", "1")
    return Pipelines(project=environ.get("DEMO_PROJECT", here / "examples" / "demo"),
                     variables={"DRAVEN_URL": url}, secret=Path(secret_file).read_text().strip(),
                     machine_env=machine, log_dir=environ.get("DEMO_CI_DIR") or os.path.join(os.getcwd(), "demo-ci"))


if __name__ == "__main__":
    import os
    import signal
    import sys

    pipelines = demo_pipelines(os.environ)
    provider = FakeProvider(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0, pipelines=pipelines)
    print(f"demo provider on {provider.url}" + (f"; runs pipelines, logs in {pipelines.log_dir}" if pipelines else ""),
          flush=True)

    def stop(*_):
        if pipelines is not None:
            pipelines.stop()  # no run outlives the stand-in
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    original = provider.handle

    def logged(handler, body):
        original(handler, body)
        print(f"{handler.command} {handler.path} -> {provider.requests[-1]['answered']}", flush=True)

    provider.handle = logged
    provider.server.serve_forever()
