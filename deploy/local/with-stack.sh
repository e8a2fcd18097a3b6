#!/usr/bin/env bash
# Run a command with the local stack up: start what is not running, run the command, then stop
# only what this script started (servers already running, or external ones, are left alone).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python

before=$($PY -m loyalnest.localstack status 2>/dev/null | awk '$2 == "up" {print $1}')
if ! $PY -m loyalnest.localstack up; then
  echo "local stack failed to start" >&2
  exit 1
fi
stop_started() {
  local only=()
  for svc in $($PY -m loyalnest.localstack status 2>/dev/null | awk '$2 == "up" && $4 == "ours," {print $1}'); do
    grep -qx "$svc" <<<"$before" || only+=(--only "$svc")
  done
  # One call, so services stop in reverse start order (the registry before PostgreSQL).
  [ ${#only[@]} -eq 0 ] || $PY -m loyalnest.localstack down "${only[@]}"
}
trap stop_started EXIT
$PY -m loyalnest.bootstrap || exit 1
"$@"
