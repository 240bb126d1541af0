#!/usr/bin/env bash
# `make run`: a local draven on 127.0.0.1 with the demo configuration.
# Inputs: STATE_DIR, PORT, BIN_DIR (release binaries). Restarts a stack already running from STATE_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${STATE_DIR:?}" "${PORT:?}" "${BIN_DIR:?}"
export STATE_DIR PORT BIN_DIR
draven="$BIN_DIR/draven"

"$draven" init --state-dir "$STATE_DIR" >/dev/null
[ -f "$STATE_DIR/secrets/secrets.dsb" ] || "$draven" secrets init --state-dir "$STATE_DIR" >/dev/null

# The demo dispatches to a local stand-in CI (infra/demo_provider.py), never to github.com:
# the example configuration with its integration pointed at 127.0.0.1, and a dummy token.
export DEMO_PROVIDER_PORT="${DEMO_PROVIDER_PORT:-$((PORT + 1))}"
# Approval requests go to the stand-in's Slack Web API, never to slack.com.
sed -e "s|^method = \"workflow_dispatch\"|&\napi_url = \"http://127.0.0.1:$DEMO_PROVIDER_PORT\"   # make run: local stand-in CI|" \
    -e "s|^# api_url = \"https://slack.com/api\".*|api_url = \"http://127.0.0.1:$DEMO_PROVIDER_PORT/slack-api\"   # make run: local stand-in|" \
  "$here/draven.example.toml" >"$STATE_DIR/draven.toml"
"$draven" apply --state-dir "$STATE_DIR" -f "$STATE_DIR/draven.toml"
printf 'demo-token-not-a-real-credential' | "$draven" secrets set github-shop-token --state-dir "$STATE_DIR" >/dev/null
printf 'xoxb-demo-not-a-real-credential' | "$draven" secrets set slack-bot-token --state-dir "$STATE_DIR" >/dev/null
# The project's runner secret: draven keeps it in its store (shop-runner), the stand-in CI as its CI
# secret DRAVEN_RUNNER_SECRET (a 0600 file it reads; never in argv or in the environment of make).
runner_secret="$STATE_DIR/demo-ci-runner-secret"
if [ ! -s "$runner_secret" ]; then
  (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$runner_secret")
fi
"$draven" secrets set shop-runner --state-dir "$STATE_DIR" <"$runner_secret" >/dev/null
# Tokens: alice asks, bob and dana are the other two leads (prod needs two approvals, not the asker's).
for person in alice bob dana; do
  token_file="$STATE_DIR/demo-token"
  [ "$person" = alice ] || token_file="$STATE_DIR/demo-token-$person"
  if [ ! -s "$token_file" ]; then
    (umask 077; "$draven" tokens create --state-dir "$STATE_DIR" --person "$person" --name demo >"$token_file" 2>/dev/null)
  fi
done

url="http://127.0.0.1:$PORT"
# The stand-in CI runs each dispatched pipeline (infra/demo_provider.py, infra/demo_pipeline.py).
export DEMO_DRAVEN_URL="$url" DEMO_RUNNER_SECRET_FILE="$runner_secret" DEMO_CI_DIR="$STATE_DIR/run/demo-ci"
"$here/stack.sh" stop >/dev/null 2>&1 || true
"$here/stack.sh" start

# The printed commands read the tokens from their files, so no token is shown on the terminal.
auth() { printf '%s' "-H \"Authorization: Bearer \$(cat $STATE_DIR/demo-token${1:+-$1})\""; }
post() { printf '%s' "curl -sS -X POST $url$1 $(auth "${3:-}") -H 'Content-Type: application/json' -d '$2'"; }
get() { printf '%s' "curl -sS '$url$1' $(auth)"; }
cat <<MSG

draven is serving on $url  (state: $STATE_DIR; stop with: make stop)
API tokens, one a file: $STATE_DIR/demo-token (alice), demo-token-bob, demo-token-dana (the other leads).
A stand-in CI on 127.0.0.1:$DEMO_PROVIDER_PORT runs what draven dispatches as GitHub Actions would:
the deploy step of infra/pipelines/github-deploy.yml (the runner from $url/runner.sh, checked
against the workflow's pin) on the demo project, infra/examples/demo/deploy/run.sh.

1. The first deploy: develop to shop/demo. Send it twice: job 1 takes the lock and is dispatched at
   once; job 2 waits ("queued") and starts when job 1 ends.
  $(post /api/v1/deploys '{"project":"shop","environment":"demo","ref":"develop","reason":"first deploy"}')
  $(post /api/v1/deploys '{"project":"shop","environment":"demo","ref":"develop","reason":"and again"}')
   Within seconds the runner reports job 1 "succeeded", with its steps' progress and the release it made:
  $(get /api/v1/jobs/1)
   The log its runner wrote:
  cat $STATE_DIR/run/demo-ci/job-1.log

2. An approval: prod takes only v* tags, approved by two leads other than the one who asked.
  $(post /api/v1/deploys '{"project":"shop","environment":"prod","ref":"v1.0.0","reason":"release"}')
   Job 3 is "awaiting_approval" and holds no lock. Alice's own approval is refused (403, self_approval);
   bob's is the first of two, dana's the second: the job takes prod's lock and deploys.
  $(post /api/v1/jobs/3/approvals '{"decision":"approve"}')
  $(post /api/v1/jobs/3/approvals '{"decision":"approve"}' bob)
  $(post /api/v1/jobs/3/approvals '{"decision":"approve"}' dana)
  $(get /api/v1/jobs/3)

3. A failure that rolls back: the demo's run.sh fails fail-* branches at its migrate step.
  $(post /api/v1/deploys '{"project":"shop","environment":"demo","ref":"fail-login"}')
   Job 4 ends "failed"; shop/demo's policy (on_failure = ["rollback"]) starts job 5, a rollback to
   the live release (develop), through the same pipeline with task rollback:
  $(get /api/v1/jobs/5)
  $(get '/api/v1/releases?project=shop&environment=demo')

4. A cancel: slow-* branches take 15 s a step.
  $(post /api/v1/deploys '{"project":"shop","environment":"demo","ref":"slow-rebuild"}')
  $(post /api/v1/jobs/6/cancel '{"reason":"wrong branch"}')
   Job 6 is "cancelled" at once, the lock is free, and draven asks the CI to stop the run: the stand-in
   stops the runner and the deploy it started (their log: $STATE_DIR/run/demo-ci/job-6.log).

The jobs, the locks, the audit trail:
  $(get /api/v1/jobs)
  $(get /api/v1/locks)
  $draven audit verify --state-dir $STATE_DIR

The web console: open $url/ui/ and paste the demo token, or sign in with a one-time link:
  $draven console link --person alice --state-dir $STATE_DIR --url $url
MSG
