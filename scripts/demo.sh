#!/usr/bin/env bash
# `make demo`: a whole release train, end to end, on an embedded local setup.
#
# - a bare repository plays the git host ("origin");
# - its post-receive hook plays the CI: on every new trigger tag it starts a job that
#   reports `started`, works for a moment, and reports `success` through locomotive;
# - konductor ticks until the train is through staging, stops at the manual gate
#   (flavors.yaml changed), gets unblocked, and finishes production;
# - a second train without a flavors.yaml change skips the gate.
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
sleep 0.3
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

run_train() {
  local train="$1" last="" state
  while :; do
    if [[ "${DEMO_TICK:-0}" != 1 || -z "$last" ]]; then
      "$K" tick --train "$train" | sed 's/^/  tick: /' | grep -v 'nothing to do' || true
    else
      "$K" tick --train "$train" >/dev/null
    fi
    state="$(state_of "$train")"
    if [[ "$state" != "$last" ]]; then echo "  train $train is $state"; last="$state"; fi
    case "$state" in succeeded|blocked|failed|cancelled) return 0 ;; esac
    sleep "${DEMO_TICK_INTERVAL:-0.5}"
  done
}

start=$(date +%s.%N)
say "konductor start: open train on $(git -C "$demo/work" rev-parse --short HEAD)"
t1="$("$K" start --sha "$(git -C "$demo/work" rev-parse HEAD)")"
echo "  opened train $t1"

say "konductor tick until the train stops (staging, then the manual gate)"
run_train "$t1"
"$K" status --train "$t1"

gate=require-manual-unblock-before-prod-deploy
if [[ "$(state_of "$t1")" == blocked ]]; then
  say "the gate is blocked because flavors.yaml changed: a train engineer unblocks it"
  "$K" unblock --train "$t1" --step "$gate" --reason "flavor change reviewed" --by "Train Engineer <te@demo.invalid>"
  run_train "$t1"
fi
"$K" status --train "$t1"

say "a second train, with no flavors.yaml change: the gate is skipped"
printf 'print("hello, world")\n' > "$demo/work/app.py"
git -C "$demo/work" -c user.name=Dev -c user.email=dev@demo.invalid commit --quiet -am "second release"
git -C "$demo/work" push --quiet "$demo/origin.git" HEAD:refs/heads/main
t2="$("$K" start --sha "$(git -C "$demo/work" rev-parse HEAD)")"
echo "  opened train $t2"
run_train "$t2"
"$K" status --train "$t2"
end=$(date +%s.%N)

say "all trains"
"$K" status
say "audit log of train $t1"
"$K" log --train "$t1"
if "$K" board --help >/dev/null 2>&1; then
  say "the board"
  "$K" board --out "$demo/board"
fi
s1="$(state_of "$t1")"; s2="$(state_of "$t2")"
printf '\ntrain %s: %s, train %s: %s; both trains took %.1f s (DEMO_TICK=%s)\n' "$t1" "$s1" "$t2" "$s2" "$(echo "$end - $start" | bc)" "${DEMO_TICK:-0}"
echo "demo files: $demo"
[[ "$s1" == succeeded && "$s2" == succeeded ]]
