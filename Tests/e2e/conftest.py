"""End-to-end harness: real nginx + fcgiwrap (infra/stack.sh) serving the release binaries,
a temporary state directory, real HTTP requests. BIN_DIR names the binaries (make e2e-test)."""
import contextlib
import functools
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / ".build-dist" / "bin"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        document = json.loads(self.body)
        if self.content_type.startswith("application/json") and isinstance(document, dict) and "state" in document and "kind" in document:
            conforms(document, "Job")  # every job we read must match the published schema
        return document

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    def __repr__(self):
        return f"<{self.status} {self.content_type} {self.body[:300]!r}>"


# The counters of migration 0018 that a request or a sweep pass adds to whatever it decides (refused,
# repeated, ignored, a pass with nothing to do): left out of Stack.snapshot.
COUNTERS = ("refusal_totals", "delivery_outcomes", "sweep_passes")


class Stack:
    def __init__(self, state_dir, port):
        self.state_dir = Path(state_dir)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.tokens = {}
        self.env = dict(os.environ, STATE_DIR=str(state_dir), PORT=str(port), BIN_DIR=str(BIN_DIR))

    # -- operator side -------------------------------------------------------------------
    def draven(self, *args, check=True, input=None):
        return subprocess.run([str(BIN_DIR / "draven"), *args, "--state-dir", str(self.state_dir)],
                              capture_output=True, text=True, check=check, input=input)

    def stack(self, action):
        subprocess.run([str(ROOT / "infra" / "stack.sh"), action], env=self.env, check=True,
                       capture_output=True, text=True)

    def db(self):
        return sqlite3.connect(f"file:{self.state_dir / 'draven.db'}?mode=ro", uri=True, timeout=10)

    def rows(self, sql, *args):
        with self.db() as c:
            return c.execute(sql, args).fetchall()

    def snapshot(self):
        """Everything a refused request must leave alone: every row of every table (sqlite_master),
        every column, rows sorted. Left out are only the records a refusal itself writes (`refused`
        audit records, `refusal_counts`: tests count those with refusals()) and the counters /metrics
        reads of what requests and sweep passes were (COUNTERS: test_metrics.py checks them)."""
        with self.db() as c:
            out = {}
            for (table,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
                if table == "refusal_counts" or table in COUNTERS:
                    continue
                where = " WHERE outcome != 'refused'" if table == "audit" else ""
                out[table] = sorted(c.execute(f'SELECT * FROM "{table}"{where}').fetchall(), key=repr)
            return out

    def wait_settled(self, timeout=15):
        """Waits until no outbox row is pending or being delivered: the deliverer's own writes (a
        row's state, attempts, the job's run id) are done, so a snapshot taken now stays put."""
        deadline = time.monotonic() + timeout
        while self.rows("SELECT count(*) FROM outbox WHERE state IN ('pending', 'delivering')")[0][0]:
            assert time.monotonic() < deadline, self.rows("SELECT * FROM outbox WHERE state IN ('pending', 'delivering')")
            time.sleep(0.05)

    def assert_secrets_absent(self, values, tables, store=False):
        """No secret in any log of the stack, in the given tables, or (store=True) in the secrets file's bytes."""
        logs = "".join(p.read_text(errors="replace") for p in (self.state_dir / "run").glob("*.log"))
        with self.db() as c:
            dump = json.dumps([c.execute(f"SELECT * FROM {t}").fetchall() for t in tables])
        sealed = (self.state_dir / "secrets" / "secrets.dsb").read_bytes() if store else b""
        for value in values:
            assert value not in logs and value not in dump and value.encode() not in sealed

    def refusals(self):
        """Refused requests recorded: chained audit records (identified callers) plus the counted
        refusals of unauthenticated clients (refusal_counts)."""
        return self.rows("SELECT (SELECT count(*) FROM audit WHERE outcome = 'refused')"
                         " + (SELECT coalesce(sum(count), 0) FROM refusal_counts)")[0][0]

    def error_log(self):
        p = self.state_dir / "run" / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""

    # -- client side ---------------------------------------------------------------------
    def request(self, method, path, body=None, token=None, headers=None, content_type="application/json"):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None and content_type:
            req.add_header("Content-Type", content_type)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return Reply(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.headers, e.read())

    def wait_for(self, job_id, states, timeout=20):
        """Polls the job's state until it is one of `states`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.rows("SELECT state FROM jobs WHERE id = ?", job_id)[0][0]
            if state in states:
                return state
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} is {state}, wanted {states}")

    def sweep_once(self, later=60, *args):
        """One `draven sweep --once` with the clock moved on, so rows waiting for their first backoffs
        (10 s, 20 s) are due — but not so far that running jobs' leases (10 min by default) run out
        or their runs get polled (after 5 min): tests of those move the clock further."""
        env = dict(os.environ, DRAVEN_NOW=str(int(time.time()) + later))
        return subprocess.run([str(BIN_DIR / "draven"), "sweep", "--once", "--state-dir", str(self.state_dir), *args],
                              env=env, capture_output=True, text=True, check=True)

    def deploy(self, who, project, environment, ref, **extra):
        headers = extra.pop("headers", None)
        body = {"project": project, "environment": environment, "ref": ref, **extra}
        return self.request("POST", "/api/v1/deploys", body, token=self.tokens.get(who, who), headers=headers)

    def running_job(self, project, env, ref="refs/heads/main", who="alice"):
        """A deploy by `who` that the (fake) provider accepted: (job id, its run id)."""
        r = self.deploy(who, project, env, ref)
        assert r.status == 201, r
        job = r.json
        if job["state"] == "dispatching":
            assert self.wait_for(job["id"], {"running", "failed"}) == "running"
        return job["id"], self.rows("SELECT run_id FROM jobs WHERE id = ?", job["id"])[0][0]


def fixture(path, **changes):
    """A real payload from events/, with dotted-path fields set (ids, statuses) — as bytes."""
    data = json.loads((ROOT / "events" / path).read_text())
    for dotted, value in changes.items():
        cur = data
        keys = dotted.split(".")
        for k in keys[:-1]:
            cur = cur[k]
        cur[keys[-1]] = value
    return json.dumps(data, indent=2).encode()


UNTHROTTLED = ("100000r/s", 100000)


@contextlib.contextmanager
def launch(config_text, people=("alice", "bob", "carol", "dave"), secrets=None, sweep_every=None, deliver=None,
           children=None, rate_limit=UNTHROTTLED):
    """A running stack in a fresh state directory with `config_text` applied, a token per
    person, and (optionally) a secrets store holding `secrets` {name: value}. `deliver`
    replaces the program functions exec after answering (default: draven-deliver); `children`
    the number of fcgiwrap workers (default: stack.sh's, two per core); `rate_limit` nginx's
    per-address (rate, burst) — the suite's load all comes from 127.0.0.1, so by default it is
    not throttled; None keeps stack.sh's production default."""
    assert (BIN_DIR / "trigger").exists(), f"build the release binaries first (make release); looked in {BIN_DIR}"
    state = tempfile.mkdtemp(prefix="draven-e2e-")
    s = Stack(state, free_port())
    if sweep_every:
        s.env["SWEEP_EVERY"] = sweep_every
    if deliver:
        s.env["DELIVER"] = deliver
    if children:
        s.env["FCGI_CHILDREN"] = str(children)
    if rate_limit:
        s.env["RATE_LIMIT"], s.env["RATE_BURST"] = rate_limit[0], str(rate_limit[1])
    config = Path(state) / "draven.toml"
    config.write_text(config_text)
    s.draven("init")
    s.draven("apply", "-f", str(config))
    for person in people:
        s.tokens[person] = s.draven("tokens", "create", "--person", person).stdout.strip()
    if secrets is not None:
        s.draven("secrets", "init")
        for name, value in secrets.items():
            s.draven("secrets", "set", name, input=value)
    s.stack("start")
    try:
        yield s
    finally:
        s.stack("stop")
        leftover = leftover_processes(state)
        log = s.error_log()
        shutil.rmtree(state, ignore_errors=True)
        assert "database is locked" not in log and "SQLITE_BUSY" not in log, log
        assert leftover == [], f"stack.sh stop left processes behind: {leftover}"


@pytest.fixture(scope="module")
def stack():
    # These tests are about the trigger's own transaction: outbound delivery is off (the rows
    # stay pending, as they do when draven-deliver cannot run); test_dispatch.py covers it.
    with launch((Path(__file__).parent / "draven.test.toml").read_text(), deliver="/bin/true") as s:
        revoked = s.draven("tokens", "create", "--person", "carol", "--name", "old").stdout.strip()
        s.draven("tokens", "revoke", revoked.split("_")[1])
        s.tokens["revoked"] = revoked
        yield s


def leftover_processes(state_dir):
    """Live (not zombie) processes whose command line mentions the state directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if str(state_dir) in cmdline and stat.split(") ", 1)[1][0] != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


OPENAPI = ROOT / "infra" / "openapi.yaml"


@functools.cache
def openapi_components():
    """The `components` of draven's OpenAPI document (infra/openapi.yaml): the one copy of its schemas."""
    return yaml.safe_load(OPENAPI.read_text())["components"]


def conforms(document, schema_name):
    """Validates a response against a schema of draven's OpenAPI document (`components/schemas/NAME`)."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$ref": f"#/components/schemas/{schema_name}", "components": openapi_components()}
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)
    return document


def assert_problem(reply, status, type_suffix):
    assert reply.status == status, reply
    assert reply.content_type.startswith("application/problem+json"), reply
    problem = conforms(reply.json, "Problem")
    assert problem["status"] == status
    assert problem["type"] == "https://draven.dev/problems/" + type_suffix, problem
    assert problem["title"] and problem["detail"], problem
    return problem
