#!/usr/bin/env bash
# Fails when generated Go is not what its OpenAPI document generates:
# internal/webhook/wire from api/openapi.yaml (the plugin protocol) and
# internal/admin/adminapi from api/admin.yaml (the admin REST API). The
# generated Go must be committed and never edited by hand.
# Run from anywhere; CI runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

check() {
  local pkg=$1 spec=$2
  go generate "./$pkg"
  # Untracked files count too: a newly generated file that was never added is
  # as stale as an edited one.
  local untracked
  untracked=$(git ls-files --others --exclude-standard -- "$pkg")
  if ! git diff --exit-code -- "$pkg" || [ -n "$untracked" ]; then
    [ -n "$untracked" ] && echo "untracked: $untracked"
    echo >&2 "$pkg is out of date with $spec."
    echo >&2 "Fix: run 'go generate ./$pkg' and commit the result (never edit the .gen.go file by hand)."
    exit 1
  fi
  echo "$pkg matches $spec"
}

check internal/webhook/wire api/openapi.yaml
check internal/admin/adminapi api/admin.yaml
