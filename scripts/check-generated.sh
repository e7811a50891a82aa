#!/usr/bin/env bash
# Fails when internal/webhook/wire is not what api/openapi.yaml generates:
# the generated Go must be committed and never edited by hand (DESIGN §1).
# Run from anywhere; CI runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

go generate ./internal/webhook/wire
# Untracked files count too: a newly generated file that was never added is
# as stale as an edited one.
untracked=$(git ls-files --others --exclude-standard -- internal/webhook/wire)
if ! git diff --exit-code -- internal/webhook/wire || [ -n "$untracked" ]; then
  [ -n "$untracked" ] && echo "untracked: $untracked"
  echo >&2 "internal/webhook/wire is out of date with api/openapi.yaml."
  echo >&2 "Fix: run 'go generate ./internal/webhook/wire' and commit the result (never edit wire.gen.go by hand)."
  exit 1
fi
echo "internal/webhook/wire matches api/openapi.yaml"
