#!/bin/sh
# draven-runner version 1
# draven-runner.sh — runs a deploy's entrypoint inside the pipeline and keeps draven informed.
#
#   draven-runner.sh [COMMAND [ARG...]]        (default command: deploy/run.sh)
#
# It sends a signed heartbeat right away and then every $DRAVEN_HEARTBEAT_EVERY seconds while
# COMMAND runs, carrying the lock's fencing token and the progress COMMAND writes to
# $DRAVEN_PROGRESS_FILE (one line: STEP [PERCENT] [MESSAGE…]). When draven answers a heartbeat
# with 409 (the job was cancelled, or its lease ran out and the environment moved on) the runner
# stops COMMAND and exits 75 without reporting: the job is no longer this runner's to end.
# When COMMAND ends, it posts the signed final result (succeeded/failed) with the log link and
# the release id COMMAND wrote to $DRAVEN_RELEASE_FILE, if any, and exits with COMMAND's status.
#
# Environment (the pipeline templates in infra/pipelines/ set these):
#   DRAVEN_URL              draven's base URL (https://draven.example)
#   DRAVEN_RUNNER_SECRET    the project's runner secret (a CI secret; never echoed)
#   JOB_ID, DRAVEN_FENCING_TOKEN, ENV, REF, DRAVEN_TASK (deploy | rollback | deploy:info)
#   DRAVEN_LOG_URL          the run's page (default: from GitHub/GitLab/Bitbucket variables)
#   DRAVEN_HEARTBEAT_EVERY  seconds between heartbeats (default 10; keep it well under the lease)
#
# Signing (draven's runner HMAC): X-Draven-Timestamp: <unix seconds>,
# X-Draven-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + body)), computed with
# `openssl dgst -sha256` and od, the secret only ever on pipes (never in a process's argv).
# Needs: sh, curl, openssl, od.
set -u

: "${DRAVEN_URL:?set DRAVEN_URL}" "${DRAVEN_RUNNER_SECRET:?set DRAVEN_RUNNER_SECRET}"
: "${JOB_ID:?set JOB_ID}" "${DRAVEN_FENCING_TOKEN:?set DRAVEN_FENCING_TOKEN}"
EVERY=${DRAVEN_HEARTBEAT_EVERY:-10}
WORK=$(mktemp -d)
export DRAVEN_PROGRESS_FILE="${DRAVEN_PROGRESS_FILE:-$WORK/progress}"
export DRAVEN_RELEASE_FILE="${DRAVEN_RELEASE_FILE:-$WORK/release}"
export DRAVEN_TASK="${DRAVEN_TASK:-deploy}"
trap 'rm -rf "$WORK"' EXIT
[ $# -gt 0 ] || set -- deploy/run.sh

if [ -z "${DRAVEN_LOG_URL:-}" ]; then
    if [ -n "${GITHUB_RUN_ID:-}" ]; then DRAVEN_LOG_URL="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}/actions/runs/$GITHUB_RUN_ID"
    elif [ -n "${CI_JOB_URL:-}" ]; then DRAVEN_LOG_URL="$CI_JOB_URL"
    elif [ -n "${BITBUCKET_BUILD_NUMBER:-}" ]; then DRAVEN_LOG_URL="https://bitbucket.org/${BITBUCKET_REPO_FULL_NAME:-}/pipelines/results/$BITBUCKET_BUILD_NUMBER"
    fi
fi

# JSON string escaping for what COMMAND writes (backslash, quote; control characters dropped).
json_string() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# hmac_hex FILE: hex HMAC-SHA256 (RFC 2104) of FILE under $DRAVEN_RUNNER_SECRET. The key reaches
# openssl and od only through pipes: `openssl dgst -hmac KEY` would put it in argv, where every
# process on a shared CI host can read it.
hmac_hex() {
    if [ "$(printf '%s' "$DRAVEN_RUNNER_SECRET" | wc -c)" -gt 64 ]; then
        key=$(printf '%s' "$DRAVEN_RUNNER_SECRET" | openssl dgst -sha256 -binary | od -An -tu1 -v)
    else
        key=$(printf '%s' "$DRAVEN_RUNNER_SECRET" | od -An -tu1 -v)
    fi
    # shellcheck disable=SC2086 # the byte lists are meant to split
    inner=$( { key_block 54 $key; cat "$1"; } | openssl dgst -sha256 -binary | od -An -tu1 -v)
    # shellcheck disable=SC2086
    { key_block 92 $key; bytes $inner; } | openssl dgst -sha256 -r | cut -d' ' -f1
}

# key_block PAD BYTE...: the 64-byte HMAC block: the key's bytes XOR PAD, then PAD to 64 bytes.
key_block() {
    pad=$1; shift; n=0
    for b in "$@"; do printf "\\$(printf '%03o' $((b ^ pad)))"; n=$((n + 1)); done
    while [ $n -lt 64 ]; do printf "\\$(printf '%03o' "$pad")"; n=$((n + 1)); done
}

# bytes BYTE...: the bytes with these decimal values.
bytes() { for b in "$@"; do printf "\\$(printf '%03o' "$b")"; done; }

# post PATH BODY: signs BODY and posts it; prints the HTTP status.
post() {
    ts=$(date +%s)
    printf '%s.%s' "$ts" "$2" >"$WORK/signed"
    sig=$(hmac_hex "$WORK/signed")
    curl -sS -o "$WORK/answer" -w '%{http_code}' -X POST "$DRAVEN_URL$1" \
        -H 'Content-Type: application/json' -H "X-Draven-Timestamp: $ts" -H "X-Draven-Signature: v1=$sig" \
        --data-binary "$2" 2>/dev/null || echo 000
}

heartbeat() {
    progress=""
    if [ -s "$DRAVEN_PROGRESS_FILE" ]; then
        line=$(head -n 1 "$DRAVEN_PROGRESS_FILE")
        step=${line%% *}; rest=${line#"$step"}; rest=${rest# }
        percent=${rest%% *}
        case "$percent" in
            ''|*[!0-9]*) percent="" ;;
            *) rest=${rest#"$percent"}; rest=${rest# } ;;
        esac
        progress=",\"progress\":{\"step\":$(json_string "$step")"
        [ -n "$percent" ] && [ "$percent" -le 100 ] && progress="$progress,\"percent\":$percent"
        [ -n "$rest" ] && progress="$progress,\"message\":$(json_string "$rest")"
        progress="$progress}"
    fi
    post "/api/v1/jobs/$JOB_ID/heartbeat" "{\"fencing_token\":$DRAVEN_FENCING_TOKEN$progress}"
}

echo "draven-runner: job $JOB_ID ($DRAVEN_TASK of ${REF:-?} to ${ENV:-?})"
status=$(heartbeat)
if [ "$status" = 409 ]; then echo "draven-runner: job $JOB_ID no longer holds the lock; not starting" >&2; exit 75; fi

# In its own session and process group (setsid, when there is one), so stopping it stops
# everything it started.
if command -v setsid >/dev/null 2>&1; then setsid "$@" & else "$@" & fi
child=$!
while kill -0 "$child" 2>/dev/null; do
    waited=0
    while [ "$waited" -lt "$EVERY" ] && kill -0 "$child" 2>/dev/null; do sleep 1; waited=$((waited + 1)); done
    kill -0 "$child" 2>/dev/null || break
    status=$(heartbeat)
    case "$status" in
        200) ;;
        409) echo "draven-runner: draven ended job $JOB_ID (cancelled or superseded); stopping the deploy" >&2
             kill -TERM "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 75 ;;
        *) echo "draven-runner: heartbeat answered $status; going on" >&2 ;;
    esac
done
wait "$child"
code=$?

result=succeeded; [ "$code" -eq 0 ] || result=failed
body="{\"job_id\":$JOB_ID,\"fencing_token\":$DRAVEN_FENCING_TOKEN,\"result\":\"$result\""
[ -n "${DRAVEN_LOG_URL:-}" ] && body="$body,\"log_url\":$(json_string "$DRAVEN_LOG_URL")"
[ -s "$DRAVEN_RELEASE_FILE" ] && body="$body,\"release_id\":$(json_string "$(head -n 1 "$DRAVEN_RELEASE_FILE")")"
body="$body}"
status=$(post /hooks/runner "$body")
echo "draven-runner: reported $result ($status)"
exit "$code"
