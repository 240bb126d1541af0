#!/usr/bin/env bash
# Runs draven's fuzz targets (Tests/Fuzz/README.md). Usage, from the repository root:
#   Tests/Fuzz/run.sh [--smoke] SECONDS TARGET...
# For each target: every committed regression input once (Tests/Fuzz/regressions/TARGET), then
# libFuzzer for SECONDS over the committed seed corpus (Tests/Fuzz/corpus/TARGET). New inputs go
# to .build-fuzz/corpus/TARGET (kept between `make fuzz` runs), or to a temporary directory with
# --smoke (`make test`: the same bounded pass on every machine). Findings are written to
# .build-fuzz/findings/TARGET/; the run stops at the first. Prints the inputs executed per target.
set -uo pipefail
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
seconds=$1; shift
bin=${FUZZ_BIN:-.build-fuzz/debug/draven-fuzz}
[ -x "$bin" ] || { echo "run.sh: $bin is missing (make fuzz-build)"; exit 2; }
export SWIFT_BACKTRACE=enable=no  # the Swift backtracer would hold a crash for minutes; libFuzzer reports it
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
total=0
summary=()
for target in "$@"; do
  # TOMLKit (toml++ wrapper) leaks the strings it hands back; draven apply is a one-shot process.
  leaks=1; [ "$target" = toml ] && leaks=0
  export ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=0
  regressions=Tests/Fuzz/regressions/$target
  if compgen -G "$regressions/*" >/dev/null; then
    if ! "$bin" "$target" -runs=1 "$regressions"/* >"$scratch/$target.regressions.log" 2>&1; then
      cat "$scratch/$target.regressions.log"
      echo "fuzz $target: a committed regression input fails again ($regressions)"
      exit 1
    fi
  fi
  corpus=.build-fuzz/corpus/$target
  [ $smoke = 1 ] && corpus=$scratch/corpus-$target
  findings=.build-fuzz/findings/$target
  mkdir -p "$corpus" "$findings"
  dirs=("$corpus" "Tests/Fuzz/corpus/$target")
  [ -d "$regressions" ] && dirs+=("$regressions")
  log=$scratch/$target.log
  "$bin" "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1536 -print_final_stats=1 \
    -artifact_prefix="$findings/" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*corp: \([0-9]*\).*/cov \1, corpus \2/p')
  if [ $rc -ne 0 ]; then
    grep -v "^#\|^INFO\|^MS:\|Cannot export" "$log" | tail -60
    echo "fuzz $target: FINDING (exit $rc) after ${runs:-?} inputs; input saved in $findings/"
    echo "  reproduce: $bin $target $findings/<file>; keep it as a regression: cp it to $regressions/"
    exit 1
  fi
  total=$((total + ${runs:-0}))
  summary+=("$(printf 'fuzz %-11s %9s inputs in %ss (%s)' "$target" "${runs:-0}" "$seconds" "${cov:-?}")")
done
printf '%s\n' "${summary[@]}"
echo "fuzz: $total inputs over ${#summary[@]} targets, no finding"
