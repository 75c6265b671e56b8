#!/usr/bin/env bash
# Validate Konductor's CI wiring offline, with real validators:
#
#   CircleCI   orb and example config: check-jsonschema vendor.circle-ci, the
#              orb schema (integrations/schemas/orb.schema.json), pack-orb.py
#              --check (orb.yml up to date), check_circleci.py (references,
#              parameters, the tag-filter rule for required jobs)
#   GitHub     workflows (the examples and .github/workflows/release.yml) and
#              action: check-jsonschema vendor.github-workflows /
#              vendor.github-actions, zizmor --offline (auditor persona, any
#              finding fails)
#   Kubernetes CronJob, RBAC, webhook Ingress, serve's Deployment/Service/Ingress:
#              kubernetes-validate --strict
#              (1.37 and 1.27)
#   Argo       WorkflowTemplate, Sensor, EventSource, EventBus, Application, AppProject:
#              check-jsonschema with the schemas in integrations/schemas;
#              check_argo.py (cross references, per-namespace rule, CronJob
#              policy, shellcheck of the script templates)
#   Filters    check_filters.py: every tag filter selects its step's trigger
#              tags and no state, control or other step's tag
#   Dockerfile hadolint; shell scripts: shellcheck, and a run of each against
#              a stub locomotive; YAML: yamllint (duplicate keys, syntax)
#   Install    scripts/test-install.sh: install.sh, the orb's install command
#              and the action's install step against a release folder on a
#              loopback HTTP server (SHA256SUMS, tampered archive, pinned
#              sha256, self-hosted base URL, architecture)
#
# Then the negative checks: every broken copy listed in
# tests/fixtures/integrations-broken/MANIFEST must be rejected by its
# validator, with output matching the expected reason.
#
# Prints `ok   <what>` or `FAIL <what>: <reason>` per check, and ends with
# `N passed, M failed`. Exit status 0 only if nothing failed. Installs nothing
# itself: the validators come from the virtualenv that scripts/test-deps.sh builds
# (`make test-deps`; target/test-venv, or KONDUCTOR_TEST_VENV), else from PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${KONDUCTOR_TEST_VENV:-$ROOT/target/test-venv}"
if [ -x "$VENV/bin/python3" ]; then
  PATH="$VENV/bin:$PATH"
fi

BROKEN=tests/fixtures/integrations-broken
SCHEMAS=integrations/schemas
ARGO=integrations/argo
ORB=orbs/konductor/orb.yml
ORB_SRC=orbs/konductor/src
SCRIPTS_DIR=$ORB_SRC/scripts

# ------------------------------------------------------------------ prerequisites
missing=()
for tool in python3 check-jsonschema kubernetes-validate zizmor hadolint shellcheck yamllint curl tar sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import yaml' 2>/dev/null; then
  missing+=("python3 module yaml (PyYAML)")
fi
if ((${#missing[@]})); then
  echo "validate-integrations: missing validator(s): ${missing[*]}" >&2
  echo "validate-integrations: install them with: make test-deps (a virtualenv in ${VENV#"$ROOT"/})" >&2
  echo "validate-integrations: (curl, tar and sha256sum come from the system)" >&2
  exit 2
fi

echo "validators: check-jsonschema $(check-jsonschema --version 2>&1 | awk '{print $NF}'), \
kubernetes-validate $(kubernetes-validate --version 2>&1 | awk '{print $NF}'), \
$(zizmor --version 2>&1 | head -n1), hadolint $(hadolint --version 2>&1 | awk '{print $NF}'), \
shellcheck $(shellcheck --version | awk '/^version:/ {print $2}'), $(yamllint --version 2>&1)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
pass() { printf 'ok   %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failed=$((failed + 1)); }

# The most telling line of a validator's output, shortened.
summary() {
  local out="$1" line
  line="$(printf '%s\n' "$out" | grep -E -m1 -i 'error|fail|invalid|not |warning|DL[0-9]|SC[0-9]|unexpected|required|must|unknown' || true)"
  [ -n "$line" ] || line="$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n1)"
  line="$(printf '%s' "$line" | tr -s '[:space:]' ' ' | sed 's/^ //')"
  printf '%s' "${line:0:220}"
}

# ------------------------------------------------------------------ validators
# run_validator ID FILE [COPY_OF]: run one validator on one file.
run_validator() {
  local id="$1" file="$2" copy_of="${3:-}"
  case "$id" in
    circleci-schema) check-jsonschema --builtin-schema vendor.circle-ci "$file" ;;
    orb-schema) check-jsonschema --schemafile "$SCHEMAS/orb.schema.json" "$file" ;;
    orb-packed) python3 scripts/pack-orb.py --check --out "$file" ;;
    orb-src) python3 scripts/pack-orb.py --src "$file" --out "$WORK/packed-orb.yml" ;;
    circleci-refs) python3 scripts/check_circleci.py --orb "$ORB" "$file" ;;
    filters) python3 scripts/check_filters.py "$file" ;;
    gh-workflow-schema) check-jsonschema --builtin-schema vendor.github-workflows "$file" ;;
    gh-action-schema) check-jsonschema --builtin-schema vendor.github-actions "$file" ;;
    zizmor)
      # zizmor tells actions from workflows by file name.
      local target="$file"
      if python3 -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); sys.exit(0 if isinstance(d, dict) and "runs" in d else 1)' "$file"; then
        mkdir -p "$WORK/zizmor-action"
        cp "$file" "$WORK/zizmor-action/action.yml"
        target="$WORK/zizmor-action/action.yml"
      fi
      zizmor --offline --persona auditor --no-progress --config integrations/zizmor.yml "$target"
      ;;
    k8s) kubernetes-validate --strict --quiet "$file" && kubernetes-validate --strict --quiet -k 1.27.0 "$file" ;;
    wft-schema) check-jsonschema --schemafile "$SCHEMAS/argo-workflowtemplate.schema.json" "$file" ;;
    sensor-schema) check-jsonschema --schemafile "$SCHEMAS/argo-events-sensor.schema.json" "$file" ;;
    eventsource-schema) check-jsonschema --schemafile "$SCHEMAS/argo-events-eventsource.schema.json" "$file" ;;
    eventbus-schema) check-jsonschema --schemafile "$SCHEMAS/argo-events-eventbus.schema.json" "$file" ;;
    application-schema) check-jsonschema --schemafile "$SCHEMAS/argocd-application.schema.json" "$file" ;;
    appproject-schema) check-jsonschema --schemafile "$SCHEMAS/argocd-appproject.schema.json" "$file" ;;
    argo-refs)
      # The file is checked together with the other Argo manifests; a broken
      # copy replaces the shipped file it copies.
      local set=() f
      for f in "$ARGO"/*.yaml; do
        [ "$f" = "$copy_of" ] || set+=("$f")
      done
      [ "$file" = "$copy_of" ] || set+=("$file")
      python3 scripts/check_argo.py --shellcheck "${set[@]}"
      ;;
    hadolint) hadolint "$file" ;;
    shellcheck) shellcheck -x "$file" ;;
    yamllint) yamllint -f parsable -c integrations/yamllint.yml "$file" ;;
    *) echo "unknown validator '$id'" >&2; return 2 ;;
  esac
}

# expect_pass ID FILE: the shipped file must pass.
expect_pass() {
  local id="$1" file="$2" out
  if out="$(run_validator "$id" "$file" "$file" 2>&1)"; then
    pass "$file ($id)"
  else
    fail "$file ($id)" "$(summary "$out")"
  fi
}

# ------------------------------------------------------------------ shipped files
echo "== shipped files"

for schema in "$SCHEMAS"/*.schema.json; do
  if out="$(check-jsonschema --check-metaschema "$schema" 2>&1)"; then
    pass "$schema (metaschema)"
  else
    fail "$schema (metaschema)" "$(summary "$out")"
  fi
done

if out="$(run_validator orb-src "$ORB_SRC" 2>&1)"; then pass "$ORB_SRC (orb-src: packs)"; else fail "$ORB_SRC (orb-src)" "$(summary "$out")"; fi
for id in orb-packed circleci-schema orb-schema circleci-refs filters yamllint; do expect_pass "$id" "$ORB"; done
for f in "$ORB_SRC"/@orb.yml "$ORB_SRC"/*/*.yml; do expect_pass yamllint "$f"; done
for f in "$SCRIPTS_DIR"/*.sh scripts/validate-integrations.sh scripts/test-deps.sh scripts/test-install.sh scripts/dist.sh; do
  expect_pass shellcheck "$f"
done

for id in circleci-schema circleci-refs filters yamllint; do expect_pass "$id" examples/circleci/config.yml; done

for f in examples/github/workflows/*.yml; do
  for id in gh-workflow-schema zizmor filters yamllint; do expect_pass "$id" "$f"; done
done
# The release workflow: no step tag filters (it runs on version tags).
for id in gh-workflow-schema zizmor yamllint; do expect_pass "$id" .github/workflows/release.yml; done
for id in gh-action-schema zizmor yamllint; do expect_pass "$id" integrations/github/action.yml; done
# The action runs the orb's scripts from the same repository checkout.
refs_ok=1
# shellcheck disable=SC2016 # $GITHUB_ACTION_PATH is matched literally below
while IFS= read -r rel; do
  if [ ! -f "integrations/github/$rel" ]; then
    fail "integrations/github/action.yml (script paths)" "\$GITHUB_ACTION_PATH/$rel does not exist"
    refs_ok=0
  fi
done < <(grep -oE '\$GITHUB_ACTION_PATH/[^" ]+' integrations/github/action.yml | sed 's|^\$GITHUB_ACTION_PATH/||' | sort -u)
[ "$refs_ok" = 0 ] || pass "integrations/github/action.yml (script paths resolve)"

for f in "$ARGO"/konductor-tick-cronjob.yaml "$ARGO"/rbac.yaml "$ARGO"/rbac-production.yaml "$ARGO"/webhook-ingress.yaml; do
  expect_pass k8s "$f"
done
for f in "$ARGO"/verify-deployment-workflowtemplate.yaml "$ARGO"/verify-deployment-workflowtemplate-production.yaml; do
  expect_pass wft-schema "$f"
done
for f in "$ARGO"/sensor.yaml "$ARGO"/sensor-production.yaml; do
  expect_pass sensor-schema "$f"
  expect_pass filters "$f"
done
expect_pass eventsource-schema "$ARGO/eventsource.yaml"
expect_pass eventbus-schema "$ARGO/eventbus.yaml"
expect_pass application-schema "$ARGO/argocd-application-staging.yaml"
expect_pass application-schema "$ARGO/argocd-application-production.yaml"
expect_pass appproject-schema "$ARGO/argocd-appproject.yaml"
for f in "$ARGO"/*.yaml; do expect_pass yamllint "$f"; done
if out="$(python3 scripts/check_argo.py --shellcheck "$ARGO"/*.yaml 2>&1)"; then
  pass "$ARGO/*.yaml (argo-refs)"
else
  fail "$ARGO/*.yaml (argo-refs)" "$(summary "$out")"
fi

# konductor serve: Deployment, Service, Ingress.
for f in integrations/serve/*.yaml; do
  expect_pass k8s "$f"
  expect_pass yamllint "$f"
done

expect_pass hadolint Dockerfile
# Facts hadolint cannot know: the image holds both binaries, runs as non-root,
# and the build context (.dockerignore) keeps every workspace member.
docker_facts() {
  if ! grep -Eq -- '-p konductor' Dockerfile || ! grep -Eq -- '-p locomotive' Dockerfile; then
    echo "Dockerfile does not build both -p konductor and -p locomotive"
    return 1
  fi
  if ! grep -Eq '^COPY --from=builder .*konductor .*locomotive /usr/local/bin/' Dockerfile; then
    echo "Dockerfile does not copy both binaries to /usr/local/bin"
    return 1
  fi
  local user
  user="$(grep -E '^USER ' Dockerfile | tail -n1 | awk '{print $2}')"
  case "$user" in "" | root | 0 | 0:* | root:*) echo "the image runs as root"; return 1 ;; esac
  python3 - <<'PY'
import pathlib, re, sys
cargo = pathlib.Path("Cargo.toml").read_text()
try:
    import tomllib  # Python 3.11+
    members = tomllib.loads(cargo)["workspace"]["members"]
except ImportError:
    m = re.search(r"^members\s*=\s*\[(.*?)\]", cargo, re.M | re.S)
    members = re.findall(r'"([^"]+)"', m.group(1)) if m else []
if not members:
    sys.exit("no workspace members found in Cargo.toml")
docker = pathlib.Path("Dockerfile").read_text()
ignore = [l.strip() for l in pathlib.Path(".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
copied = set(re.findall(r"^COPY (?!--from)(\S+)", docker, re.M))
for m in members:
    top = m.split("/")[0]
    if top not in copied:
        sys.exit(f"workspace member {m} is not copied into the builder stage")
    if ignore and ignore[0] == "*" and f"!{top}/" not in ignore and f"!{top}" not in ignore:
        sys.exit(f".dockerignore leaves workspace member {m} out of the build context")
for f in ("Cargo.toml", "Cargo.lock"):
    if ignore and ignore[0] == "*" and f"!{f}" not in ignore:
        sys.exit(f".dockerignore leaves {f} out of the build context")
PY
}
if out="$(docker_facts 2>&1)"; then pass "Dockerfile (binaries, non-root user, build context)"; else fail "Dockerfile (facts)" "$(summary "$out")"; fi

# ------------------------------------------------------------------ the shell scripts, run
echo "== shell scripts against a stub locomotive"

STUB="$WORK/stub"
mkdir -p "$STUB"
# A stub locomotive/konductor: logs its arguments (one per line) and
# KONDUCTOR_TOKEN, and exits with the next code from $STUB_CODES (default 0).
for bin in locomotive konductor; do
  cat >"$STUB/$bin" <<'SH'
#!/usr/bin/env bash
{ printf 'CALL %s\n' "$(basename "$0")"; printf 'ARG %s\n' "$@"; printf 'TOKEN %s\n' "${KONDUCTOR_TOKEN:-}"; } >>"$STUB_LOG"
code=0
if [ -s "${STUB_CODES:-/dev/null}" ]; then
  code="$(head -n1 "$STUB_CODES")"
  tail -n +2 "$STUB_CODES" >"$STUB_CODES.next" && mv "$STUB_CODES.next" "$STUB_CODES"
fi
exit "$code"
SH
  chmod +x "$STUB/$bin"
done
BASE_PATH="/usr/local/bin:/usr/bin:/bin"

# run_script LABEL EXPECTED_EXIT EXPECTED_LOG SCRIPT [VAR=VALUE...]
# Runs SCRIPT in a clean environment with the stub on PATH, then compares the
# exit code and the stub's log (ARG/CALL/TOKEN lines) with the expectation.
run_script() {
  local label="$1" want_rc="$2" want_log="$3" script="$4"
  shift 4
  local log="$WORK/stub.log" codes="$WORK/stub.codes" rc=0 out
  : >"$log"
  : >"$codes"
  local env_args=(PATH="$STUB:$BASE_PATH" HOME="$WORK" STUB_LOG="$log" STUB_CODES="$codes" KONDUCTOR_RETRY_DELAY=0)
  local kv
  for kv in "$@"; do
    if [[ "$kv" == STUB_CODE_SEQ=* ]]; then
      local seq
      read -r -a seq <<<"${kv#STUB_CODE_SEQ=}"
      printf '%s\n' "${seq[@]}" >"$codes"
    else
      env_args+=("$kv")
    fi
  done
  out="$(env -i "${env_args[@]}" bash "$script" 2>&1)" || rc=$?
  if [ "$rc" != "$want_rc" ]; then
    fail "$script ($label)" "exit $rc, expected $want_rc: $(summary "$out")"
  elif [ "$(cat "$log")" != "$want_log" ]; then
    fail "$script ($label)" "locomotive saw: $(tr '\n' ' ' <"$log")| expected: $(printf '%s' "$want_log" | tr '\n' ' ')"
  else
    pass "$script ($label)"
  fi
}

SSS="$SCRIPTS_DIR/set-step-state.sh"
CIRCLE=(CIRCLECI=true CIRCLE_TAG=release=42.3=unit-tests.17 CIRCLE_SHA1=0123abc
  CIRCLE_BUILD_URL=https://circleci.com/gh/example/serving/901 CIRCLE_REPOSITORY_URL=git@github.com:example/serving.git)
GITHUB=(GITHUB_ACTIONS=true GITHUB_REF=refs/tags/release=7.0=unit-tests.2 GITHUB_REF_TYPE=tag GITHUB_REF_NAME=release=7.0=unit-tests.2
  GITHUB_SHA=fedcba9 GITHUB_SERVER_URL=https://github.com GITHUB_REPOSITORY=example/serving GITHUB_RUN_ID=555 GITHUB_RUN_ATTEMPT=2)

run_script "CircleCI: started" 0 "CALL locomotive
ARG set-step-state
ARG --state-name
ARG started
ARG --triggering-tag
ARG release=42.3=unit-tests.17
ARG --sha
ARG 0123abc
ARG --info-string
ARG job_url:https://circleci.com/gh/example/serving/901
ARG --remote
ARG git@github.com:example/serving.git
TOKEN " "$SSS" "${CIRCLE[@]}" KONDUCTOR_PARAM_STATE=started KONDUCTOR_PARAM_TICK=true

run_script "CircleCI: success with --tick, KONDUCTOR_REMOTE set, token from another variable" 0 "CALL locomotive
ARG set-step-state
ARG --state-name
ARG success
ARG --triggering-tag
ARG release=42.3=unit-tests.17
ARG --sha
ARG 0123abc
ARG --info-string
ARG job_url:https://circleci.com/gh/example/serving/901
ARG --tick
TOKEN s3cret" "$SSS" "${CIRCLE[@]}" KONDUCTOR_PARAM_STATE=success KONDUCTOR_PARAM_TICK=true \
  KONDUCTOR_REMOTE=https://example.com/serving.git KONDUCTOR_PARAM_TOKEN_VAR=MY_TOKEN MY_TOKEN=s3cret

run_script "GitHub: failure, run URL and https remote" 0 "CALL locomotive
ARG set-step-state
ARG --state-name
ARG failure
ARG --triggering-tag
ARG release=7.0=unit-tests.2
ARG --sha
ARG fedcba9
ARG --info-string
ARG job_url:https://github.com/example/serving/actions/runs/555/attempts/2
ARG --info-string
ARG runner:large
ARG --remote
ARG https://github.com/example/serving.git
TOKEN ghs_x" "$SSS" "${GITHUB[@]}" KONDUCTOR_PARAM_STATE=failure KONDUCTOR_PARAM_INFO=runner:large KONDUCTOR_TOKEN=ghs_x

run_script "refuses a state tag as triggering tag" 2 "" "$SSS" "${CIRCLE[@]}" \
  CIRCLE_TAG=release=42.3=unit-tests.17=started KONDUCTOR_PARAM_STATE=success
run_script "refuses a control tag" 2 "" "$SSS" "${GITHUB[@]}" GITHUB_REF_NAME=release=7.0=cancelled KONDUCTOR_PARAM_STATE=started
run_script "refuses another step's tag when KONDUCTOR_STEP is set" 2 "" "$SSS" "${GITHUB[@]}" \
  KONDUCTOR_STEP=lint KONDUCTOR_PARAM_STATE=started
run_script "refuses a branch build" 2 "" "$SSS" "${CIRCLE[@]}" CIRCLE_TAG= KONDUCTOR_PARAM_STATE=started
run_script "refuses an unknown state" 2 "" "$SSS" "${CIRCLE[@]}" KONDUCTOR_PARAM_STATE=timeout

CALL_LINES="CALL locomotive
ARG set-step-state
ARG --state-name
ARG started
ARG --triggering-tag
ARG release=7.0=unit-tests.2
ARG --sha
ARG fedcba9
ARG --info-string
ARG job_url:https://github.com/example/serving/actions/runs/555/attempts/2
ARG --remote
ARG https://github.com/example/serving.git
TOKEN "
run_script "retries exit 3 (remote failure), then succeeds" 0 "$CALL_LINES
$CALL_LINES
$CALL_LINES" "$SSS" "${GITHUB[@]}" KONDUCTOR_PARAM_STATE=started STUB_CODE_SEQ="3 3 0"
run_script "does not retry exit 4 (authentication rejected)" 4 "$CALL_LINES" "$SSS" "${GITHUB[@]}" \
  KONDUCTOR_PARAM_STATE=started STUB_CODE_SEQ="4"

mkdir -p "$WORK/manifests"
run_script "publish-manifests: staging-k8s" 0 "CALL locomotive
ARG publish-manifests
ARG --dir
ARG $WORK/manifests
ARG --tag
ARG staging-k8s
ARG --triggering-tag
ARG release=42.3=unit-tests.17
ARG --remote
ARG https://example.com/deploy.git
TOKEN " "$SCRIPTS_DIR/publish-manifests.sh" "${CIRCLE[@]}" KONDUCTOR_PARAM_DIR="$WORK/manifests" \
  KONDUCTOR_PARAM_TAG=staging-k8s KONDUCTOR_PARAM_REMOTE=https://example.com/deploy.git
run_script "publish-manifests: refuses another tag" 2 "" "$SCRIPTS_DIR/publish-manifests.sh" "${CIRCLE[@]}" \
  KONDUCTOR_PARAM_DIR="$WORK/manifests" KONDUCTOR_PARAM_TAG=main
run_script "tick" 0 "CALL konductor
ARG tick
ARG --remote
ARG git@github.com:example/serving.git
TOKEN " "$SCRIPTS_DIR/tick.sh" "${CIRCLE[@]}"

# ------------------------------------------------------------------ the release install
echo "== install.sh, the orb's install command and the action's install step, over HTTP"
# Its own ok/FAIL lines count here; a run that ends early counts as one failure.
install_rc=0
install_out="$(bash scripts/test-install.sh 2>&1)" || install_rc=$?
printf '%s\n' "$install_out" | grep -E '^(ok|FAIL) '
install_pass="$(grep -c '^ok ' <<<"$install_out" || true)"
install_fail="$(grep -c '^FAIL ' <<<"$install_out" || true)"
passed=$((passed + install_pass))
failed=$((failed + install_fail))
if [ "$install_rc" != 0 ] && [ "$install_fail" = 0 ]; then
  fail "scripts/test-install.sh" "exit $install_rc: $(summary "$install_out")"
fi

# ------------------------------------------------------------------ broken copies
echo "== broken copies ($BROKEN)"

# Files that must each have at least one broken copy.
SHIPPED=(
  "$ORB" "$ORB_SRC" "$SCRIPTS_DIR/set-step-state.sh" examples/circleci/config.yml
  examples/github/workflows/unit-tests.yml examples/github/workflows/konductor-tick.yml
  integrations/github/action.yml .github/workflows/release.yml "$ARGO/konductor-tick-cronjob.yaml" "$ARGO/rbac.yaml" "$ARGO/rbac-production.yaml"
  "$ARGO/verify-deployment-workflowtemplate.yaml" "$ARGO/verify-deployment-workflowtemplate-production.yaml"
  "$ARGO/sensor.yaml" "$ARGO/sensor-production.yaml" "$ARGO/eventsource.yaml" "$ARGO/eventbus.yaml"
  "$ARGO/webhook-ingress.yaml"
  "$ARGO/argocd-application-staging.yaml" "$ARGO/argocd-application-production.yaml"
  "$ARGO/argocd-appproject.yaml" integrations/serve/konductor-serve.yaml Dockerfile
)

if out="$(python3 - "$BROKEN" <<'PY' 2>&1
import pathlib, sys, yaml
bad = []
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.y*ml")):
    try:
        list(yaml.safe_load_all(p.read_text()))
    except yaml.YAMLError as exc:
        bad.append(f"{p}: {exc}")
if bad:
    sys.exit("\n".join(bad))
PY
)"; then
  pass "$BROKEN/*.y*ml (all parse as YAML, so each rejection is about content)"
else
  fail "$BROKEN (YAML parse)" "$(summary "$out")"
fi

covered=()
manifest_entries=0
while IFS='|' read -r fixture copy_of validator pattern || [ -n "$fixture" ]; do
  fixture="$(echo "$fixture" | xargs)"
  [ -n "$fixture" ] && [ "${fixture:0:1}" != "#" ] || continue
  copy_of="$(echo "$copy_of" | xargs)"
  validator="$(echo "$validator" | xargs)"
  pattern="$(echo "$pattern" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
  manifest_entries=$((manifest_entries + 1))
  path="$BROKEN/$fixture"
  label="$path ($validator)"
  if [ ! -e "$path" ]; then
    fail "$label" "the fixture does not exist"
    continue
  fi
  covered+=("$copy_of")
  rc=0
  out="$(run_validator "$validator" "$path" "$copy_of" 2>&1)" || rc=$?
  if [ "$rc" = 0 ]; then
    fail "$label" "accepted, but it is broken on purpose"
  elif ! grep -Eq -- "$pattern" <<<"$out"; then
    fail "$label" "rejected (exit $rc), but not for the expected reason /$pattern/: $(summary "$out")"
  else
    pass "$label rejected: $(grep -E -m1 -o -- ".{0,60}$pattern.{0,60}" <<<"$out" | tr -s '[:space:]' ' ' | head -c 160)"
  fi
done <"$BROKEN/MANIFEST"

uncovered=()
for f in "${SHIPPED[@]}"; do
  found=0
  for c in "${covered[@]}"; do [ "$c" = "$f" ] && found=1; done
  [ "$found" = 1 ] || uncovered+=("$f")
done
if ((manifest_entries == 0)); then
  fail "$BROKEN/MANIFEST" "lists no broken copy"
elif ((${#uncovered[@]})); then
  fail "$BROKEN/MANIFEST" "no broken copy of: ${uncovered[*]}"
else
  pass "$BROKEN/MANIFEST (each of the ${#SHIPPED[@]} shipped files has a broken copy)"
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
