#!/usr/bin/env bash
# Run `konductor tick` once. Environment: KONDUCTOR_PARAM_REMOTE (optional);
# KONDUCTOR_REMOTE and KONDUCTOR_TOKEN are read by konductor itself.
set -euo pipefail

args=(tick)
if [ -n "${KONDUCTOR_PARAM_REMOTE:-}" ]; then
  args+=(--remote "$KONDUCTOR_PARAM_REMOTE")
elif [ -z "${KONDUCTOR_REMOTE:-}" ] && [ -n "${CIRCLE_REPOSITORY_URL:-}" ]; then
  args+=(--remote "$CIRCLE_REPOSITORY_URL")
fi
printf 'konductor: konductor %s\n' "${args[*]}"
exec konductor "${args[@]}"
