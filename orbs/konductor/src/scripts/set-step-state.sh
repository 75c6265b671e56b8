#!/usr/bin/env bash
# Record this CI job's state with `locomotive set-step-state`.
# Shared by the CircleCI orb (locomotive-on-start, locomotive-on-end) and the
# GitHub Action (integrations/github).
#
# Environment:
#   KONDUCTOR_PARAM_STATE      started | success | failure
#   KONDUCTOR_PARAM_REMOTE     remote URL; empty: $KONDUCTOR_REMOTE, else the CI's repository URL
#   KONDUCTOR_PARAM_TOKEN_VAR  name of the variable holding the https token (default KONDUCTOR_TOKEN)
#   KONDUCTOR_PARAM_IDENTITY   sets KONDUCTOR_IDENTITY when not empty
#   KONDUCTOR_PARAM_INFO       an extra --info-string when not empty
#   KONDUCTOR_PARAM_TICK       true: pass --tick after a terminal state
#   KONDUCTOR_RETRIES          attempts on exit code 3 (remote/git failure), default 3
#   KONDUCTOR_RETRY_DELAY      seconds between attempts, multiplied by the attempt number, default 5
#   KONDUCTOR_STEP             optional: the step this job runs; a trigger tag of another step is refused
# The triggering tag, commit and job URL come from CircleCI (CIRCLE_TAG,
# CIRCLE_SHA1, CIRCLE_BUILD_URL, CIRCLE_REPOSITORY_URL) or GitHub Actions
# (GITHUB_REF_TYPE/GITHUB_REF_NAME, GITHUB_SHA, GITHUB_SERVER_URL,
# GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT).
set -euo pipefail

die() { printf 'konductor: error: %s\n' "$*" >&2; exit 2; }

state="${KONDUCTOR_PARAM_STATE:-}"
case "$state" in
  started|success|failure) ;;
  *) die "state must be started, success or failure, not '$state'" ;;
esac

tag="" sha="" job_url="" ci_remote=""
if [ -n "${CIRCLECI:-}" ] || [ -n "${CIRCLE_BUILD_URL:-}" ]; then
  tag="${CIRCLE_TAG:-}"
  sha="${CIRCLE_SHA1:-}"
  job_url="${CIRCLE_BUILD_URL:-}"
  ci_remote="${CIRCLE_REPOSITORY_URL:-}"
  if [ -z "$tag" ]; then
    die "CIRCLE_TAG is empty: this job did not start from a tag. Give it, and every job it requires," \
      "tag filters (/^release=\\d+\\.\\d+=STEP\\.\\d+\$/) and 'branches: ignore: /.*/'."
  fi
elif [ -n "${GITHUB_ACTIONS:-}" ]; then
  [ "${GITHUB_REF_TYPE:-}" = tag ] || die "GITHUB_REF '${GITHUB_REF:-}' is not a tag: trigger the workflow with on.push.tags only."
  tag="${GITHUB_REF_NAME:-}"
  sha="${GITHUB_SHA:-}"
  job_url="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}/attempts/${GITHUB_RUN_ATTEMPT:-1}"
  ci_remote="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}.git"
else
  die "neither CircleCI nor GitHub Actions environment found"
fi
# Only a trigger tag may start a job. A state or control tag here means the
# CI's tag filter is wrong; reporting for it would corrupt the train.
if ! [[ "$tag" =~ ^release=[0-9]+\.[0-9]+=([A-Za-z0-9_-]+)\.[0-9]+$ ]]; then
  die "'$tag' is not a Konductor trigger tag (release=N.P=<step>.<job>): fix the job's tag filter"
fi
step="${BASH_REMATCH[1]}"
if [ -n "${KONDUCTOR_STEP:-}" ] && [ "$step" != "$KONDUCTOR_STEP" ]; then
  die "'$tag' belongs to step '$step', but this job runs step '$KONDUCTOR_STEP': fix the job's tag filter"
fi

args=(set-step-state --state-name "$state" --triggering-tag "$tag")
[ -z "$sha" ] || args+=(--sha "$sha")
[ -z "$job_url" ] || args+=(--info-string "job_url:$job_url")
[ -z "${KONDUCTOR_PARAM_INFO:-}" ] || args+=(--info-string "$KONDUCTOR_PARAM_INFO")

# Remote: the parameter, else $KONDUCTOR_REMOTE (read by locomotive itself),
# else the repository the CI built.
if [ -n "${KONDUCTOR_PARAM_REMOTE:-}" ]; then
  args+=(--remote "$KONDUCTOR_PARAM_REMOTE")
elif [ -z "${KONDUCTOR_REMOTE:-}" ] && [ -n "$ci_remote" ]; then
  args+=(--remote "$ci_remote")
fi

if [ "${KONDUCTOR_PARAM_TICK:-false}" = true ] && [ "$state" != started ]; then
  args+=(--tick)
fi

token_var="${KONDUCTOR_PARAM_TOKEN_VAR:-KONDUCTOR_TOKEN}"
case "$token_var" in
  [A-Za-z_]*) ;;
  *) die "token-env-var '$token_var' is not a variable name" ;;
esac
if [ "$token_var" != KONDUCTOR_TOKEN ] && [ -n "${!token_var:-}" ]; then
  export KONDUCTOR_TOKEN="${!token_var}"
fi
if [ -n "${KONDUCTOR_PARAM_IDENTITY:-}" ]; then
  export KONDUCTOR_IDENTITY="$KONDUCTOR_PARAM_IDENTITY"
fi

command -v locomotive >/dev/null 2>&1 || die "locomotive is not on PATH: run the install step first"

attempts="${KONDUCTOR_RETRIES:-3}"
delay="${KONDUCTOR_RETRY_DELAY:-5}"
attempt=1
while :; do
  printf 'konductor: locomotive %s\n' "${args[*]}"
  rc=0
  locomotive "${args[@]}" || rc=$?
  if [ "$rc" -eq 3 ] && [ "$attempt" -lt "$attempts" ]; then
    printf 'konductor: remote or git failure (exit 3), attempt %d of %d; retrying\n' "$attempt" "$attempts" >&2
    sleep $((delay * attempt))
    attempt=$((attempt + 1))
    continue
  fi
  break
done

case "$rc" in
  0) printf 'konductor: recorded %s for %s\n' "$state" "$tag" ;;
  2) printf 'konductor: locomotive rejected its input (exit 2)\n' >&2 ;;
  3) printf 'konductor: remote or git failure (exit 3) after %d attempts\n' "$attempt" >&2 ;;
  4) printf 'konductor: the remote rejected the credentials (exit 4): check KONDUCTOR_TOKEN or the ssh key\n' >&2 ;;
  5) printf 'konductor: a concurrent change won (exit 5): the state tag may already exist\n' >&2 ;;
  *) printf 'konductor: locomotive failed (exit %d)\n' "$rc" >&2 ;;
esac
exit "$rc"
