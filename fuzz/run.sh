#!/usr/bin/env bash
# Fuzz Konductor's parsers with cargo-fuzz (libFuzzer) on nightly; see docs/fuzzing.md.
#
#   fuzz/run.sh [RUNS] [TARGET...]
#
# RUNS defaults to 10000000 (10 million executions per target); TARGET defaults to every
# target (tag_parser sdd_parser signature_parser tick_path), run one after the other in one process
# each. New inputs go to a scratch corpus under fuzz/target/work/<target> (git-ignored),
# seeded from the committed corpus fuzz/corpus/<target>, so a run never dirties the tree.
# A crash or panic is written to fuzz/artifacts/<target>/ and makes the script exit 1 after
# the remaining targets ran.
#
# Environment:
#   FUZZ_TOOLCHAIN    rustup toolchain (default: nightly)
#   FUZZ_TIMEOUT      seconds one input may take before it counts as a hang (default: 10)
#   FUZZ_MAX_LEN      largest input in bytes (default: 4096)
#   FUZZ_MAX_TIME     stop each target after this many seconds even below RUNS (default: none)
#   CARGO_TARGET_DIR  where to build (default: fuzz/target)
set -euo pipefail

runs=${1:-10000000}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(tag_parser sdd_parser signature_parser tick_path)
fi
toolchain=${FUZZ_TOOLCHAIN:-nightly}
timeout=${FUZZ_TIMEOUT:-10}
max_len=${FUZZ_MAX_LEN:-4096}

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$fuzz_dir")
work=$fuzz_dir/target/work
mkdir -p "$work"
cd "$repo"

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: rustup toolchain install $toolchain && cargo install --locked cargo-fuzz" >&2
  exit 2
fi

echo "== building ($(rustc "+$toolchain" --version))"
cargo "+$toolchain" fuzz build --fuzz-dir "$fuzz_dir" >"$work/build.log" 2>&1 || {
  tail -40 "$work/build.log" >&2
  exit 2
}

status=0
summary=()
for t in "${targets[@]}"; do
  corpus=$work/$t
  mkdir -p "$corpus"
  log=$work/$t.log
  extra=()
  if [ -n "${FUZZ_MAX_TIME:-}" ]; then
    extra+=("-max_total_time=$FUZZ_MAX_TIME")
  fi
  echo "== $t: $runs runs (log: $log)"
  # Build first so that the wall time below is fuzzing time only.
  if ! cargo "+$toolchain" fuzz build --fuzz-dir "$fuzz_dir" "$t" >>"$work/build.log" 2>&1; then
    status=1
    summary+=("$t: BUILD FAILED, see $work/build.log")
    echo "${summary[-1]}"
    continue
  fi
  start=$(date +%s)
  rc=0
  # One libFuzzer process (no -jobs/-workers: those fork workers that log to ./fuzz-N.log).
  cargo "+$toolchain" fuzz run --fuzz-dir "$fuzz_dir" "$t" "$corpus" "$fuzz_dir/corpus/$t" -- \
    -runs="$runs" -max_len="$max_len" -timeout="$timeout" -print_final_stats=1 \
    "${extra[@]}" >"$log" 2>&1 || rc=$?
  wall=$(($(date +%s) - start))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    status=1
    crash="CRASH (exit $rc): see $log and $fuzz_dir/artifacts/$t/"
    grep -E 'panicked at|SUMMARY|Test unit written|ERROR: libFuzzer' "$log" | head -5 || true
  else
    crash="no crash"
  fi
  line="$t: execs=${execs:-?} fuzzing=${secs:-?}s wall=${wall}s exec/s=${rate:-?} | ${done_line:-no DONE line} | $crash"
  echo "$line"
  summary+=("$line")
done

echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), $(rustc "+$toolchain" --version))"
printf '%s\n' "${summary[@]}"
exit $status
