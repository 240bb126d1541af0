#!/bin/sh
# draven-runner version 2
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
# The log: COMMAND's output (stdout and stderr, one stream) is streamed to draven while it runs,
# in signed chunks (POST /hooks/runner/log: seq 1, 2, 3 …, at most 64 KiB each, cut at line ends),
# every $DRAVEN_LOG_EVERY seconds and once more, completely, before the final result; each chunk is
# also printed here, so the CI's own log shows the same. Any occurrence of the runner secret is
# replaced by *** before a chunk leaves this machine (draven masks it again on receipt), and
# COMMAND runs without DRAVEN_RUNNER_SECRET in its environment. A chunk draven did not answer is
# sent again, the same bytes under the same seq (a repeat is harmless); if draven refuses one,
# streaming stops and the deploy goes on; once draven says the log reached its cap (202), the rest
# is printed here only. COMMAND's output is kept in a temporary file until the runner exits.
# DRAVEN_LOG_STREAM=0 turns streaming off (the output then goes only to the CI's log).
#
# Environment (the pipeline templates in infra/pipelines/ set these):
#   DRAVEN_URL              draven's base URL (https://draven.example)
#   DRAVEN_RUNNER_SECRET    the project's runner secret (a CI secret; never echoed)
#   JOB_ID, DRAVEN_FENCING_TOKEN, ENV, REF, DRAVEN_TASK (deploy | rollback | deploy:info)
#   DRAVEN_LOG_URL          the run's page (default: from GitHub/GitLab/Bitbucket variables)
#   DRAVEN_HEARTBEAT_EVERY  seconds between heartbeats (default 10; keep it well under the lease)
#   DRAVEN_LOG_EVERY        seconds between log chunks (default 2); DRAVEN_LOG_STREAM=0: none
#
# Signing (draven's runner HMAC): X-Draven-Timestamp: <unix seconds>,
# X-Draven-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + body)), computed with
# `openssl dgst -sha256` and od, the secret only ever on pipes (never in a process's argv).
# Needs: sh, curl, openssl, od, awk, and head/tail/wc (POSIX, plus `head -c`: GNU, BusyBox and BSD have it).
set -u

: "${DRAVEN_URL:?set DRAVEN_URL}" "${DRAVEN_RUNNER_SECRET:?set DRAVEN_RUNNER_SECRET}"
: "${JOB_ID:?set JOB_ID}" "${DRAVEN_FENCING_TOKEN:?set DRAVEN_FENCING_TOKEN}"
EVERY=${DRAVEN_HEARTBEAT_EVERY:-10}
LOG_EVERY=${DRAVEN_LOG_EVERY:-2}
STREAM=${DRAVEN_LOG_STREAM:-1}
case "$EVERY" in ''|*[!0-9]*|0) EVERY=10 ;; esac
case "$LOG_EVERY" in ''|*[!0-9]*|0) LOG_EVERY=2 ;; esac
export DRAVEN_RUNNER_SECRET  # for the masking awk (ENVIRON); COMMAND runs without it
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
    printf '%s' "$2" >"$WORK/body"
    post_file "$1" "$WORK/body"
}

# post_file PATH FILE: signs the body in FILE and posts it; prints the HTTP status.
post_file() {
    ts=$(date +%s)
    { printf '%s.' "$ts"; cat "$2"; } >"$WORK/signed"
    sig=$(hmac_hex "$WORK/signed")
    curl -sS -o "$WORK/answer" -w '%{http_code}' -X POST "$DRAVEN_URL$1" \
        -H 'Content-Type: application/json' -H "X-Draven-Timestamp: $ts" -H "X-Draven-Signature: v1=$sig" \
        --data-binary "@$2" 2>/dev/null || echo 000
}

# -- the log --------------------------------------------------------------------------------------
OUT="$WORK/output"   # COMMAND's output, as it writes it
sent=0               # bytes of it made into chunks so far
seq=0                # the last chunk's seq
pending=""           # a chunk's body draven has not acknowledged yet (sent again as it is)
held=-1              # where a line without its newline was held back at the last flush
cut=0                # 1 once draven answered 202: the log reached its cap, nothing more is kept

# mask_to FILE NL: stdin with every occurrence of the runner secret replaced by ***, byte for byte
# otherwise (NL=0: the input does not end with a newline, and neither does the output). The
# secret reaches awk through its environment, never its argv; awk reads bytes (LC_ALL=C).
mask_to() {
    LC_ALL=C awk -v nl="$2" 'BEGIN { s = ENVIRON["DRAVEN_RUNNER_SECRET"]; n = length(s) }
        NR > 1 { printf "\n" }
        { line = $0; out = ""
          while (n > 0 && (i = index(line, s)) > 0) { out = out substr(line, 1, i - 1) "***"; line = substr(line, i + n) }
          printf "%s", out line }
        END { if (NR > 0 && nl) printf "\n" }' >"$1"
}

# next_chunk FINAL: makes the next chunk of what COMMAND wrote (up to 64 KiB, ending at a line's
# end unless FINAL=1, a line is longer than that, or it was held back once already) into $pending,
# and prints it to stdout. Returns 1 when there is nothing to send yet.
next_chunk() {
    [ -f "$OUT" ] || return 1
    size=$(wc -c <"$OUT" | tr -d ' ')
    [ "$size" -gt "$sent" ] || return 1
    tail -c +"$((sent + 1))" "$OUT" | head -c 65536 >"$WORK/piece"
    got=$(wc -c <"$WORK/piece" | tr -d ' ')
    [ "$got" -gt 0 ] || return 1
    take=$got nl=1
    if [ "$(tail -c 1 "$WORK/piece" | od -An -tu1 | tr -d ' ')" != 10 ]; then
        partial=$(tail -n 1 "$WORK/piece" | wc -c | tr -d ' ')
        if [ "$1" = 1 ] || [ "$held" = "$sent" ]; then
            nl=0   # all of it: the end of the output, or a line held back once already
        elif [ "$partial" -lt "$got" ]; then
            take=$((got - partial))   # up to the last newline; the rest waits for its line to end
            [ "$got" -lt 65536 ] && held=$((sent + take))
        elif [ "$got" -eq 65536 ]; then
            nl=0   # one line longer than a chunk
        else
            held=$sent
            return 1
        fi
    fi
    head -c "$take" "$WORK/piece" | mask_to "$WORK/masked" "$nl"
    sent=$((sent + take))
    seq=$((seq + 1))
    cat "$WORK/masked"
    { printf '{"job_id":%s,"fencing_token":%s,"seq":%s,"data":"' "$JOB_ID" "$DRAVEN_FENCING_TOKEN" "$seq"
      openssl base64 -A <"$WORK/masked"; printf '"}'; } >"$WORK/chunk"
    pending="$WORK/chunk"
}

# flush_log FINAL [MAX]: sends what COMMAND wrote, at most MAX chunks (default: all). Returns 1
# when draven could not be reached (the pending chunk is kept for the next try).
flush_log() {
    [ "$STREAM" = 1 ] || return 0
    count=0
    while [ "${2:-0}" = 0 ] || [ "$count" -lt "$2" ]; do
        if [ -z "$pending" ]; then next_chunk "$1" || return 0; fi
        count=$((count + 1))
        # Past the cap draven keeps nothing more: the rest goes to the CI's log only.
        if [ "$cut" = 1 ]; then pending=""; continue; fi
        status=$(post_file /hooks/runner/log "$pending")
        case "$status" in
            202) pending=""; cut=1
                 echo "draven-runner: the log reached draven's per-job cap; the rest is only in this log" >&2 ;;
            2??) pending="" ;;
            000|429|5??) return 1 ;;
            *) echo "draven-runner: draven refused log chunk $seq ($status: $(head -c 300 "$WORK/answer")); not streaming the log any more" >&2
               STREAM=0; pending=""; return 0 ;;
        esac
    done
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
# everything it started; without the runner secret in its environment; its output into $OUT
# when the log is streamed.
start() {
    unset DRAVEN_RUNNER_SECRET
    if command -v setsid >/dev/null 2>&1; then exec setsid "$@"; else exec "$@"; fi
}
if [ "$STREAM" = 1 ]; then
    : >"$OUT"
    ( start "$@" ) >"$OUT" 2>&1 &
else
    ( start "$@" ) &
fi
child=$!
# What COMMAND wrote and no chunk carried yet goes to the CI's log when the run is stopped (draven
# takes no more once the job has ended).
rest_to_ci_log() {
    if [ "$STREAM" = 1 ] && [ -f "$OUT" ]; then
        tail -c +"$((sent + 1))" "$OUT" | mask_to "$WORK/rest" 1; cat "$WORK/rest"
    fi
}
# The CI cancelling the run (SIGTERM or SIGINT to its processes): COMMAND is stopped, its output kept.
trap 'kill -TERM "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null
      rest_to_ci_log; exit 143' TERM INT
tick=0
while kill -0 "$child" 2>/dev/null; do
    sleep 1
    tick=$((tick + 1))
    kill -0 "$child" 2>/dev/null || break
    [ $((tick % LOG_EVERY)) -eq 0 ] && flush_log 0 16
    [ $((tick % EVERY)) -eq 0 ] || continue
    status=$(heartbeat)
    case "$status" in
        200) ;;
        409) echo "draven-runner: draven ended job $JOB_ID (cancelled or superseded); stopping the deploy" >&2
             kill -TERM "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null
             rest_to_ci_log; exit 75 ;;
        *) echo "draven-runner: heartbeat answered $status; going on" >&2 ;;
    esac
done
wait "$child"
code=$?

# The rest of the log, all of it, before the result (a few tries if draven is briefly unreachable).
tries=0
until flush_log 1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ]; then echo "draven-runner: could not send the rest of the log (chunk $seq)" >&2; break; fi
    sleep "$tries"
done
# The CI's log: the runner's own lines start on a line of their own.
if [ "$STREAM" = 1 ] && [ -s "$OUT" ] && [ "$(tail -c 1 "$OUT" | od -An -tu1 | tr -d ' ')" != 10 ]; then echo; fi

result=succeeded; [ "$code" -eq 0 ] || result=failed
body="{\"job_id\":$JOB_ID,\"fencing_token\":$DRAVEN_FENCING_TOKEN,\"result\":\"$result\""
[ -n "${DRAVEN_LOG_URL:-}" ] && body="$body,\"log_url\":$(json_string "$DRAVEN_LOG_URL")"
[ -s "$DRAVEN_RELEASE_FILE" ] && body="$body,\"release_id\":$(json_string "$(head -n 1 "$DRAVEN_RELEASE_FILE")")"
body="$body}"
status=$(post /hooks/runner "$body")
echo "draven-runner: reported $result ($status)"
exit "$code"
