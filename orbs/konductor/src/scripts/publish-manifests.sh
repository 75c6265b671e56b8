#!/usr/bin/env bash
# Publish rendered Kubernetes manifests with `locomotive publish-manifests`:
# a dangling commit (parent: the previous commit under the tag) and a moved
# lightweight tag (staging-k8s or k8s-production) that Argo CD syncs from.
#
# Environment: KONDUCTOR_PARAM_DIR, KONDUCTOR_PARAM_TAG, and KONDUCTOR_PARAM_REMOTE,
# KONDUCTOR_PARAM_TOKEN_VAR, KONDUCTOR_PARAM_IDENTITY as in set-step-state.sh.
set -euo pipefail

die() { printf 'konductor: error: %s\n' "$*" >&2; exit 2; }

dir="${KONDUCTOR_PARAM_DIR:-}"
[ -d "$dir" ] || die "manifest directory '$dir' does not exist"
case "${KONDUCTOR_PARAM_TAG:-}" in
  staging-k8s|k8s-production) ;;
  *) die "tag must be staging-k8s or k8s-production, not '${KONDUCTOR_PARAM_TAG:-}'" ;;
esac

tag="" ci_remote=""
if [ -n "${CIRCLECI:-}" ] || [ -n "${CIRCLE_BUILD_URL:-}" ]; then
  tag="${CIRCLE_TAG:-}"
  ci_remote="${CIRCLE_REPOSITORY_URL:-}"
elif [ -n "${GITHUB_ACTIONS:-}" ] && [ "${GITHUB_REF_TYPE:-}" = tag ]; then
  tag="${GITHUB_REF_NAME:-}"
  ci_remote="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}.git"
fi
[ -n "$tag" ] || die "no triggering tag: this job did not start from a Konductor trigger tag"

args=(publish-manifests --dir "$dir" --tag "$KONDUCTOR_PARAM_TAG" --triggering-tag "$tag")
if [ -n "${KONDUCTOR_PARAM_REMOTE:-}" ]; then
  args+=(--remote "$KONDUCTOR_PARAM_REMOTE")
elif [ -z "${KONDUCTOR_REMOTE:-}" ] && [ -n "$ci_remote" ]; then
  args+=(--remote "$ci_remote")
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

printf 'konductor: locomotive %s\n' "${args[*]}"
exec locomotive "${args[@]}"
