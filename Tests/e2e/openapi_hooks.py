"""schemathesis hooks for test_openapi.py: sign what schemathesis sends to the routes a signature guards, so
its generated bodies reach the handlers past verification. The secrets come from the environment the test
gives the `st` process (never argv): OPENAPI_RUNNER_SECRET (runner HMAC), OPENAPI_GITHUB_SECRET,
OPENAPI_GITLAB_SECRET (the X-Gitlab-Token) and OPENAPI_BITBUCKET_SECRET."""
import hashlib
import hmac
import json
import os
import re
import time

import schemathesis

RUNNER_ROUTES = re.compile(r"^(/hooks/runner|/hooks/runner/log|/api/v1/jobs/\{id\}/heartbeat)$")


def body_bytes(case):
    """The bytes the requests transport sends for a JSON body (`json=`: json.dumps, then UTF-8)."""
    if isinstance(case.body, bytes):
        return case.body
    if case.body is None:
        return b"null"
    return json.dumps(case.body, allow_nan=False).encode()


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    if case.media_type != "application/json":
        return
    try:
        body = body_bytes(case)
    except (TypeError, ValueError):
        return  # not JSON schemathesis can send either
    headers = case.headers if case.headers is not None else {}
    if RUNNER_ROUTES.match(path) and "X-Draven-Signature" not in headers:
        secret = os.environ["OPENAPI_RUNNER_SECRET"].encode()
        timestamp = str(int(time.time()))
        headers["X-Draven-Timestamp"] = timestamp
        headers["X-Draven-Signature"] = "v1=" + hmac.new(secret, timestamp.encode() + b"." + body,
                                                         hashlib.sha256).hexdigest()
    elif path == "/hooks/github" and "X-Hub-Signature-256" not in headers:
        secret = os.environ["OPENAPI_GITHUB_SECRET"].encode()
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers.setdefault("X-GitHub-Event", "workflow_run")
        case.query = {**(case.query or {}), "project": "shop"}  # a generated body names no repository
    elif path == "/hooks/gitlab" and "X-Gitlab-Token" not in headers:
        headers["X-Gitlab-Token"] = os.environ["OPENAPI_GITLAB_SECRET"]
        headers.setdefault("X-Gitlab-Event", "Pipeline Hook")
        case.query = {**(case.query or {}), "project": "gl"}
    elif path == "/hooks/bitbucket" and "X-Hub-Signature" not in headers:
        secret = os.environ["OPENAPI_BITBUCKET_SECRET"].encode()
        headers["X-Hub-Signature"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers.setdefault("X-Event-Key", "repo:commit_status_updated")
        case.query = {**(case.query or {}), "project": "bb"}
    case.headers = headers
