#!/usr/bin/env bash
# Konductor at scale: tick and push cost, and peak memory, against the number of tags of
# history, before and after `konductor gc --keep 50`. Figures, not pass/fail: nothing here
# fails because something is slow. See benches/README.md, "Scale".
#
#   make bench-scale                                   # if the Makefile has the target
#   KONDUCTOR_BIN_DIR=/x/release bash benches/scale.sh
#   SCALE_SIZES="1000 100000" bash benches/scale.sh
#
# Knobs (environment):
#   KONDUCTOR_BIN_DIR   where `konductor` and `locomotive` are (default target/release,
#                       relative to the repository root)
#   SCALE_SIZES         history sizes in tags (default "1000 100000 1000000"); ratios are
#                       largest/smallest
#   SCALE_RUNS          timed runs per measurement (default 5); the median is reported
#   SCALE_KEEP_TRAINS   `gc --keep` (default 50)
#   SCALE_GC_TIMEOUT    seconds one `konductor gc` may run (default 3600). A gc that runs out
#                       is stopped; the rest of its work is then done directly on the server
#                       (emulated), and the table says so. A size whose gc is predicted to
#                       take longer than this is emulated without running gc: predicted
#                       linearly from a gc that was stopped, or from one at most 10× smaller.
#   SCALE_CMD_TIMEOUT   seconds any other konductor/locomotive command may run (default 600)
#   SCALE_SETUP_TIMEOUT seconds the fixture of one size may take (default 900); a size whose
#                       setup runs out is reported as skipped
#   SCALE_OUT           where the table goes (default benches/scale-results.md)
#   SCALE_KEEP=1        keep the work directory (the daemon is still stopped)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${KONDUCTOR_BIN_DIR:-target/release}"
[[ "$bin" == /* ]] || bin="$root/$bin"
K="$bin/konductor"
L="$bin/locomotive"
for b in "$K" "$L"; do
  if [[ ! -x "$b" ]]; then
    echo "benches/scale.sh: $b not found; run \`cargo build --release --bins\` or set KONDUCTOR_BIN_DIR" >&2
    exit 2
  fi
done
for t in git timeout awk sort; do
  command -v "$t" >/dev/null || {
    echo "benches/scale.sh: \`$t\` is required" >&2
    exit 2
  }
done
if [[ ! -x /usr/bin/time ]]; then
  echo "benches/scale.sh: /usr/bin/time is required for peak memory (apt-get install -y time)" >&2
  exit 2
fi

read -r -a SIZES <<<"${SCALE_SIZES:-1000 100000 1000000}"
RUNS="${SCALE_RUNS:-5}"
KEEP="${SCALE_KEEP_TRAINS:-50}"
GC_TIMEOUT="${SCALE_GC_TIMEOUT:-3600}"
CMD_TIMEOUT="${SCALE_CMD_TIMEOUT:-600}"
SETUP_TIMEOUT="${SCALE_SETUP_TIMEOUT:-900}"
OUT="${SCALE_OUT:-$root/benches/scale-results.md}"
for n in "${SIZES[@]}" "$RUNS" "$KEEP" "$GC_TIMEOUT" "$CMD_TIMEOUT" "$SETUP_TIMEOUT"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || {
    echo "benches/scale.sh: \`$n\` is not a positive whole number" >&2
    exit 2
  }
done

tmp0="${TMPDIR:-/tmp}"
work="$(mktemp -d "$tmp0/konductor-scale.XXXXXX")"
log="$work/scale.log"
srv="$work/srv"
mkdir -p "$srv" "$work/tmp"
# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"

cleanup() {
  stop_daemon
  if [[ -n "${SCALE_KEEP:-}" ]]; then
    echo "benches/scale.sh: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Isolation: no user config, no ambient remote or tokens, temporary files in $work. Every
# konductor command runs from $work, which is not inside a git repository (else the cache
# would borrow that repository's objects).
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="Scale Dev" GIT_AUTHOR_EMAIL="dev@scale.invalid"
export GIT_COMMITTER_NAME="Scale Dev" GIT_COMMITTER_EMAIL="dev@scale.invalid"
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
export KONDUCTOR_IDENTITY="Scale Cron <cron@scale.invalid>"
export NO_COLOR=1 LC_ALL=C TMPDIR="$work/tmp"
unset KONDUCTOR_REMOTE KONDUCTOR_TOKEN GITHUB_TOKEN KONDUCTOR_TICK KONDUCTOR_CACHE_DIR \
  KONDUCTOR_SIGNING_KEY KONDUCTOR_ALLOWED_SIGNERS
cd "$work"

say() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$log" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
now_ns() { date +%s%N; }
human() { awk -v n="$1" 'BEGIN { if (n >= 1000000 && n % 1000000 == 0) printf "%dM", n / 1000000;
  else if (n >= 1000 && n % 1000 == 0) printf "%dk", n / 1000; else printf "%d", n }'; }
mb() { awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.0f", k / 1024; else printf "n/a" }'; }
json_field() { # json_field FILE KEY: a top-level string field
  if command -v jq >/dev/null; then
    jq -r --arg k "$2" '.[$k] // empty' "$1" 2>/dev/null || true
  else
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' \
      "$1" "$2" 2>/dev/null || true
  fi
}

UPTIME_START="$(uptime)"
declare -A R     # size:phase:metric -> value
NOTES=() # free text, verbatim errors
note() {
  NOTES+=("$*")
  say "NOTE: $*"
}
excerpt() { # excerpt FILE: the first lines of a command's output, for the notes
  head -c 1500 "$1" | sed -e 's/`/'"'"'/g' | tr '\n' ' ' | sed -e 's/  */ /g'
}

# ---------------------------------------------------------------------------------------
# The graph of every train: one leaf and a virtual target. The long trigger timeout keeps
# the live train's unreported trigger from being re-triggered while a big size runs.
SDD_YAML='# benches/scale.sh: one leaf, one virtual target
a: {needs: [], trigger_timeout: 30d}
done: {needs: [a], virtual: true}
'

new_bare() { # new_bare DIR: a bare repository configured like a git host; prints its commit
  local d="$1" blob tree commit
  git init -q --bare "$d"
  git -C "$d" config uploadpack.allowFilter true
  git -C "$d" config uploadpack.allowAnySHA1InWant true
  git -C "$d" config gc.auto 0
  blob="$(printf '%s' "$SDD_YAML" | git -C "$d" hash-object -w --stdin)"
  tree="$(printf '100644 blob %s\tsdd.yaml\n' "$blob" | git -C "$d" mktree)"
  # A root commit: libgit2 pushes from a shallow cache fail when the train commit has a
  # parent (benches/README.md, "Known effects"); that is not what this bench measures.
  commit="$(git -C "$d" commit-tree "$tree" -m "scale bench train commit")"
  git -C "$d" update-ref refs/heads/main "$commit"
  git -C "$d" symbolic-ref HEAD refs/heads/main
  echo "$commit"
}

# history_refs NTRAINS COMMIT: `create` lines for finished trains 1..NTRAINS, 4 tags each.
# Lightweight tags: no tagger time, which the planner reads as 0 (checked below with
# `konductor status`).
history_refs() {
  awk -v n="$1" -v c="$2" 'BEGIN { for (i = 1; i <= n; i++) {
    p = "create refs/tags/release=" i ".0"
    printf "%s %s\n%s=a.1 %s\n%s=a.1=started %s\n%s=a.1=success %s\n", p, c, p, c, p, c, p, c } }'
}

# make_history BARE NTRAINS COMMIT: the tags, packed. With git >= 2.45 the refs are written
# into a scratch repository with the reftable backend (update-ref on a files backend writes
# one loose ref per tag: minutes at 1M) and `packed-refs` is written from it; older git
# falls back to update-ref + pack-refs in the bare repository.
make_history() {
  local bare="$1" n="$2" c="$3" scratch="$work/scratch"
  rm -rf "$scratch"
  if git init -q --bare --ref-format=reftable "$scratch" 2>>"$log"; then
    echo "$bare/objects" >"$scratch/objects/info/alternates"
    history_refs "$n" "$c" | git -C "$scratch" update-ref --stdin
    {
      echo "# pack-refs with: peeled fully-peeled sorted "
      git -C "$scratch" for-each-ref --format='%(objectname) %(refname)' refs/tags/ |
        sort -k2,2
    } >"$bare/packed-refs.new"
    mv "$bare/packed-refs.new" "$bare/packed-refs"
    rm -rf "$scratch"
  else
    history_refs "$n" "$c" | git -C "$bare" -c core.fsync=none update-ref --stdin
  fi
  git -C "$bare" pack-refs --all
}

# emulate_gc BARE LIVE: the state `gc --keep $KEEP` leaves, made directly on the server: the
# tags of every train older than the newest $KEEP finished ones are removed. All those tags
# are in packed-refs, so they are filtered out of it (update-ref --stdin deletes take about
# 9 minutes per million refs here, one lock file each).
emulate_gc() {
  local bare="$1" live="$2"
  git -C "$bare" pack-refs --all
  awk -v lim="$((live - 1 - KEEP))" '
    /^\^/ { if (!drop) print; next }
    {
      drop = 0
      if (index($2, "refs/tags/release=") == 1) {
        split(substr($2, 19), a, "[.=]")
        if (a[1] ~ /^[0-9]+$/ && a[1] + 0 <= lim) drop = 1
      }
      if (!drop) print
    }' "$bare/packed-refs" >"$bare/packed-refs.new"
  mv "$bare/packed-refs.new" "$bare/packed-refs"
  git -C "$bare" pack-refs --all
}

export work log
export -f history_refs make_history

count_refs() { git -C "$1" for-each-ref --format=x | wc -l; }
old_train_tags() { # old_train_tags BARE LIVE: tags of trains gc should have collected
  git -C "$1" for-each-ref --format='%(refname)' 'refs/tags/' | awk -v lim="$(($2 - 1 - KEEP))" '
    index($0, "refs/tags/release=") == 1 { split(substr($0, 19), a, "[.=]");
      if (a[1] ~ /^[0-9]+$/ && a[1] + 0 <= lim) n++ } END { print n + 0 }'
}
old_train_roots() { # train tags (release=N.0) of trains gc should have collected
  git -C "$1" for-each-ref --format='%(refname)' 'refs/tags/' | awk -v lim="$(($2 - 1 - KEEP))" '
    /^refs\/tags\/release=[0-9]+\.[0-9]+$/ { split(substr($0, 19), a, "."); if (a[1] + 0 <= lim) n++ }
    END { print n + 0 }'
}

# ---------------------------------------------------------------------------------------
# measure KEY PREP CHECK CMD...: RUNS timed runs of CMD (each after PREP, a function or
# ""). Median wall time in ms, and the highest peak RSS (KB) that /usr/bin/time saw: the
# largest single process of the command's tree (konductor itself or one of its git
# children), not their sum. CHECK (a function: rc, output file) says whether a run did what
# it should; the first unexpected run is noted verbatim.
measure() {
  local key="$1" prep="$2" check="$3" i t0 t1 rc rss maxrss=0 bad=0 times=()
  shift 3
  R[$key:load]="$(load1)"
  for ((i = 0; i < RUNS; i++)); do
    [[ -z "$prep" ]] || "$prep"
    rc=0
    t0="$(now_ns)"
    /usr/bin/time -f '%M' -o "$work/rss" timeout -k 5 "$CMD_TIMEOUT" "$@" \
      >"$work/out" 2>&1 || rc=$?
    t1="$(now_ns)"
    cat "$work/out" >>"$log"
    times+=("$(((t1 - t0) / 1000))")
    rss="$(tail -n 1 "$work/rss")"
    [[ "$rss" =~ ^[0-9]+$ ]] && ((rss > maxrss)) && maxrss="$rss"
    if ! "$check" "$rc" "$work/out"; then
      if ((bad == 0)); then
        if ((rc == 124)); then
          note "$key: timed out after ${CMD_TIMEOUT}s: \`$*\`"
        else
          note "$key: unexpected result (exit $rc) from \`${*##*/}\`: $(excerpt "$work/out")"
        fi
      fi
      bad=$((bad + 1))
    fi
  done
  R[$key:ms]="$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.0f", m / 1000 }')"
  R[$key:rss]="$maxrss"
  ((bad == 0)) || R[$key:bad]="$bad/$RUNS runs failed"
  say "$key: median ${R[$key:ms]} ms, peak RSS $(mb "$maxrss") MB, load ${R[$key:load]}${R[$key:bad]:+, ${R[$key:bad]}}"
}

check_noop_tick() { # a tick that finds nothing to push
  [[ "$1" == 0 ]] && ! grep -Eq ': (trigger|timeout|skip) ' "$2"
}
check_started() { [[ "$1" == 0 ]] && grep -q "=a.1=started: created" "$2"; }

# State of the size being measured (used by the PREP functions).
cur_bare=""
cur_live=""
delete_state_tag() {
  git -C "$cur_bare" update-ref -d "refs/tags/release=$cur_live.0=a.1=started" 2>/dev/null || true
}

# measure_all SIZE PHASE URL: the three measurements, each after one untimed warm-up run.
measure_all() {
  local s="$1" ph="$2" url="$3" c="$work/c-tick-$1" trig="release=$cur_live.0=a.1"
  R[$s:$ph:refs]="$(count_refs "$cur_bare")"
  env KONDUCTOR_CACHE_DIR="$c" "$K" tick --remote "$url" >>"$log" 2>&1 || true
  measure "$s:$ph:tick" "" check_noop_tick env KONDUCTOR_CACHE_DIR="$c" "$K" tick --remote "$url"
  env KONDUCTOR_CACHE_DIR="$c" "$K" tick --train "$cur_live.0" --remote "$url" >>"$log" 2>&1 || true
  measure "$s:$ph:train" "" check_noop_tick \
    env KONDUCTOR_CACHE_DIR="$c" "$K" tick --train "$cur_live.0" --remote "$url"
  delete_state_tag
  "$L" set-step-state --state-name started --triggering-tag "$trig" --remote "$url" >>"$log" 2>&1 || true
  measure "$s:$ph:push" delete_state_tag check_started \
    "$L" set-step-state --state-name started --triggering-tag "$trig" --remote "$url"
  delete_state_tag
}

# ---------------------------------------------------------------------------------------
gc_ref_size=""  # the largest size whose gc ran, and how long it took (or would have)
gc_ref_secs=""
gc_ref_stopped=0

run_size() {
  local s="$1" ntr bare url commit t0 setup_s out st live rc gc_s old roots left arch predicted
  ntr=$((s / 4))
  ((ntr > KEEP + 1)) || ntr=$((KEEP + 2))
  bare="$srv/h$s.git"
  url="git://127.0.0.1:$port/h$s.git"
  say "== size $s: $ntr finished trains ($((ntr * 4)) tags) + 1 live train; load $(load1)"
  R[$s:uptime0]="$(uptime)"
  t0="$(now_ns)"
  commit="$(new_bare "$bare")"
  # shellcheck disable=SC2016 # expanded by the inner bash
  if ! timeout -k 5 "$SETUP_TIMEOUT" bash -c 'set -euo pipefail; make_history "$@"' _ \
    "$bare" "$ntr" "$commit" >>"$log" 2>&1; then
    note "size $s: creating the history failed or took longer than ${SETUP_TIMEOUT}s; size skipped"
    R[$s:skipped]=1
    rm -rf "$bare"
    return 0
  fi
  say "size $s: $(count_refs "$bare") refs on the server after $((($(now_ns) - t0) / 1000000000)) s"

  # The live train, made by the real binaries: opened, then its leaf triggered.
  rc=0
  out="$(timeout -k 5 "$CMD_TIMEOUT" env KONDUCTOR_CACHE_DIR="$work/c-setup-$s" \
    "$K" start --sha "$commit" --remote "$url" 2>>"$log")" || rc=$?
  echo "$out" >>"$log"
  if ((rc != 0)) || [[ ! "$out" =~ ^[0-9]+\.0$ ]]; then
    note "size $s: \`konductor start\` failed (exit $rc): $out $(tail -n 3 "$log" | tr '\n' ' ')"
    R[$s:skipped]=1
    return 0
  fi
  live="${out%.0}"
  cur_bare="$bare"
  cur_live="$live"
  ((live == ntr + 1)) || note "size $s: \`konductor start\` opened $out, expected $((ntr + 1)).0"
  rc=0
  out="$(timeout -k 5 "$CMD_TIMEOUT" env KONDUCTOR_CACHE_DIR="$work/c-setup-$s" \
    "$K" tick --train "$live.0" --remote "$url" 2>&1)" || rc=$?
  echo "$out" >>"$log"
  if ((rc != 0)) || [[ "$out" != *"trigger release=$live.0=a.1 "*created* ]]; then
    note "size $s: the first \`konductor tick --train $live.0\` did not trigger \`a.1\` (exit $rc): $out"
    R[$s:skipped]=1
    return 0
  fi
  setup_s=$((($(now_ns) - t0) / 1000000000))
  R[$s:setup]="$setup_s"
  say "size $s: setup took ${setup_s} s; live train $live.0"
  if ((setup_s > SETUP_TIMEOUT)); then
    note "size $s: setup took ${setup_s}s (> ${SETUP_TIMEOUT}s); size skipped"
    R[$s:skipped]=1
    return 0
  fi

  # Lightweight history tags have no tagger time: check they still plan as finished.
  rc=0
  timeout -k 5 "$CMD_TIMEOUT" env KONDUCTOR_CACHE_DIR="$work/c-status-$s" \
    "$K" status --train "$((live - 1)).0" --json --remote "$url" >"$work/status.json" 2>>"$log" || rc=$?
  st="$(json_field "$work/status.json" state)"
  R[$s:lw]="train $((live - 1)).0: \`${st:-?}\`"
  if [[ "$st" != succeeded ]]; then
    note "size $s: lightweight history train $((live - 1)).0 plans as \`${st:-?}\` (exit $rc), not \`succeeded\`: $(excerpt "$work/status.json")"
  fi

  measure_all "$s" before "$url"

  # gc, for real when it can finish in time; else (or for what it left) emulated.
  R[$s:gc]="emulated"
  predicted=0
  # Trusted when the reference gc was stopped by the timeout, or is at most 10× smaller.
  if [[ -n "$gc_ref_size" ]] && { ((gc_ref_stopped)) || ((gc_ref_size * 10 >= s)); }; then
    predicted=$((gc_ref_secs * s / gc_ref_size))
  fi
  if ((predicted > GC_TIMEOUT)); then
    R[$s:gcnote]="not run: predicted ≥ ${predicted} s (linear from $(human "$gc_ref_size") tags) > ${GC_TIMEOUT} s"
    note "size $s: \`konductor gc\` not run: linear extrapolation from the $(human "$gc_ref_size")-tag run predicts at least ${predicted}s (> SCALE_GC_TIMEOUT=${GC_TIMEOUT}s). The after-gc row is EMULATED: old trains' tags were deleted directly on the server."
    emulate_gc "$bare" "$live"
  else
    say "size $s: konductor gc --keep $KEEP (at most ${GC_TIMEOUT} s)"
    R[$s:gc:load]="$(load1)"
    rc=0
    t0="$(now_ns)"
    /usr/bin/time -f '%M' -o "$work/rss" timeout -k 10 "$GC_TIMEOUT" \
      env KONDUCTOR_CACHE_DIR="$work/c-gc-$s" "$K" gc --keep "$KEEP" --remote "$url" \
      >"$work/gc.out" 2>&1 || rc=$?
    gc_s=$((($(now_ns) - t0) / 1000000))
    cat "$work/gc.out" >>"$log"
    R[$s:gc:ms]="$gc_s"
    R[$s:gc:rss]="$(tail -n 1 "$work/rss")"
    old=$((live - 1 - KEEP))
    left="$(old_train_tags "$bare" "$live")"
    roots="$(old_train_roots "$bare" "$live")"
    arch="no"
    git -C "$bare" rev-parse -q --verify refs/konductor/archive >/dev/null && arch="yes"
    if ((rc == 0)) && ((left == 0)); then
      R[$s:gc]="real"
      R[$s:gcnote]="archived $old trains ($((old * 4)) tags) in $(awk -v m="$gc_s" 'BEGIN { printf "%.1f", m / 1000 }') s"
      gc_ref_size="$s"
      gc_ref_secs=$(((gc_s + 999) / 1000))
      say "size $s: gc: $(tail -n 1 "$work/gc.out")"
    else
      if ((rc == 124 || rc == 137)); then
        R[$s:gcnote]="stopped after ${GC_TIMEOUT} s: $((old - roots)) of $old old trains deleted, archive ref pushed: $arch"
        note "size $s: \`konductor gc --keep $KEEP\` did not finish within ${GC_TIMEOUT}s (stopped). By then the archive ref was pushed: $arch; $((old - roots)) of $old old trains had their train tag deleted; $left of $((old * 4)) old tags were left. Peak RSS so far $(mb "${R[$s:gc:rss]}") MB (children killed by the stop are not counted). Output: $(excerpt "$work/gc.out")"
        gc_ref_size="$s"
        gc_ref_stopped=1
        if ((old - roots > 0)); then
          gc_ref_secs=$((GC_TIMEOUT * old / (old - roots)))
          R[$s:gcnote]+="; at that rate the whole gc needs ≈ $((gc_ref_secs / 60)) min"
        else
          gc_ref_secs="$GC_TIMEOUT"
        fi
      else
        R[$s:gcnote]="failed (exit $rc), $left old tags left"
        note "size $s: \`konductor gc --keep $KEEP\` failed (exit $rc) after $((gc_s / 1000))s, $left old tags left: $(excerpt "$work/gc.out")"
      fi
      note "size $s: the after-gc row is EMULATED: what gc left of the old trains' tags ($left tags) was deleted directly on the server."
      emulate_gc "$bare" "$live"
    fi
  fi
  left="$(old_train_tags "$bare" "$live")"
  ((left == 0)) || note "size $s: after gc, $left tags of old trains are still on the server"

  measure_all "$s" after "$url"
  R[$s:uptime1]="$(uptime)"
  rm -rf "$bare" "$work/c-setup-$s" "$work/c-status-$s" "$work/c-tick-$s" "$work/c-gc-$s"
}

# ---------------------------------------------------------------------------------------
start_daemon
say "konductor $("$K" --version | cut -d' ' -f2), $(git --version), sizes: ${SIZES[*]}, runs: $RUNS"
say "uptime: $UPTIME_START"
for s in "${SIZES[@]}"; do
  run_size "$s"
done
UPTIME_END="$(uptime)"

# ---------------------------------------------------------------------------------------
# The table.
cell_ms() { # cell_ms KEY
  local v="${R[$1:ms]:-}"
  [[ -n "$v" ]] || {
    echo "n/a"
    return
  }
  echo "$v${R[$1:bad]:+ (${R[$1:bad]})}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f×", a / b; else printf "n/a" }'; }
verdict() { awk -v r="${1%×}" 'BEGIN { if (r == "n/a") print "n/a"; else if (r + 0 <= 1.5) print "met"; else print "**missed**" }'; }

done_sizes=()
for s in "${SIZES[@]}"; do [[ -n "${R[$s:skipped]:-}" ]] || done_sizes+=("$s"); done

{
  echo "# Konductor at scale: tick and push vs history size, before and after gc"
  echo
  echo "Made by \`benches/scale.sh\` on $(date -u +%Y-%m-%dT%H:%MZ), konductor $("$K" --version | cut -d' ' -f2), $(git --version)."
  echo "$(nproc) cores. Median of $RUNS runs (bash loop, \`date +%s%N\`), warm konductor cache,"
  echo "git:// remote (\`git daemon\` on loopback). Peak RSS: \`/usr/bin/time -f %M\`, the largest"
  echo "single process of the command (konductor or one of its git children)."
  echo
  echo "- uptime at start: \`${UPTIME_START}\`"
  echo "- uptime at end: \`${UPTIME_END}\`"
  echo
  echo "History: \`S/4\` finished trains of 4 **lightweight** tags each (train, trigger \`a.1\`,"
  echo "\`started\`, \`success\`), all packed, plus one live train made by \`konductor start\` and"
  echo "\`konductor tick\` (annotated tags) whose trigger \`a.1\` has no state yet. \"after gc\" is"
  echo "after \`konductor gc --keep $KEEP\`: real where the gc column says so, else emulated (the old"
  echo "trains' tags deleted directly on the server; no archive ref unless a stopped gc pushed it)."
  echo
  echo "| size (tags) | gc | refs on server | tick (all) ms | tick --train ms | locomotive push ms | peak RSS MB (tick / --train / push) | load |"
  echo "|---|---|---|---|---|---|---|---|"
  for s in "${SIZES[@]}"; do
    if [[ -n "${R[$s:skipped]:-}" ]]; then
      echo "| $(human "$s") | skipped | | | | | | |"
      continue
    fi
    for ph in before after; do
      phase="before gc"
      [[ $ph == after ]] && phase="after gc (${R[$s:gc]})"
      echo "| $(human "$s") | $phase | ${R[$s:$ph:refs]:-n/a} | $(cell_ms "$s:$ph:tick") | $(cell_ms "$s:$ph:train") | $(cell_ms "$s:$ph:push") | $(mb "${R[$s:$ph:tick:rss]:-}") / $(mb "${R[$s:$ph:train:rss]:-}") / $(mb "${R[$s:$ph:push:rss]:-}") | ${R[$s:$ph:tick:load]:-} |"
    done
  done
  echo
  if ((${#done_sizes[@]} >= 2)); then
    lo="${done_sizes[0]}"
    hi="${done_sizes[${#done_sizes[@]} - 1]}"
    echo "Ratios $(human "$hi") / $(human "$lo"); the goal is ≤ 1.5× after gc."
    echo
    echo "| measure | before gc | after gc | goal ≤ 1.5× after gc |"
    echo "|---|---|---|---|"
    for m in tick:ms train:ms push:ms tick:rss train:rss push:rss; do
      case "$m" in
        tick:ms) label="tick (all) wall" ;;
        train:ms) label="tick --train wall" ;;
        push:ms) label="locomotive push wall" ;;
        tick:rss) label="tick (all) peak RSS" ;;
        train:rss) label="tick --train peak RSS" ;;
        push:rss) label="locomotive push peak RSS" ;;
      esac
      b="$(ratio "${R[$hi:before:$m]:-}" "${R[$lo:before:$m]:-}")"
      a="$(ratio "${R[$hi:after:$m]:-}" "${R[$lo:after:$m]:-}")"
      echo "| $label | $b | $a | $(verdict "$a") |"
    done
    echo
  fi
  echo "| size (tags) | gc --keep $KEEP | wall | peak RSS MB | load | setup s |"
  echo "|---|---|---|---|---|---|"
  for s in "${SIZES[@]}"; do
    [[ -z "${R[$s:skipped]:-}" ]] || continue
    if [[ -n "${R[$s:gc:ms]:-}" ]]; then
      w="$(awk -v m="${R[$s:gc:ms]}" 'BEGIN { printf "%.1f s", m / 1000 }')"
    else
      w="not run"
    fi
    echo "| $(human "$s") | ${R[$s:gcnote]:-} | $w | $(mb "${R[$s:gc:rss]:-}") | ${R[$s:gc:load]:-} | ${R[$s:setup]:-} |"
  done
  echo
  echo "Lightweight history check (\`konductor status --train N.0\` on the newest finished train):"
  for s in "${SIZES[@]}"; do
    [[ -z "${R[$s:lw]:-}" ]] || echo "$(human "$s"): ${R[$s:lw]}."
  done
  echo
  echo "### Notes from this run"
  echo
  if ((${#NOTES[@]} == 0)); then
    echo "None: every command did what it should."
  else
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
  for s in "${SIZES[@]}"; do
    [[ -z "${R[$s:uptime0]:-}" ]] || echo "- size $(human "$s"): uptime before \`${R[$s:uptime0]}\`; after \`${R[$s:uptime1]:-}\`"
  done
} >"$work/table.md"

cat "$work/table.md"
if cp "$work/table.md" "$OUT" 2>/dev/null; then
  say "table written to $OUT"
else
  say "cannot write $OUT; the table is above"
fi
