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
token_file="$STATE_DIR/demo-token"
if [ ! -s "$token_file" ]; then
  (umask 077; "$draven" tokens create --state-dir "$STATE_DIR" --person alice --name demo >"$token_file" 2>/dev/null)
fi
token="$(cat "$token_file")"

"$here/stack.sh" stop >/dev/null 2>&1 || true
"$here/stack.sh" start

url="http://127.0.0.1:$PORT"
cat <<MSG

draven is serving on $url  (state: $STATE_DIR; stop with: make stop)
The demo token (person alice) is in $token_file.

Create a demo deploy (develop → shop/demo):
  curl -sS -X POST $url/api/v1/deploys -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' -d '{"project":"shop","environment":"demo","ref":"develop","reason":"first deploy"}'

draven dispatches it to a local stand-in CI on 127.0.0.1:$DEMO_PROVIDER_PORT (its log:
$STATE_DIR/run/demo-provider.log); the job becomes "running" with a run id.

Then look at it and at the locks:
  curl -sS $url/api/v1/jobs/1 -H 'Authorization: Bearer $token'
  curl -sS $url/api/v1/locks -H 'Authorization: Bearer $token'

The web console: open $url/ui/ and paste the demo token, or sign in with a one-time link:
  $draven console link --person alice --state-dir $STATE_DIR --url $url
MSG
