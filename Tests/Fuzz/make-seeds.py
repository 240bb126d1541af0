#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target under Tests/Fuzz/corpus/<target>/ (run from the repository
root; the output is committed). Inputs: the provider payloads in events/ ($FIXTURES;
their attribution is events/SOURCES.md), the configurations in Tests/e2e and infra, and the signature schemes of
shared/reference/providers.md with a fixed key. The `secrets` seeds are stores made with
`draven secrets init/set/rm/rotate` in a temporary directory (keys in Tests/Fuzz/keys, no real secret)."""
import base64, hashlib, hmac, json, os, pathlib, tomllib

ROOT = pathlib.Path("Tests/Fuzz")
CORPUS = ROOT / "corpus"
FIXTURES = pathlib.Path(os.environ.get("FIXTURES", "events"))
KEY = b"draven-fuzz-signing-key"  # FuzzSignatures.key
NOW = 1700000000  # FuzzSignatures.now


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def payloads():
    for f in sorted(FIXTURES.glob("*/*.json")):
        if f.parent.name == "schemas":
            continue
        yield f.parent.name, f.stem, f.read_bytes()


def cgi_input(env, body=b""):
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()) + b"\0" + body


def main():
    events = {  # FuzzWebhook.events
        "github": {"workflow_run": 0, "workflow_job": 1, "deployment_status": 2, "push": 3},
        "gitlab": {"pipeline_hook": 4, "job_hook": 5, "deployment_hook": 6},
        "bitbucket-cloud": {"repo_commit_status_updated": 8, "repo_commit_status_created": 9, "repo_push": 10},
        "bitbucket-dc": {"repo_refs_changed": 11},
    }
    for provider, stem, body in payloads():
        write("json", f"{provider}-{stem}.json", body)
        event = next((v for k, v in events[provider].items() if stem.startswith(k)), 3)
        write("webhook", f"{provider}-{stem}", bytes([event, 0]) + body)
        compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
        write("webhook", f"{provider}-{stem}-compact", bytes([event, 0]) + compact)
    run = json.loads((FIXTURES / "github/workflow_run.completed.json").read_bytes())
    compact_run = json.dumps(run, separators=(",", ":")).encode()
    github_form = b"payload=" + compact_run.replace(b"%", b"%25").replace(b"&", b"%26").replace(b"+", b"%2B")
    write("webhook", "github-form", bytes([0, 1]) + github_form)
    for name, text in [("nested", '{"a":[{"b":{"c":[1,-2.5e10,true,false,null,"\\u00e9\\ud83d\\ude00"]}}]}'),
                       ("escapes", '"\\"\\\\\\/\\b\\f\\n\\r\\t\\u2028\\u0000"'),
                       ("numbers", "[0,-0,1e308,-9223372036854775808,1.5E-3]"), ("duplicate", '{"a":1,"a":2}'),
                       ("deep", "[" * 64 + "]" * 64), ("too-deep", "[" * 65 + "]" * 65),
                       ("duplicate-nested", '{"a":{"b":1,"b":[2],"\\u0062":{"c":3,"c":4}},"d":0,"a":{"b":5}}'),
                       ("duplicate-escaped", '{"git_ssh_url":"x","git\\u005fssh_url":"y","K":1,"\\u212a":2,"K":3}')]:
        write("json", name + ".json", text)

    sig = hmac.new(KEY, b'{"action":"completed"}', hashlib.sha256).hexdigest()
    body = b'{"action":"completed"}'
    write("signatures", "github", f"sha256={sig}\n".encode() + body)
    write("signatures", "github-upper", f"sha256={sig.upper()}\n".encode() + body)
    write("signatures", "bitbucket-sha1-legacy", "sha1=" + hashlib.sha1(body).hexdigest() + "\n" + body.decode())
    runner_body = b'{"status":"succeeded","job_id":12,"fencing_token":3}'
    runner = hmac.new(KEY, f"{NOW}.".encode() + runner_body, hashlib.sha256).hexdigest()
    write("signatures", "runner", f"{NOW} v1={runner}\n".encode() + runner_body)
    write("signatures", "runner-plus-timestamp", f"+{NOW} v1={runner}\n".encode() + runner_body)
    slack_body = b"token=x&team_id=T1&user_id=U123&command=%2Fdraven&text=approve+12"
    slack = hmac.new(KEY, f"v0:{NOW}:".encode() + slack_body, hashlib.sha256).hexdigest()
    write("signatures", "slack", f"v0={slack}\n".encode() + slack_body)
    teams_body = b'{"type":"message","text":"<at>draven</at> approve 12","from":{"id":"29:1","aadObjectId":"a-b"}}'
    teams = base64.b64encode(hmac.new(KEY, teams_body, hashlib.sha256).digest()).decode()
    write("signatures", "teams", f"HMAC {teams}\n".encode() + teams_body)
    write("signatures", "mattermost", "Token not-a-real-token\nuser_id=u1&text=status+3")
    std = base64.b64encode(hmac.new(KEY, f"msg_1.{NOW}.".encode() + body, hashlib.sha256).digest()).decode()
    write("signatures", "standard-webhooks", f"v1,{std} v1,{std}\n".encode() + body)

    # GitLab's Standard Webhooks (FuzzSignatures.standardWebhooks): "webhook-id webhook-timestamp webhook-signature"
    # (the same signatures as standardwebhooks.Webhook(whsec_<base64 of the key>).sign makes).
    sw_key = b"draven-fuzz-standard-webhooks-key"  # FuzzSignatures.signingKey (the whsec_ token is its base64)
    gitlab_body = (FIXTURES / "gitlab/pipeline_hook.json").read_bytes()
    for name, wid, ts, sigs in [("gitlab-signed", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, "{v1}"),
                                ("gitlab-rotation", "msg_1", NOW - 299, "v1,AAAA {v1} v2,x"),
                                ("gitlab-stale", "msg_1", NOW - 301, "{v1}"),
                                ("gitlab-plus-timestamp", "msg_1", f"+{NOW}", "{v1}")]:
        mac = hmac.new(sw_key, f"{wid}.{ts}.".encode() + gitlab_body, hashlib.sha256).digest()
        sig = sigs.replace("{v1}", "v1," + base64.b64encode(mac).decode())
        write("signatures", name, f"{wid} {ts} {sig}\n".encode() + gitlab_body)
    write("signatures", "timestamps", f"{NOW} v1={runner} v1={runner.upper()} 0{NOW} v0=ab v0=AB".encode())

    # Redactor (FuzzRedactor): length byte, flags, credential, message with \x01 where it is quoted.
    for name, cred, message in [
            ("github-401", b"ghp_0123456789abcdefABCDEF0123456789ab",
             b'{"message":"Bad credentials","token":"\x01","documentation_url":"https://docs.github.com/rest"}'),
            ("gitlab-echo", b"glpat-XXXXyyyyZZZZ1234",
             b"401 Unauthorized: PRIVATE-TOKEN \x01 (\x01, \x01, \x01, \x01)"),
            ("basic-slash", b"us/er:pa+ss=word%",
             b"Authorization: Basic \x01 sent to https://x?t=\x01&u=\x01 \x01 \x01"),
            ("long", b"s3cr3t-token-value", b"\xc3\xa9" * 240 + b"\x01" + b"x" * 300)]:
        write("redactor", name, bytes([len(cred) - 8, 0]) + cred + message)
    write("redactor", "binary", bytes([0, 1]) + b"\xc3\xc3\xc3\xc3\xc3\xc3\xc3\xc3" + "é".encode() * 200)

    # ProviderEvent mapping (FuzzEvents.events): one byte, the body. Webhook payloads and polled runs.
    event_index = {"github/workflow_run": 0, "github/workflow_job": 1, "github/deployment_status": 2,
                   "gitlab/pipeline_hook": 3, "gitlab/job_hook": 4, "gitlab/deployment_hook": 5,
                   "bitbucket-cloud/repo_commit_status_updated": 6, "bitbucket-cloud/repo_commit_status_created": 7}
    for provider, stem, body in payloads():
        index = next((v for k, v in event_index.items() if f"{provider}/{stem}".startswith(k)), None)
        if index is not None:
            write("events", f"{provider}-{stem}", bytes([index]) + body)
    gl = json.loads(gitlab_body)
    for status in ["waiting_for_resource", "manual", "canceling", "success"]:
        attrs = {**gl["object_attributes"], "status": status}
        hook = {**gl, "object_attributes": attrs}
        write("events", f"gitlab-pipeline-{status}", bytes([3]) + json.dumps(hook).encode())
    write("events", "github-poll", bytes([8]) + json.dumps(run["workflow_run"]).encode())
    write("events", "github-poll-action-required",
          bytes([8]) + json.dumps({**run["workflow_run"], "conclusion": "action_required"}).encode())
    write("events", "gitlab-poll", bytes([9]) + json.dumps({"id": 42, "sha": "a" * 40,
          "web_url": "https://gitlab.example/g/p/-/pipelines/42", "status": "waiting_for_resource"}).encode())
    write("events", "bitbucket-poll", bytes([10]) + json.dumps({"uuid": "{1-2}", "build_number": 7, "state": {
          "name": "IN_PROGRESS", "stage": {"name": "PAUSED"}}, "target": {"commit": {"hash": "b" * 40}}}).encode())
    write("events", "duplicate-status",
          bytes([0]) + b'{"workflow_run":{"id":1,"status":"completed","status":"waiting"}}')

    write("form", "slack-command", slack_body)
    write("form", "slack-button", "payload=" + json.dumps({"type": "block_actions", "user": {"id": "U1"},
          "actions": [{"action_id": "draven_approve", "value": "12"}], "channel": {"id": "C1"}}).replace(" ", "+"))
    write("form", "mattermost", "token=abc&user_id=u1&text=approve%2012%20looks%20good&channel_id=c%2B1")
    write("form", "teams-text", "<at>draven</at>&nbsp;approve 12 &lt;ok&gt; &amp; &quot;go&quot;")
    write("form", "deploy-body", '{"ref":"v1.2.3","environment":"production","comment":"ship it"}')
    write("form", "percent", "a=%zz&%41%42=%e2%82%ac&+=+&&=&x")
    write("form", "github-form", github_form)

    gh = (FIXTURES / "github/workflow_run.completed.json").read_bytes()
    gh_sig = hmac.new(KEY, gh, hashlib.sha256).hexdigest()
    base = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
            "DRAVEN_STATE_DIR": "/var/lib/draven"}
    write("cgi", "github-webhook", cgi_input({
          **base, "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/github?project=shop",
          "DOCUMENT_URI": "/hooks/github", "QUERY_STRING": "project=shop", "CONTENT_TYPE": "application/json",
          "CONTENT_LENGTH": str(len(gh)), "HTTP_X_GITHUB_EVENT": "workflow_run",
          "HTTP_X_GITHUB_DELIVERY": "72d3162e-cc78-11e3",
          "HTTP_X_HUB_SIGNATURE_256": "sha256=" + gh_sig, "HTTP_USER_AGENT": "GitHub-Hookshot/044aadd"}, gh))
    deploy = b'{"ref":"v1.2.3","environment":"staging"}'
    write("cgi", "trigger", cgi_input({
          **base, "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/deploy", "SCRIPT_NAME": "",
          "CONTENT_TYPE": "application/json; charset=utf-8", "CONTENT_LENGTH": str(len(deploy)),
          "HTTP_AUTHORIZATION": "Bearer drv_not_a_real_token", "HTTP_X_REQUEST_ID": "r-1"}, deploy))
    write("cgi", "status", cgi_input({
          **base, "REQUEST_METHOD": "GET", "REQUEST_URI": "/api/v1/jobs/12?fields=state&x=%41",
          "QUERY_STRING": "fields=state&x=%41", "HTTP_AUTHORIZATION": "Bearer drv_x"}))
    write("cgi", "slack", cgi_input({**base, "REQUEST_METHOD": "POST", "REQUEST_URI": "/chatops/slack",
          "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(slack_body)),
          "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(NOW), "HTTP_X_SLACK_SIGNATURE": f"v0={slack}"}, slack_body))
    write("cgi", "short-body", cgi_input({**base, "REQUEST_METHOD": "POST", "PATH_INFO": "/hooks/runner",
          "CONTENT_LENGTH": "100", "HTTP_X_DRAVEN_TIMESTAMP": str(NOW), "HTTP_X_DRAVEN_SIGNATURE": "v1=00"}, b"{}"))
    write("cgi", "bad-length", cgi_input({**base, "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/jobs/1/heartbeat",
          "CONTENT_LENGTH": "-1"}, b""))

    for f in ["Tests/e2e/draven.test.toml", "Tests/e2e/draven.webhooks.toml", "Tests/e2e/draven.approve.toml",
              "Tests/e2e/draven.dispatch.toml", "Tests/e2e/draven.heartbeat.toml", "infra/draven.example.toml"]:
        p = pathlib.Path(f)
        text = p.read_bytes()
        write("toml", p.stem, text)
        write("config", p.stem + ".json", json.dumps(tomllib.loads(text.decode())))
    write("toml", "special-values",
          "a = nan\nb = inf\nc = 1979-05-27T07:32:00Z\nd = 0x1F\n[e]\nf = [1, 'x', {g = 1}]\n")

    # Plan documents (the unit and e2e tests' invalid ones, and a valid promotion), conditions, templates.
    for i, case in enumerate(json.loads(pathlib.Path("Tests/plans/invalid.json").read_text())):
        write("plan", f"invalid-{i:02d}.json", json.dumps(case["plan"]))
    write("plan", "promotion.json", json.dumps({
        "id": "release-shop", "inputs": {"ref": {"type": "tag", "pattern": "v*"}}, "on_failure": "compensate",
        "steps": [{"id": "stage", "type": "deploy", "project": "shop", "environment": "staging", "ref": "${inputs.ref}",
                   "retry": {"max_attempts": 3, "on": ["timed_out"]}, "compensate": "rollback", "timeout": "30m"},
                  {"id": "soak", "type": "wait", "duration": "10m", "depends_on": ["stage"]},
                  {"id": "health", "type": "check", "http": {"url_secret": "h"}, "every": "30s", "for": "5m",
                   "depends_on": ["stage"]},
                  {"id": "ok", "type": "approval", "approvals": 2, "approver_groups": ["leads"],
                   "depends_on": ["soak", "health"]},
                  {"id": "prod", "type": "deploy", "project": "shop", "environment": "prod", "ref": "${inputs.ref}",
                   "depends_on": ["ok"], "condition": "steps.health.result == 'succeeded' and not inputs.ref == 'v0'"},
                  {"id": "tell", "type": "notify", "project": "shop", "message": "shipped ${inputs.ref} $$",
                   "depends_on": ["prod"]}],
        "triggers": [{"on": "push", "project": "shop", "tag": "v*"}]}))
    write("plan", "condition", b"not (steps.a.result == 'it\\'s' or steps.a.attempts >= -2) and inputs.ref")
    write("plan", "template", b"deploy ${inputs.ref} to ${steps.a.outputs.url} for $$5")

    for n, value in [("empty", b""), ("ascii", b"ship it"), ("nul", b"main\0evil"), ("utf8", "é😀".encode()),
                     ("invalid-utf8", b"\xff\xfe")]:
        write("store", n, b"\0\0\0\0" + value)


if __name__ == "__main__":
    main()
