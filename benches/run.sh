#!/usr/bin/env bash
# Konductor benchmarks: figures, not pass/fail. See benches/README.md.
#
#   make bench                       # builds release binaries, then runs this script
#   KONDUCTOR_BIN_DIR=/x/release bash benches/run.sh
#
# Everything is created in a temporary directory and removed at the end. The results table
# (markdown) goes to stdout and to benches/results.md; progress and command output go to
# stderr and to a log that is kept only if something failed.
#
# Knobs (environment):
#   KONDUCTOR_BIN_DIR  where `konductor` and `locomotive` are (default: target/release,
#                      relative to the repository root)
#   BENCH_RUNS         timed runs per measurement (default 10); the median is reported
#   BENCH_SIZES        history sizes in tags (default "1000 100000"); the ratio column is
#                      last/first
#   BENCH_BIG_MB       size of the big train commit's tree in MB (default 100)
#   BENCH_SECTIONS     which sections to run (default "1 2 3 4 5 6")
#   BENCH_OUT          where to write the table (default benches/results.md)
#   BENCH_NO_HYPERFINE=1  time with a bash loop even if hyperfine is installed
#   BENCH_KEEP=1       keep the work directory (for debugging; the daemon is still stopped)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${KONDUCTOR_BIN_DIR:-target/release}"
[[ "$bin" == /* ]] || bin="$root/$bin"
K="$bin/konductor"
L="$bin/locomotive"
for b in "$K" "$L"; do
  if [[ ! -x "$b" ]]; then
    echo "benches/run.sh: $b not found; run \`cargo build --release --bins\` or set KONDUCTOR_BIN_DIR" >&2
    exit 2
  fi
done

RUNS="${BENCH_RUNS:-10}"
read -r -a SIZES <<<"${BENCH_SIZES:-1000 100000}"
BIG_MB="${BENCH_BIG_MB:-100}"
SECTIONS=" ${BENCH_SECTIONS:-1 2 3 4 5 6} "
OUT="${BENCH_OUT:-$root/benches/results.md}"

tmp0="${TMPDIR:-/tmp}"
work="$(mktemp -d "$tmp0/konductor-bench.XXXXXX")"
log="$work/bench.log"
srv="$work/srv"
mkdir -p "$srv" "$work/tmp" "$work/empty"
# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"
failed=0

cleanup() {
  local rc=$?
  stop_daemon
  if ((failed)) || ((rc != 0)); then
    cp "$log" "$tmp0/konductor-bench-$$.log" 2>/dev/null &&
      echo "benches/run.sh: some steps failed; log kept at $tmp0/konductor-bench-$$.log" >&2
  fi
  if [[ -n "${BENCH_KEEP:-}" ]]; then
    echo "benches/run.sh: BENCH_KEEP is set; work directory kept at $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# A clean, predictable environment: no user git config, no inherited remote or token.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="Bench Dev" GIT_AUTHOR_EMAIL="dev@bench.invalid"
export GIT_COMMITTER_NAME="Bench Dev" GIT_COMMITTER_EMAIL="dev@bench.invalid"
export KONDUCTOR_IDENTITY="Bench Cron <cron@bench.invalid>"
export NO_COLOR=1 LC_ALL=C TMPDIR="$work/tmp"
unset KONDUCTOR_REMOTE KONDUCTOR_TOKEN GITHUB_TOKEN KONDUCTOR_TICK KONDUCTOR_CACHE_DIR

say() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$log" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
have() { command -v "$1" >/dev/null 2>&1; }
q() { printf '%q ' "$@"; }

json() { # json FILE JQ-FILTER
  if have jq; then
    jq -r "$2" "$1"
  else
    python3 - "$1" "$2" <<'PY'
import json, sys
# Minimal stand-in for the few jq paths used here: .a.b[0].c
d = json.load(open(sys.argv[1]))
for part in sys.argv[2].lstrip('.').replace('[', '.').replace(']', '').split('.'):
    if part:
        d = d[int(part)] if part.isdigit() else d[part]
print(d)
PY
  fi
}

# ---------------------------------------------------------------------------------------
# Timing: `measure KEY PREP CMD` stores the median wall time in ms as R[KEY] (and the load
# average when it started as LOAD[KEY]). PREP runs before every run, untimed. A failing
# command records "fail" and the bench goes on.
declare -A R LOAD
timer="bash loop"
if have hyperfine && [[ -z "${BENCH_NO_HYPERFINE:-}" ]]; then
  timer="hyperfine $(hyperfine --version | cut -d' ' -f2)"
fi

measure() {
  local key="$1" prep="$2" cmd="$3" j="$work/hf.json" ms
  LOAD[$key]="$(load1)"
  {
    echo "== measure $key"
    echo "   prep: $prep"
    echo "   cmd:  $cmd"
  } >>"$log"
  if [[ "$timer" == hyperfine* ]]; then
    if hyperfine --style none --shell bash --runs "$RUNS" --prepare "${prep:-:}" \
      --export-json "$j" "$cmd" >>"$log" 2>&1; then
      ms="$(json "$j" '.results[0].median' | awk '{ printf "%.1f", $1 * 1000 }')"
    else
      ms="fail"
    fi
  else
    local i t0 t1 times=()
    ms=""
    for ((i = 0; i < RUNS; i++)); do
      bash -c "${prep:-:}" >>"$log" 2>&1 || true
      t0="$(date +%s%N)"
      if ! bash -c "$cmd" >>"$log" 2>&1; then ms="fail"; break; fi
      t1="$(date +%s%N)"
      times+=("$(((t1 - t0) / 1000))")
    done
    if [[ -z "$ms" ]]; then
      ms="$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }')"
    fi
  fi
  [[ "$ms" == fail ]] && failed=1
  R[$key]="$ms"
  say "$key: $ms ms (load ${LOAD[$key]})"
}

# `measure_interleaved PREP KEY1 CMD1 KEY2 CMD2 …`: like `measure`, but the commands take
# turns (run 1 of each, then run 2 of each, …), so that a change in the machine's load
# weighs on all of them alike: for ratios on a shared machine. Each run is timed in this
# shell (a subshell, no extra process) with EPOCHREALTIME; PREP runs before every run.
measure_interleaved() {
  local prep="$1" i k n key
  shift
  local -a keys=() cmds=()
  while (($# >= 2)); do keys+=("$1"); cmds+=("$2"); shift 2; done
  local -A times=() bad=()
  for key in "${keys[@]}"; do LOAD[$key]="$(load1)"; done
  echo "== measure_interleaved ${keys[*]}" >>"$log"
  for ((i = 0; i < RUNS; i++)); do
    for ((k = 0; k < ${#keys[@]}; k++)); do
      key="${keys[k]}"
      [[ -n "${bad[$key]:-}" ]] && continue
      bash -c "${prep:-:}" >>"$log" 2>&1 || true
      local t0="$EPOCHREALTIME"
      if ! (eval "${cmds[k]}") >>"$log" 2>&1; then bad[$key]=1; continue; fi
      local t1="$EPOCHREALTIME"
      times[$key]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000000 }') "
    done
  done
  for key in "${keys[@]}"; do
    if [[ -n "${bad[$key]:-}" ]]; then
      R[$key]="fail"
      failed=1
    else
      # shellcheck disable=SC2086
      R[$key]="$(printf '%s\n' ${times[$key]} | sort -n | awk '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }')"
    fi
    say "$key: ${R[$key]} ms (load ${LOAD[$key]}; interleaved)"
  done
}

val() { echo "${R[$1]:-n/a}"; }
ratio() { # ratio A B -> A/B formatted, or n/a
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a + 0 > 0 && b + 0 > 0) printf "%.2f×", a / b; else printf "n/a" }'
}
verdict() { # verdict RATIO GOAL
  awk -v r="${1%×}" -v g="$2" 'BEGIN {
    if (r == "n/a" || r == "") printf "n/a"; else if (r + 0 <= g + 0) printf "met"; else printf "**missed**" }'
}
human() { awk -v n="$1" 'BEGIN { if (n >= 1000 && n % 1000 == 0) printf "%dk", n / 1000; else printf "%d", n }'; }
fmt_ms() { [[ "$1" == fail || "$1" == n/a ]] && echo "$1" || echo "$1 ms"; }

# ---------------------------------------------------------------------------------------
new_bare() { # new_bare DIR: a bare repository configured like a git host
  git init -q --bare "$1"
  git -C "$1" symbolic-ref HEAD refs/heads/main
  git -C "$1" config uploadpack.allowFilter true
  git -C "$1" config uploadpack.allowAnySHA1InWant true
  git -C "$1" config receive.advertisePushOptions false
  git -C "$1" config gc.auto 0
}

# The step graph of the history trains: a fixed copy of the repository's sdd.yaml as it
# was when these benchmarks were written, so that results stay comparable.
SDD="$work/sdd.yaml"
cat >"$SDD" <<'YAML'
unit-tests: []
lint: []
build_serving_image: []
build_worker_image: []
deploy_serving_staging_k8s:
  needs: [unit-tests, lint, build_serving_image, build_worker_image]
  timeout: 30m
verify_serving_staging:
  needs: [deploy_serving_staging_k8s]
  retries: 1
  timeout: 30m
complete-verification:
  needs: [verify_serving_staging]
  virtual: true
require-manual-unblock-before-prod-deploy:
  needs: [complete-verification]
  manual: true
  if_changed: [flavors.yaml]
deploy_serving_prod_k8s:
  needs: [require-manual-unblock-before-prod-deploy]
  timeout: 30m
verify_serving_prod:
  needs: [deploy_serving_prod_k8s]
  retries: 1
  timeout: 30m
complete-deploy:
  needs: [verify_serving_prod]
  virtual: true
YAML
JOBS=(unit-tests lint build_serving_image build_worker_image deploy_serving_staging_k8s
  verify_serving_staging deploy_serving_prod_k8s verify_serving_prod)
GATE=require-manual-unblock-before-prod-deploy
TAGS_PER_TRAIN=$((1 + 3 * ${#JOBS[@]} + 1))

emit_tag() { # emit_tag NAME MARK TIME: one annotated tag in fast-import syntax
  local msg="$1"$'\n\nby: Konductor Cron <cron@bench.invalid>\n'
  printf 'tag %s\nfrom :%d\ntagger Konductor Cron <cron@bench.invalid> %d +0000\ndata %d\n%s\n' \
    "$1" "$2" "$3" "${#msg}" "$msg"
}

# History stream: trains 1..live-1 finished (every job started and succeeded, the gate
# skipped), each on its own commit; the live train `live` has unit-tests started and the
# other three leaves done, so a tick has nothing to do. All tags are annotated.
history_stream() { # history_stream NTRAINS NOW
  local ntr="$1" now="$2" live=$(($1 + 1)) n t m s app cmsg
  printf 'blob\nmark :1\ndata %d\n' "$(wc -c <"$SDD")"
  cat "$SDD"
  printf '\n'
  for ((n = 1; n <= live; n++)); do
    t=$((now - (live - n) * 3600))
    m=$((n + 1))
    app="release $n"$'\n'
    cmsg="release $n"$'\n'
    printf 'commit refs/heads/main\nmark :%d\ncommitter Bench Dev <dev@bench.invalid> %d +0000\ndata %d\n%s\nM 100644 :1 sdd.yaml\nM 100644 inline app.txt\ndata %d\n%s\n' \
      "$m" "$t" "${#cmsg}" "$cmsg" "${#app}" "$app"
    if ((n < live)); then
      emit_tag "release=$n.0" "$m" "$t"
      for s in "${JOBS[@]}"; do
        emit_tag "release=$n.0=$s.1" "$m" "$((t + 1))"
        emit_tag "release=$n.0=$s.1=started" "$m" "$((t + 2))"
        emit_tag "release=$n.0=$s.1=success" "$m" "$((t + 3))"
      done
      emit_tag "release=$n.0=$GATE=skipped" "$m" "$((t + 4))"
    fi
  done
  m=$((live + 1))
  emit_tag "release=$live.0" "$m" "$now"
  emit_tag "release=$live.0=unit-tests.1" "$m" "$now"
  emit_tag "release=$live.0=unit-tests.1=started" "$m" "$now"
  for s in lint build_serving_image build_worker_image; do
    emit_tag "release=$live.0=$s.1" "$m" "$now"
    emit_tag "release=$live.0=$s.1=started" "$m" "$now"
    emit_tag "release=$live.0=$s.1=success" "$m" "$now"
  done
}

# make_history BARE NTAGS: prints the live train number. git fast-import writes one loose
# ref per tag, and packing 100,000 loose refs takes minutes; so the import goes into a
# scratch repository with the reftable backend (git >= 2.45), and the bare repository gets
# its pack and a packed-refs file written from it (what `git pack-refs --all` would write).
make_history() {
  local bare="$1" ntags="$2" ntr scratch="$work/scratch.git"
  ntr=$(((ntags + TAGS_PER_TRAIN - 1) / TAGS_PER_TRAIN))
  new_bare "$bare"
  rm -rf "$scratch"
  if git init -q --bare --ref-format=reftable "$scratch" 2>>"$log"; then
    history_stream "$ntr" "$(date +%s)" |
      git -C "$scratch" -c core.fsync=none fast-import --quiet >>"$log" 2>&1
    {
      echo '# pack-refs with: peeled fully-peeled sorted '
      git -C "$scratch" for-each-ref \
        --format='%(objectname) %(refname)%(if)%(*objectname)%(then)'$'\n''^%(*objectname)%(end)'
    } >"$bare/packed-refs"
    mv "$scratch"/objects/pack/* "$bare/objects/pack/"
    rm -rf "$scratch"
  else
    history_stream "$ntr" "$(date +%s)" |
      git -C "$bare" -c core.fsync=none fast-import --quiet >>"$log" 2>&1
    git -C "$bare" -c core.fsync=none pack-refs --all
  fi
  echo $((ntr + 1))
}

tick_ok() { # tick_ok OUTPUT: a no-op tick does nothing
  ! grep -qE ': (trigger|timeout|skip|evaluate) ' <<<"$1" && grep -q 'nothing to do' <<<"$1"
}

NOTES=()
note() { NOTES+=("$*"); say "note: $*"; }
oneline() { local x="${1//$'\n'/ }"; echo "${x//\`/\'}"; }

RES="$work/results.md"
out() { printf '%s\n' "$*" >>"$RES"; }

uptime_start="$(uptime)"
say "work dir $work; timer: $timer; $RUNS runs each; sizes: ${SIZES[*]}"
say "uptime at start: $uptime_start"
start_daemon

# ---------------------------------------------------------------------------------------
# Section 1 (and 5a/5b, and the history row of section 2): per history size.
declare -A NTAGS ADV
if [[ "$SECTIONS" == *" 1 "* || "$SECTIONS" == *" 5 "* ]]; then
  for size in "${SIZES[@]}"; do
    bare="$srv/h$size.git"
    say "history $size: creating annotated tags with git fast-import"
    t0="$(date +%s%N)"
    live="$(make_history "$bare" "$size")"
    NTAGS[$size]="$(git -C "$bare" for-each-ref refs/tags | wc -l)"
    say "history $size: ${NTAGS[$size]} tags, live train $live.0 (built in $((($(date +%s%N) - t0) / 1000000)) ms)"
    ADV[$size]="$(git -c protocol.version=0 ls-remote "git://127.0.0.1:$port/h$size.git" | wc -c)"

    # Sanity: the newest finished train succeeded and the live one has nothing to do.
    chk="$work/chk-$size"
    st="$(KONDUCTOR_CACHE_DIR="$chk" "$K" status --train "$((live - 1)).0" --remote "$bare" --json 2>>"$log" |
      sed -n 's/^  "state": "\([a-z]*\)",$/\1/p')"
    if [[ "$st" != succeeded ]]; then
      say "history $size: WARNING: train $((live - 1)).0 is '$st', not succeeded: the fixture does not match the planner"
      failed=1
    fi
    rm -rf "$chk"

    for tr in git path; do
      if [[ $tr == git ]]; then url="git://127.0.0.1:$port/h$size.git"; else url="$bare"; fi
      cache="$work/cache-$size-$tr"
      base="KONDUCTOR_CACHE_DIR=$(q "$cache")"
      if [[ "$SECTIONS" == *" 1 "* ]]; then
        o="$(env KONDUCTOR_CACHE_DIR="$cache" "$K" tick --train "$live.0" --remote "$url" 2>>"$log")" || true
        echo "$o" >>"$log"
        tick_ok "$o" || { say "WARNING: warm-up tick --train did something: $o"; failed=1; }
        o="$(env KONDUCTOR_CACHE_DIR="$cache" "$K" tick --remote "$url" 2>>"$log")" || true
        echo "$o" >>"$log"
        tick_ok "$o" || { say "WARNING: warm-up tick did something: $o"; failed=1; }
        measure "1i:$tr:$size" "" "$base $(q "$K" tick --train "$live.0" --remote "$url") >/dev/null"
        measure "1ii:$tr:$size" "" "$base $(q "$K" tick --remote "$url") >/dev/null"
        cold="$work/cold-$size-$tr"
        measure "1iv:$tr:$size" "rm -rf $(q "$cold")" \
          "KONDUCTOR_CACHE_DIR=$(q "$cold") $(q "$K" tick --remote "$url") >/dev/null"
        rm -rf "$cold"
      fi
      if [[ "$SECTIONS" == *" 5 "* ]]; then
        # 5a: protocol v2 prefix read of one train; cold (empty repository) and warm.
        p5="$work/p5-$size-$tr"
        spec="refs/tags/release=$live.*:refs/tags/release=$live.*"
        fetch="git -C $(q "$p5") -c protocol.version=2 fetch -q --no-tags --depth=1 $(q "$url" "$spec")"
        measure "5a-cold:$tr:$size" "rm -rf $(q "$p5") && git init -q --bare $(q "$p5")" "$fetch"
        measure "5a-warm:$tr:$size" "" "$fetch"
        rm -rf "$p5"
        # 5b: the full advertisement (v0), a v2 listing without prefix, and konductor's
        # cold start (libgit2 lists every ref once, then prefix reads).
        measure "5b-v0:$tr:$size" "" "git -c protocol.version=0 ls-remote $(q "$url") >/dev/null"
        measure "5b-v2:$tr:$size" "" "git -c protocol.version=2 ls-remote $(q "$url") >/dev/null"
        cold="$work/cold5-$size-$tr"
        measure "5b-status:$tr:$size" "rm -rf $(q "$cold")" \
          "KONDUCTOR_CACHE_DIR=$(q "$cold") $(q "$K" status --horizon 1 --remote "$url") >/dev/null"
        rm -rf "$cold"
      fi
      if [[ "$SECTIONS" == *" 1 "* ]]; then
        # (iii) a tick that pushes one trigger: lint.1 and its states are removed, and the
        # trigger the tick pushes is deleted again (remote and cache) before every run.
        git -C "$bare" tag -d "release=$live.0=lint.1" "release=$live.0=lint.1=started" \
          "release=$live.0=lint.1=success" >>"$log" 2>&1 || true
        trig="release=$live.0=lint.1"
        crepo="$(ls -d "$cache"/*/repo.git)"
        prep="git -C $(q "$bare") tag -d $(q "$trig") >/dev/null 2>&1; git --git-dir=$(q "$crepo") update-ref -d $(q "refs/tags/$trig") >/dev/null 2>&1; true"
        bash -c "$prep"
        o="$(env KONDUCTOR_CACHE_DIR="$cache" "$K" tick --train "$live.0" --remote "$url" 2>>"$log")" || true
        echo "$o" >>"$log"
        if [[ "$o" != *"trigger $trig "*": created"* ]]; then
          say "WARNING: the pushing tick did not push $trig: $o"
          failed=1
        fi
        measure "1iii:$tr:$size" "$prep" "$base $(q "$K" tick --train "$live.0" --remote "$url") >/dev/null"
        # (v) the same with a cold cache (an ephemeral CI runner).
        coldp="$work/coldp-$size-$tr"
        prep5="rm -rf $(q "$coldp"); git -C $(q "$bare") tag -d $(q "$trig") >/dev/null 2>&1; true"
        bash -c "$prep5"
        o="$(env KONDUCTOR_CACHE_DIR="$coldp" "$K" tick --train "$live.0" --remote "$url" 2>&1)" || true
        echo "$o" >>"$log"
        if [[ "$o" == *"trigger $trig "*": created"* ]]; then
          measure "1v:$tr:$size" "$prep5" \
            "KONDUCTOR_CACHE_DIR=$(q "$coldp") $(q "$K" tick --train "$live.0" --remote "$url") >/dev/null"
        else
          R[1v:$tr:$size]="fail"
          LOAD[1v:$tr:$size]="$(load1)"
          note "cold \`tick --train\` pushing one trigger on the $(human "$size")-tag remote over $tr failed: $(oneline "$o")"
          failed=1
        fi
        rm -rf "$coldp"
        # Put lint.1 back as it was (trigger present, started and success too).
        bash -c "$prep"
        for s in "" "=started" "=success"; do
          git -C "$bare" tag -a -m "lint.1$s" "$trig$s" "release=$live.0^{commit}" >>"$log" 2>&1 || true
        done
      fi
    done

    if [[ "$SECTIONS" == *" 2 "* ]]; then
      # Section 2 on the history remote: locomotive reports `success` for unit-tests.1 of
      # the live train (whose commit, unlike the small and big repositories' train commits,
      # has a parent), against a plain push of the same tag from a checkout (no tags).
      st="release=$live.0=unit-tests.1=success"
      co="$work/co-$size"
      git clone -q --no-tags --single-branch --branch main "$bare" "$co" >>"$log" 2>&1
      git -C "$co" tag -a -m "release=$live.0=unit-tests.1 success" "$st" HEAD
      git -C "$co" fetch -q origin "refs/tags/release=$live.0=unit-tests.1:refs/tags/release=$live.0=unit-tests.1" >>"$log" 2>&1
      del="git -C $(q "$bare") tag -d $(q "$st") >/dev/null 2>&1; true"
      for tr in git path; do
        if [[ $tr == git ]]; then url="git://127.0.0.1:$port/h$size.git"; else url="$bare"; fi
        bash -c "$del"
        o="$(cd "$work/empty" && "$L" set-step-state --state-name success --triggering-tag "release=$live.0=unit-tests.1" --remote "$url" 2>&1)" || true
        echo "$o" >>"$log"
        [[ "$o" == *": created"* ]] || {
          note "locomotive on the $(human "$size")-tag remote over $tr failed: $(oneline "$o")"
          failed=1
        }
        # Interleaved; from the checkout: it has the trigger tag, as a CI checkout of it does.
        measure_interleaved "$del" \
          "2loco:hist$size:$tr" "cd $(q "$work/empty") && $(q "$L" set-step-state --state-name success --triggering-tag "release=$live.0=unit-tests.1" --remote "$url") >/dev/null" \
          "2push:hist$size:$tr" "git -C $(q "$co") push -q $(q "$url" "refs/tags/$st:refs/tags/$st")" \
          "2co:hist$size:$tr" "cd $(q "$co") && $(q "$L" set-step-state --state-name success --triggering-tag "release=$live.0=unit-tests.1" --remote "$url") >/dev/null"
      done
      bash -c "$del"
      rm -rf "$co"
    fi
  done
fi

# ---------------------------------------------------------------------------------------
# Section 2: locomotive without a checkout vs a plain git push, small and big repository.
declare -A OBJKB
make_train_repo() { # make_train_repo NAME MB: bare $srv/NAME.git, checkout $work/NAME-work,
  # train 1.0 opened and its leaves triggered by konductor itself.
  local name="$1" mb="$2" w="$work/$1-work" i j
  new_bare "$srv/$name.git"
  git init -q -b main "$w"
  cp "$SDD" "$w/sdd.yaml"
  printf 'serving:\n  replicas: 3\n' >"$w/flavors.yaml"
  printf 'print("hello")\n' >"$w/app.py"
  if ((mb > 0)); then
    # mb files of 1 MB of random data, plus 5,000 small files in 50 directories (so that
    # the trees weigh something too).
    mkdir -p "$w/data"
    for ((i = 1; i <= mb; i++)); do
      head -c 1048576 /dev/urandom >"$w/data/blob$i.bin"
    done
    for ((i = 1; i <= 50; i++)); do
      mkdir -p "$w/src/module$i"
      for ((j = 1; j <= 100; j++)); do
        printf 'module %d file %d\n' "$i" "$j" >"$w/src/module$i/file$j.txt"
      done
    done
  fi
  git -C "$w" add -A
  git -C "$w" commit -q -m "release with $mb MB of data"
  git -C "$w" push -q "$srv/$name.git" HEAD:refs/heads/main
  local c="$work/setup-cache-$name"
  KONDUCTOR_CACHE_DIR="$c" "$K" start --sha "$(git -C "$w" rev-parse HEAD)" --remote "$srv/$name.git" >>"$log" 2>&1
  KONDUCTOR_CACHE_DIR="$c" "$K" tick --train 1.0 --remote "$srv/$name.git" >>"$log" 2>&1
  rm -rf "$c"
}

if [[ "$SECTIONS" == *" 2 "* || "$SECTIONS" == *" 5 "* ]]; then
  say "creating the small repository and the ${BIG_MB} MB one"
  make_train_repo small 0
  make_train_repo big "$BIG_MB"
  OBJKB[big]="$(du -sk "$srv/big.git/objects" | cut -f1)"
fi

if [[ "$SECTIONS" == *" 2 "* ]]; then
  trig="release=1.0=unit-tests.1"
  st="$trig=started"
  for name in small big; do
    w="$work/$name-work"
    git -C "$w" tag -a -m "$trig started" "$st" HEAD
    for tr in git path; do
      if [[ $tr == git ]]; then url="git://127.0.0.1:$port/$name.git"; else url="$srv/$name.git"; fi
      del="git -C $(q "$srv/$name.git") tag -d $(q "$st") >/dev/null 2>&1; true"
      bash -c "$del"
      o="$(cd "$work/empty" && "$L" set-step-state --state-name started --triggering-tag "$trig" --remote "$url" 2>&1)" || true
      echo "$o" >>"$log"
      [[ "$o" == *": created"* ]] || { say "WARNING: locomotive did not create $st on $url: $o"; failed=1; }
      # The checkout fetches the trigger tag, as a CI checkout of it does. (The runs without
      # a checkout start in an empty directory, and the git push pushes one refspec.)
      git -C "$w" fetch -q "$url" "refs/tags/$trig:refs/tags/$trig" >>"$log" 2>&1 || true
      bash -c "$del"
      o="$(cd "$w" && GIT_TRACE=1 "$L" set-step-state --state-name started --triggering-tag "$trig" --remote "$url" 2>&1)" || true
      echo "$o" >>"$log"
      if grep -qE "'fetch'|upload-pack" <<<"$o"; then
        note "locomotive from the $name checkout over $tr fetched: the checkout path was not taken"
        failed=1
      fi
      # Interleaved (no checkout, git push, from the checkout, …): the ratios hold under
      # a changing load.
      measure_interleaved "$del" \
        "2loco:$name:$tr" "cd $(q "$work/empty") && $(q "$L" set-step-state --state-name started --triggering-tag "$trig" --remote "$url") >/dev/null" \
        "2push:$name:$tr" "git -C $(q "$w") push -q $(q "$url" "refs/tags/$st:refs/tags/$st")" \
        "2co:$name:$tr" "cd $(q "$w") && $(q "$L" set-step-state --state-name started --triggering-tag "$trig" --remote "$url") >/dev/null"
      bash -c "$del"
    done
  done
  left="$(find "$work/tmp" -maxdepth 1 -name 'konductor-*' | wc -l)"
  ((left == 0)) || say "WARNING: locomotive left $left temporary repositories behind"
fi

# ---------------------------------------------------------------------------------------
# Section 5c: fetching one commit of the big repository, three ways.
declare -A FETCHKB
if [[ "$SECTIONS" == *" 5 "* ]]; then
  url="git://127.0.0.1:$port/big.git"
  for f in blob:none tree:0 full; do
    d="$work/f5-${f%%:*}"
    filt=""
    [[ $f == full ]] || filt="--filter=$f"
    cmd="git -C $(q "$d") fetch -q --no-tags --depth=1 $filt $(q "$url" "refs/tags/release=1.0:refs/tags/release=1.0")"
    measure "5c:$f" "rm -rf $(q "$d") && git init -q --bare $(q "$d")" "$cmd"
    FETCHKB[$f]="$(du -sk "$d/objects" 2>/dev/null | cut -f1)"
    rm -rf "$d"
  done
fi

# ---------------------------------------------------------------------------------------
# Section 3: ticks to finish vs graph depth: `konductor simulate`, then real ticks against
# a bare repository whose post-receive hook plays an instant CI.
declare -A DEPTH SIMT REALT REALW INSTT INSTW
G="$work/graphs"
mkdir -p "$G"
cp "$SDD" "$G/sdd.yaml"
{
  echo "s01: []"
  for i in 2 3 4 5 6 7 8 9 10; do printf 's%02d: [s%02d]\n' "$i" $((i - 1)); done
  printf 'done:\n  needs: [s10]\n  virtual: true\n'
} >"$G/chain10.yaml"
{
  ws=()
  for i in $(seq -w 1 32); do echo "w$i: []"; ws+=("w$i"); done
  joined="${ws[*]}"
  printf 'fan-in:\n  needs: [%s]\n' "${joined// /, }"
  printf 'done:\n  needs: [fan-in]\n  virtual: true\n'
} >"$G/wide32.yaml"
GRAPHS=("sdd.yaml:complete-verification" "chain10.yaml:done" "wide32.yaml:done")

# real_run GRAPH TARGET INSTANT: sets RUN_TICKS (cron ticks that pushed something) and
# RUN_WALL (seconds from start to target reached).
real_run() {
  local graph="$1" target="$2" instant="$3" d
  d="$work/s3-${graph%.yaml}-$instant"
  mkdir -p "$d/jobs"
  new_bare "$d/origin.git"
  cat >"$d/job.sh" <<JOB
#!/usr/bin/env bash
# An instant CI job: report started, then success.
set -uo pipefail
trap 'rm -f "$d/jobs/\$1.running"' EXIT
export KONDUCTOR_CACHE_DIR="$d/jobcache" KONDUCTOR_IDENTITY="Bench CI <ci@bench.invalid>"
"$L" set-step-state --state-name started --triggering-tag "\$1" --remote "$d/origin.git"
tick=()
if [[ "$instant" == 1 ]]; then tick=(--tick); fi
"$L" set-step-state --state-name success --triggering-tag "\$1" --remote "$d/origin.git" "\${tick[@]}"
JOB
  cat >"$d/origin.git/hooks/post-receive" <<HOOK
#!/usr/bin/env bash
unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_PUSH_OPTION_COUNT
while read -r old new ref; do
  tag="\${ref#refs/tags/}"
  if [[ "\$old" =~ ^0+\$ && "\$tag" =~ ^release=[0-9]+\\.[0-9]+=[A-Za-z0-9_-]+\\.[0-9]+\$ ]]; then
    : > "$d/jobs/\$tag.running"
    setsid nohup bash "$d/job.sh" "\$tag" >>"$d/jobs/\$tag.log" 2>&1 < /dev/null &
  fi
done
HOOK
  chmod +x "$d/origin.git/hooks/post-receive"
  git init -q -b main "$d/work"
  cp "$G/$graph" "$d/work/sdd.yaml"
  git -C "$d/work" add -A
  git -C "$d/work" commit -q -m "graph $graph"
  git -C "$d/work" push -q "$d/origin.git" HEAD:refs/heads/main
  export KONDUCTOR_CACHE_DIR="$d/cache"
  local t0 i n state o
  t0="$(date +%s%N)"
  "$K" start --sha "$(git -C "$d/work" rev-parse HEAD)" --remote "$d/origin.git" >>"$log" 2>&1
  RUN_TICKS=0
  state=""
  for ((i = 0; i < 60; i++)); do
    o="$("$K" tick --train 1.0 --target "$target" --json --remote "$d/origin.git" 2>>"$log")" || true
    echo "$o" >"$d/tick.json"
    state="$(json "$d/tick.json" '.trains[0].state' 2>/dev/null || echo error)"
    [[ "$state" == succeeded ]] && break
    n="$(grep -o '"outcome":"created"' <<<"$o" | wc -l)"
    ((n > 0)) && RUN_TICKS=$((RUN_TICKS + 1))
    # Wait (bounded) until every job, and every job those jobs started, has finished.
    local w
    for ((w = 0; w < 1200; w++)); do
      compgen -G "$d/jobs/*.running" >/dev/null || break
      sleep 0.05
    done
    [[ "$state" == running ]] || break
  done
  RUN_WALL="$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')"
  unset KONDUCTOR_CACHE_DIR
  cat "$d"/jobs/*.log >>"$log" 2>/dev/null || true
  if [[ "$state" != succeeded ]]; then
    say "WARNING: real run of $graph (instant=$instant) ended '$state' after $i ticks"
    RUN_TICKS="fail"
    failed=1
  fi
}

if [[ "$SECTIONS" == *" 3 "* ]]; then
  for gt in "${GRAPHS[@]}"; do
    g="${gt%%:*}"
    target="${gt#*:}"
    "$K" simulate --sdd "$G/$g" --target "$target" --json >"$work/sim.json" 2>>"$log"
    DEPTH[$g]="$(json "$work/sim.json" '.depth')"
    SIMT[$g]="$(json "$work/sim.json" '.ticks | length' 2>/dev/null ||
      python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["ticks"]))' "$work/sim.json")"
    say "simulate $g → $target: depth ${DEPTH[$g]}, ${SIMT[$g]} ticks; real run (cron ticks only)"
    real_run "$g" "$target" 0
    REALT[$g]="$RUN_TICKS"
    REALW[$g]="$RUN_WALL"
    say "real $g: $RUN_TICKS ticks, $RUN_WALL s; again with locomotive --tick"
    real_run "$g" "$target" 1
    INSTT[$g]="$RUN_TICKS"
    INSTW[$g]="$RUN_WALL"
    say "real $g with --tick: $RUN_TICKS ticks, $RUN_WALL s"
  done
fi

# ---------------------------------------------------------------------------------------
# Section 4: the demo, with and without instant advance, with a 2 s cron.
declare -A DEMO
if [[ "$SECTIONS" == *" 4 "* ]]; then
  for dt in 0 1; do
    say "scripts/demo.sh with DEMO_TICK=$dt DEMO_TICK_INTERVAL=2"
    dd="$work/demo$dt"
    if timeout 900 env DEMO_DIR="$dd" KONDUCTOR_BIN_DIR="$bin" DEMO_TICK="$dt" DEMO_TICK_INTERVAL=2 \
      bash "$root/scripts/demo.sh" >"$work/demo$dt.out" 2>&1; then
      # The demo's last summary line: "... took X s (DEMO_TICK=N)".
      DEMO[line$dt]="$(grep -E 'took [0-9.]+ s' "$work/demo$dt.out" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')"
      DEMO[$dt]="$(grep -oE 'took [0-9.]+ s' <<<"${DEMO[line$dt]}" | grep -oE '[0-9.]+ s' || echo '?')"
    else
      DEMO[$dt]="fail"
      failed=1
    fi
    DEMO[ticks$dt]="$(grep -c '^  tick: ' "$work/demo$dt.out" || true)"
    cat "$work/demo$dt.out" >>"$log"
    say "demo DEMO_TICK=$dt: ${DEMO[$dt]}"
    # Let the demo's detached jobs finish before the directory goes.
    for ((w = 0; w < 100; w++)); do
      pgrep -f "$dd/job.sh" >/dev/null 2>&1 || break
      sleep 0.1
    done
  done
fi

uptime_end="$(uptime)"
say "uptime at end: $uptime_end"

# ---------------------------------------------------------------------------------------
# The table.
first="${SIZES[0]}"
last="${SIZES[${#SIZES[@]} - 1]}"
: >"$RES"
out "# Konductor benchmarks"
out ""
out "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $(git --version); timer: $timer, median of $RUNS runs"
out "- binaries: \`$bin\` ($("$K" --version 2>/dev/null || echo '?'))"
out "- uptime at start: \`${uptime_start# }\`"
out "- uptime at end: \`${uptime_end# }\`"
out "- the \`load\` columns give the 1-minute load average when each measurement started; other builds share this machine"
out ""

if [[ "$SECTIONS" == *" 1 "* ]]; then
  out "## 1. tick vs history size"
  out ""
  hdr="| tick | remote |"
  sep="|---|---|"
  for s in "${SIZES[@]}"; do
    hdr+=" $(human "$s") tags (load) |"
    sep+="---|"
  done
  hdr+=" $(human "$last")/$(human "$first") | goal ≤ 1.5× |"
  sep+="---|---|"
  out "History: annotated tags (git fast-import), $TAGS_PER_TRAIN per finished train, each train on its own commit, all refs packed (\`packed-refs\` with peeled lines, as \`git pack-refs --all\` writes it). Live train: the newest number, with unit-tests started and the other leaves done. Actual tag counts: $(for s in "${SIZES[@]}"; do printf '%s → %s; ' "$(human "$s")" "${NTAGS[$s]:-?}"; done)v0 advertisement: $(for s in "${SIZES[@]}"; do printf '%s → %s KB; ' "$(human "$s")" "$((${ADV[$s]:-0} / 1024))"; done)"
  out ""
  out "$hdr"
  out "$sep"
  for m in "1i:no-op \`tick --train N.0\` (warm)" "1ii:no-op \`tick\` (horizon 20, warm)" \
    "1iii:\`tick --train N.0\` pushing one trigger (warm)" "1iv:no-op \`tick\` with a cold cache" \
    "1v:\`tick --train N.0\` pushing one trigger, cold cache"; do
    k="${m%%:*}"
    label="${m#*:}"
    for tr in git path; do
      row="| $label | $([[ $tr == git ]] && echo 'git://' || echo path) |"
      for s in "${SIZES[@]}"; do row+=" $(fmt_ms "$(val "$k:$tr:$s")") (${LOAD[$k:$tr:$s]:-?}) |"; done
      r="$(ratio "$(val "$k:$tr:$last")" "$(val "$k:$tr:$first")")"
      row+=" $r | $(verdict "$r" 1.5) |"
      out "$row"
    done
  done
  out ""
fi

if [[ "$SECTIONS" == *" 2 "* ]]; then
  out "## 2. locomotive (with and without a checkout) vs a plain \`git push\` of one annotated tag"
  out ""
  out "\`locomotive set-step-state\` from an empty directory (temporary repository, partial fetch of the trigger, tag creation, push) against \`git push URL <tag>\` of the same tag, created beforehand, from a checkout that has the train commit. The remote's tag is deleted before every run. Big repository: ${BIG_MB} × 1 MB random files and 5,000 small files (${OBJKB[big]:-?} KB of objects on the server). The small and big repositories' train commits are root commits; the history remotes' live train commit has a parent."
  out ""
  out "\`from a checkout\`: \`locomotive set-step-state\` run inside that same checkout, which also has the trigger tag (fetched as CI checkouts of a tag do): one push, no fetch."
  out ""
  out "The three commands of a row take turns (one run of each, then the next round, $RUNS rounds; timed in the shell with \`EPOCHREALTIME\`, median), so the ratios hold while the machine's load changes; the load is the 1-minute average when the row started."
  out ""
  out "| repository | remote | locomotive, no checkout (load) | git push (load) | ratio | goal ≤ 1.5× | locomotive from a checkout (load) | ratio | goal ≤ 1.2× |"
  out "|---|---|---|---|---|---|---|---|---|"
  rows=()
  for name in small big; do for tr in git path; do rows+=("$name:$tr"); done; done
  for s in "${SIZES[@]}"; do rows+=("hist$s:git" "hist$s:path"); done
  for rk in "${rows[@]}"; do
    name="${rk%%:*}"
    tr="${rk#*:}"
    a="$(val "2loco:$name:$tr")"
    b="$(val "2push:$name:$tr")"
    [[ "$a" == n/a && "$b" == n/a ]] && continue
    case "$name" in
      small) desc="small (1 train)" ;;
      big) desc="${BIG_MB} MB tree" ;;
      *) desc="$(human "${name#hist}")-tag history, commit with parent (\`success\`)" ;;
    esac
    r="$(ratio "$a" "$b")"
    c="$(val "2co:$name:$tr")"
    rc="$(ratio "$c" "$b")"
    out "| $desc | $([[ $tr == git ]] && echo 'git://' || echo path) | $(fmt_ms "$a") (${LOAD[2loco:$name:$tr]:-?}) | $(fmt_ms "$b") (${LOAD[2push:$name:$tr]:-?}) | $r | $(verdict "$r" 1.5) | $(fmt_ms "$c") (${LOAD[2co:$name:$tr]:-?}) | $rc | $(verdict "$rc" 1.2) |"
  done
  out ""
fi

if [[ "$SECTIONS" == *" 3 "* ]]; then
  out "## 3. ticks to finish vs graph depth"
  out ""
  out "\`simulate\`: \`konductor simulate --json\` (\`depth\`, and the number of ticks). Real: a bare repository whose post-receive hook starts an instant job per trigger (\`started\` then \`success\` through locomotive); konductor ticks, waiting after each tick until every job has finished; counted are the ticks that pushed something. \`--tick\`: the same with jobs calling \`locomotive --tick\`."
  out ""
  out "| graph | target | depth | simulate ticks | real ticks | real wall | real ticks with \`--tick\` | wall with \`--tick\` |"
  out "|---|---|---|---|---|---|---|---|"
  for gt in "${GRAPHS[@]}"; do
    g="${gt%%:*}"
    out "| ${g%.yaml} | ${gt#*:} | ${DEPTH[$g]:-?} | ${SIMT[$g]:-?} | ${REALT[$g]:-?} | ${REALW[$g]:-?} s | ${INSTT[$g]:-?} | ${INSTW[$g]:-?} s |"
  done
  out ""
fi

if [[ "$SECTIONS" == *" 4 "* ]]; then
  out "## 4. demo wall time with and without instant advance"
  out ""
  out "\`scripts/demo.sh\` with \`DEMO_TICK_INTERVAL=2\` (a slow cron), as it is at the time of the run; its summary lines:"
  out ""
  out "- \`DEMO_TICK=0\`: ${DEMO[line0]:-?}"
  out "- \`DEMO_TICK=1\`: ${DEMO[line1]:-?}"
  out ""
  out "| mode | the trains took | tick lines that did something |"
  out "|---|---|---|"
  out "| \`DEMO_TICK=0\` (cron only) | ${DEMO[0]:-?} | ${DEMO[ticks0]:-?} |"
  out "| \`DEMO_TICK=1\` (\`locomotive --tick\`) | ${DEMO[1]:-?} | ${DEMO[ticks1]:-?} |"
  r="$(ratio "${DEMO[0]% s}" "${DEMO[1]% s}")"
  out "| speed-up | $r | |"
  out ""
fi

if [[ "$SECTIONS" == *" 5 "* ]]; then
  out "## 5. store transport choices"
  out ""
  out "Reads of the history remotes (median ms; load in parentheses)."
  out ""
  hdr="| read | remote |"
  sep="|---|---|"
  for s in "${SIZES[@]}"; do
    hdr+=" $(human "$s") tags |"
    sep+="---|"
  done
  hdr+=" $(human "$last")/$(human "$first") |"
  sep+="---|"
  out "$hdr"
  out "$sep"
  for m in "5a-cold:v2 prefix fetch of one train, \`--depth=1\`, empty repo" \
    "5a-warm:v2 prefix fetch of one train, nothing new" \
    "5b-v0:\`ls-remote\`, protocol v0 (full advertisement)" \
    "5b-v2:\`ls-remote\`, protocol v2 (no prefix: every ref)" \
    "5b-status:\`konductor status --horizon 1\`, cold cache (libgit2 list + prefix reads)"; do
    k="${m%%:*}"
    label="${m#*:}"
    for tr in git path; do
      row="| $label | $([[ $tr == git ]] && echo 'git://' || echo path) |"
      for s in "${SIZES[@]}"; do row+=" $(fmt_ms "$(val "$k:$tr:$s")") (${LOAD[$k:$tr:$s]:-?}) |"; done
      row+=" $(ratio "$(val "$k:$tr:$last")" "$(val "$k:$tr:$first")") |"
      out "$row"
    done
  done
  out ""
  out "Fetching the ${BIG_MB} MB train commit (\`--depth=1\`, git://, into an empty repository):"
  out ""
  out "| fetch | time (load) | objects left |"
  out "|---|---|---|"
  for f in blob:none tree:0 full; do
    lbl="--filter=$f"
    [[ $f == full ]] && lbl="no filter"
    out "| \`$lbl\` | $(fmt_ms "$(val "5c:$f")") (${LOAD[5c:$f]:-?}) | ${FETCHKB[$f]:-?} KB |"
  done
  out ""
fi

# ---------------------------------------------------------------------------------------
# Section 6: what is in a train. `konductor diff` of 500 commits in a repository of 10,000
# commits over a BIG_MB tree, against plain partial fetches of the same history.
declare -A D6
if [[ "$SECTIONS" == *" 6 "* ]]; then
  d6="$srv/diff.git"
  new_bare "$d6"
  say "diff: 10,000 commits over a ${BIG_MB} MB tree (git fast-import)"
  t0="$(date +%s%N)"
  {
    printf 'commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 5\nbase\n'
    printf 'M 100644 inline sdd.yaml\ndata %d\n' "$(wc -c <"$SDD")"
    cat "$SDD"
    printf '\n'
    for ((i = 0; i < BIG_MB; i++)); do
      printf 'M 100644 inline big/%03d.bin\ndata 1048576\n' "$i"
      head -c 1048576 /dev/urandom
      printf '\n'
    done
    printf '\n'
    for ((i = 1; i < 10000; i++)); do
      msg="change $i (#$i)"
      printf 'commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\nM 100644 inline src/f%d.txt\ndata %d\n%s\n\n' \
        $((1700000000 + i)) ${#msg} "$msg" $((i % 500)) ${#i} "$i"
    done
  } | git -C "$d6" fast-import --quiet --date-format=raw
  D6[gen]="$((($(date +%s%N) - t0) / 1000000)) ms"
  D6[size]="$(du -sk "$d6/objects" | cut -f1)"
  a6="$(git -C "$d6" rev-parse main~500)"
  b6="$(git -C "$d6" rev-parse main)"
  url="git://127.0.0.1:$port/diff.git"
  c6="$work/cache-diff"
  KONDUCTOR_CACHE_DIR="$c6" "$K" start --sha "$a6" --remote "$url" >>"$log" 2>&1 || failed=1
  KONDUCTOR_CACHE_DIR="$c6" "$K" start --sha "$b6" --remote "$url" >>"$log" 2>&1 || failed=1
  say "diff: built in ${D6[gen]}; trains 1.0 (main~500) and 2.0 (main)"
  runs6=$((RUNS < 5 ? RUNS : 5))
  RUNS_SAVED="$RUNS"
  RUNS="$runs6"
  j6="$work/diff.json"
  measure "6:warm" "" "KONDUCTOR_CACHE_DIR=$(q "$c6") $(q "$K" diff 1.0 2.0 --json --remote "$url") >$(q "$j6")"
  D6[warm]="$(json "$j6" '.fetch.bytes')"
  D6[commits]="$(json "$j6" '.commits_total')"
  D6[filtered]="$(json "$j6" '.fetch.filtered')"
  cold6="$work/cache-diff-cold"
  measure "6:cold" "rm -rf $(q "$cold6")" "KONDUCTOR_CACHE_DIR=$(q "$cold6") $(q "$K" diff 1.0 2.0 --json --remote "$url") >/dev/null"
  D6[cold]="$(($(du -sk "$cold6" | cut -f1) * 1024))"
  D6[cold-diff]="$(KONDUCTOR_CACHE_DIR="$cold6" "$K" diff 1.0 2.0 --json --remote "$url" 2>>"$log" >"$j6" && json "$j6" '.fetch.bytes')"
  p6="$work/plain-diff"
  measure "6:plain-empty" "rm -rf $(q "$p6") && git init -q --bare $(q "$p6")" \
    "git -C $(q "$p6") fetch -q --no-tags --filter=blob:none $(q "$url" "$b6")"
  D6[plain-empty]="$(($(du -sk "$p6/objects" | cut -f1) * 1024))"
  measure "6:plain-range" \
    "rm -rf $(q "$p6") && git init -q --bare $(q "$p6") && git -C $(q "$p6") fetch -q --no-tags --filter=blob:none $(q "$url" "$a6:refs/heads/a") && du -sk $(q "$p6/objects") | cut -f1 >$(q "$p6.before")" \
    "git -C $(q "$p6") fetch -q --no-tags --filter=blob:none $(q "$url" "$b6")"
  D6[plain-range]="$((($(du -sk "$p6/objects" | cut -f1) - $(cat "$p6.before")) * 1024))"
  RUNS="$RUNS_SAVED"
  rm -rf "$p6" "$cold6"
  [[ "${D6[commits]}" == 500 ]] || { say "WARNING: diff listed ${D6[commits]} commits, not 500"; failed=1; }

  out "## 6. what is in a train: \`konductor diff\` of 500 commits"
  out ""
  out "A repository of 10,000 commits (git://) whose tree holds ${BIG_MB} files of 1 MB (random) and \`sdd.yaml\`; each later commit changes one small file. Train 1.0 is \`main~500\`, train 2.0 \`main\`. Built with \`git fast-import\` in ${D6[gen]} (${D6[size]} KB of objects). Median of $runs6 runs; the server applies \`uploadpack.allowFilter\` (filtered: ${D6[filtered]})."
  out ""
  out "| what | time (load) | bytes fetched |"
  out "|---|---|---|"
  out "| \`konductor diff 1.0 2.0 --json\`, warm cache (the range, in a scratch repository) | $(fmt_ms "$(val 6:warm)") (${LOAD[6:warm]:-?}) | ${D6[warm]:-?} |"
  out "| the same, cold cache | $(fmt_ms "$(val 6:cold)") (${LOAD[6:cold]:-?}) | ${D6[cold-diff]:-?} for the range, ${D6[cold]:-?} left in the cache (the two train commits' trees, \`sdd.yaml\`, tags) |"
  out "| \`git fetch --filter=blob:none\` of 2.0 into an empty repository (every commit) | $(fmt_ms "$(val 6:plain-empty)") (${LOAD[6:plain-empty]:-?}) | ${D6[plain-empty]:-?} |"
  out "| \`git fetch --filter=blob:none\` of 2.0 into a repository holding 1.0's history (the same range) | $(fmt_ms "$(val 6:plain-range)") (${LOAD[6:plain-range]:-?}) | ${D6[plain-range]:-?} |"
  out ""
fi

if ((${#NOTES[@]})); then
  out "## Notes from this run"
  out ""
  for n in "${NOTES[@]}"; do out "- $n"; done
  out ""
fi

if ((failed)); then
  out "Some measurements failed or did not do what they should (see the warnings above the table; the log was kept)."
fi

mkdir -p "$(dirname "$OUT")"
cp "$RES" "$OUT"
cat "$RES"
