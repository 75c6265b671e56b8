#!/usr/bin/env bash
# `make demo`: a whole release train, end to end, on an embedded local setup.
#
# - a bare repository plays the git host ("origin");
# - its post-receive hook plays the CI: on every new trigger tag it starts a job that
#   reports `started`, works for a moment, and reports `success` through locomotive;
# - train 1 is the first release: no earlier train reached production, so the manual gate
#   applies by default; a train engineer unblocks it and it reaches production;
# - train 2 changes flavors.yaml: konductor ticks it through staging, it stops at the gate
#   (status shows `blocked` and why), gets unblocked, and finishes production;
# - train 3 changes only app code: the gate is skipped, with the reason;
# - trains 4 and 5 open together: 5 deploys first, so 4 is superseded (forward only);
# - production is frozen: train 6 waits at its production deploy until unfreeze;
# - production is rolled back to train 5 (a new deploy commit), pinned, then unpinned;
# - deploy jobs publish manifests under the deploy tags (`locomotive publish-manifests`),
#   and every tick notifies a local receiver (shown at the end).
#
# DEMO_TICK=1 makes jobs advance the train themselves (`locomotive --tick`), so no step
# waits for the next tick; DEMO_DIR keeps the setup somewhere you choose.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${KONDUCTOR_BIN_DIR:-$root/target/debug}"
if [[ -z "${KONDUCTOR_BIN_DIR:-}" ]]; then
  cargo build --quiet --bins --manifest-path "$root/Cargo.toml"
fi
K="$bin/konductor"
L="$bin/locomotive"

demo="${DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/konductor-demo.XXXXXX")}"
rm -rf "$demo/origin.git" "$demo/work" "$demo/cache" "$demo/jobs"
mkdir -p "$demo/jobs"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export KONDUCTOR_CACHE_DIR="$demo/cache" KONDUCTOR_REMOTE="$demo/origin.git"
export KONDUCTOR_IDENTITY="Konductor Cron <cron@demo.invalid>"
export NO_COLOR="${NO_COLOR:-}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "origin: a bare repository at $demo/origin.git"
git init --quiet --bare "$demo/origin.git"
git -C "$demo/origin.git" config uploadpack.allowFilter true
git -C "$demo/origin.git" config uploadpack.allowAnySHA1InWant true

# The fake CI: one job per new trigger tag (never for state tags).
cat > "$demo/job.sh" <<JOB
#!/usr/bin/env bash
# A CI job: report started, work, report success.
set -euo pipefail
tag="\$1"
sha="\$(git --git-dir="$demo/origin.git" rev-parse "refs/tags/\$tag^{commit}")"
url="https://ci.demo.invalid/jobs/\${tag#release=}"
export KONDUCTOR_IDENTITY="Demo CI <ci@demo.invalid>"
"$L" set-step-state --state-name started --triggering-tag "\$tag" --info-string "job_url:\$url" --sha "\$sha"
sleep 0.2
step="\${tag#release=*=}"; step="\${step%.*}"
if [[ "\$step" == deploy_* ]]; then
  # A deploy job renders its manifests and publishes them under the step's deploy_tag.
  dir="$demo/manifests/\$tag"; mkdir -p "\$dir"
  printf 'image: app@%s\n' "\$sha" > "\$dir/app.yaml"
  "$L" publish-manifests --dir "\$dir" --triggering-tag "\$tag" >/dev/null
fi
tick=()
if [[ "\${DEMO_TICK:-0}" == 1 ]]; then tick=(--tick); fi
"$L" set-step-state --state-name success --triggering-tag "\$tag" --info-string "job_url:\$url" --sha "\$sha" "\${tick[@]}"
JOB
chmod +x "$demo/job.sh"
cat > "$demo/origin.git/hooks/post-receive" <<HOOK
#!/usr/bin/env bash
# Plays the CI system: start a job for each trigger tag created by this push.
unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_PUSH_OPTION_COUNT
while read -r old new ref; do
  tag="\${ref#refs/tags/}"
  if [[ "\$old" =~ ^0+$ && "\$tag" =~ ^release=[0-9]+\.[0-9]+=[A-Za-z0-9_-]+\.[0-9]+$ ]]; then
    DEMO_TICK="${DEMO_TICK:-0}" setsid nohup "$demo/job.sh" "\$tag" >>"$demo/jobs/\$tag.log" 2>&1 < /dev/null &
  fi
done
HOOK
chmod +x "$demo/origin.git/hooks/post-receive"

say "a repository with the train's graph (sdd.yaml) and flavors.yaml"
git init --quiet "$demo/work"
cp "$root/sdd.yaml" "$demo/work/sdd.yaml"
printf 'serving:\n  replicas: 3\n' > "$demo/work/flavors.yaml"
printf 'print("hello")\n' > "$demo/work/app.py"
git -C "$demo/work" add .
git -C "$demo/work" -c user.name=Dev -c user.email=dev@demo.invalid commit --quiet -m "first release"
git -C "$demo/work" push --quiet "$demo/origin.git" HEAD:refs/heads/main
"$K" validate --sdd "$demo/work/sdd.yaml"

state_of() { "$K" status --train "$1" --json | sed -n 's/^  "state": "\([a-z]*\)",$/\1/p'; }

# "succeeded", "is blocked": a train state as the verb of a sentence.
state_phrase() {
  case "$1" in
    succeeded|failed) echo "$1" ;;
    superseded) echo "was superseded" ;;
    cancelled) echo "was cancelled" ;;
    *) echo "is $1" ;;
  esac
}

run_train() {
  local train="$1" last="" state
  while :; do
    if [[ "${DEMO_TICK:-0}" != 1 || -z "$last" ]]; then
      "$K" tick --train "$train" | sed 's/^/  tick: /' | grep -v 'nothing to do' || true
    else
      "$K" tick --train "$train" >/dev/null
    fi
    state="$(state_of "$train")"
    if [[ "$state" != "$last" ]]; then echo "  train $train $(state_phrase "$state")"; last="$state"; fi
    case "$state" in succeeded|blocked|failed|cancelled|superseded) return 0 ;; esac
    sleep "${DEMO_TICK_INTERVAL:-0.3}"
  done
}

# Notifications: every tick sends its events to a local receiver, which prints one line
# per event (shown at the end; docs/notifications.md).
if command -v python3 >/dev/null 2>&1; then
  export KONDUCTOR_NOTIFY_SECRET="demo-secret-$$"
  rm -f "$demo/receiver.port"
  python3 "$root/scripts/notify-receiver.py" "$demo/receiver.port" >"$demo/notifications.log" 2>&1 &
  receiver=$!
  trap 'kill "$receiver" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do [[ -s "$demo/receiver.port" ]] && break; sleep 0.1; done
  export KONDUCTOR_NOTIFY="webhook+http://127.0.0.1:$(cat "$demo/receiver.port")/konductor"
fi

start=$(date +%s.%N)
gate=require-manual-unblock-before-prod-deploy
commit() { git -C "$demo/work" -c user.name=Dev -c user.email=dev@demo.invalid commit --quiet -am "$1"; git -C "$demo/work" push --quiet "$demo/origin.git" HEAD:refs/heads/main; }
open_train() {
  local t
  t="$("$K" start --sha "$(git -C "$demo/work" rev-parse HEAD)")"
  echo "  konductor start: opened train $t on $(git -C "$demo/work" rev-parse --short HEAD)" >&2
  echo "$t"
}
unblock_if_blocked() {
  if [[ "$(state_of "$1")" == blocked ]]; then
    echo "  the gate is blocked: $("$K" status --train "$1" --json | sed -n 's/^      "reason": "\(waiting for manual unblock.*\)",$/\1/p')"
    # The cron tick that notices the gate tells the train engineer (--notify).
    "$K" tick --train "$1" | grep 'notify:' | sed 's/^/  tick: /' || true
    "$K" unblock --train "$1" --step "$gate" --reason "$2" --by "Train Engineer <te@demo.invalid>" | sed 's/^/  /'
    run_train "$1"
  fi
}

say "train 1: the first release (no earlier train reached production: the gate applies)"
t1="$(open_train)"
run_train "$t1"
unblock_if_blocked "$t1" "first release reviewed"
"$K" status --train "$t1"

say "train 2: flavors.yaml changes, so the train stops at the manual gate"
printf 'serving:\n  replicas: 5\n' > "$demo/work/flavors.yaml"
commit "scale serving to 5 replicas"
t2="$(open_train)"
run_train "$t2"
"$K" status --train "$t2"
unblock_if_blocked "$t2" "flavor change reviewed"
"$K" status --train "$t2"

say "train 3: only app code changes, so the gate is skipped"
printf 'print("hello, world")\n' > "$demo/work/app.py"
commit "second release"
t3="$(open_train)"
run_train "$t3"
"$K" status --train "$t3"

say "trains 4 and 5 open together: 5 deploys first, so 4 is superseded (deploys only go forward)"
printf 'print("hello, four")\n' > "$demo/work/app.py"; commit "fourth release"; t4="$(open_train)"
printf 'print("hello, five")\n' > "$demo/work/app.py"; commit "fifth release"; t5="$(open_train)"
run_train "$t5"
run_train "$t4"
"$K" status --train "$t4" | grep -E 'superseded' | head -3

say "a freeze: production is frozen; train 6 goes up to its production deploy and waits there"
"$K" freeze --env production --reason "demo: release review" --until 1h | sed 's/^/  /'
printf 'print("hello, six")\n' > "$demo/work/app.py"; commit "sixth release"; t6="$(open_train)"
frozen=no
for _ in $(seq 300); do
  "$K" tick --train "$t6" >/dev/null
  if "$K" status --train "$t6" --json | grep -q '"state": "frozen"'; then frozen=yes; break; fi
  sleep "${DEMO_TICK_INTERVAL:-0.3}"
done
"$K" status --train "$t6" | grep -E 'frozen' | head -2
"$K" unfreeze --env production | sed 's/^/  /'
run_train "$t6"

say "a rollback: production goes back to what train $t5 deployed, and stays pinned until unpin"
"$K" rollback --env production --to "$t5" --reason "demo: train $t6 misbehaves" | sed 's/^/  /'
"$K" env --env production
"$K" unpin --env production | sed 's/^/  /'
rolled="$("$K" env --env production --json | grep -c '"rollback": true' || true)"
end=$(date +%s.%N)

say "environments"
"$K" env
say "what train $t6 brought over train $t5"
"$K" diff "$t5" "$t6"

say "all trains"
"$K" status
say "audit log of train $t1"
"$K" log --train "$t1"
if "$K" board --help >/dev/null 2>&1; then
  say "the board"
  "$K" board --out "$demo/board"
fi
if [[ -s "$demo/notifications.log" ]]; then
  "$K" tick | grep 'notify:' | sed 's/^/  tick: /' || true   # the next cron tick
  say "what tick --notify sent to the local receiver"
  cat "$demo/notifications.log"
fi
s1="$(state_of "$t1")"; s2="$(state_of "$t2")"; s3="$(state_of "$t3")"
g3="$("$K" status --train "$t3" --json | grep -c '"state": "skipped"' || true)"
printf '\ntrain %s: %s, train %s: %s, train %s: %s (gate skipped: %s); the trains took %.1f s (DEMO_TICK=%s)\n' \
  "$t1" "$s1" "$t2" "$s2" "$t3" "$s3" "$([[ $g3 -ge 1 ]] && echo yes || echo no)" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')" "${DEMO_TICK:-0}"
echo "demo files: $demo"
s4="$(state_of "$t4")"; s6="$(state_of "$t6")"
printf 'train %s: %s, train %s: %s (frozen on the way: %s), production rolled back: %s\n' \
  "$t4" "$s4" "$t6" "$s6" "$frozen" "$([[ $rolled -ge 1 ]] && echo yes || echo no)"
[[ "$s1" == succeeded && "$s2" == succeeded && "$s3" == succeeded && "$g3" -ge 1 ]]
[[ "$s4" == superseded && "$s6" == succeeded && "$frozen" == yes && "$rolled" -ge 1 ]]
