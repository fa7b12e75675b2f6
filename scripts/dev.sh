#!/usr/bin/env bash
# The front door. Sets up .venv/ (Python >= 3.11, package installed editable) on first use, then:
#   bash scripts/dev.sh demo [voxmeter demo options]   run the embedded demo server
#   bash scripts/dev.sh test [pytest options]          lint, type-check and run the whole test suite
#                                                      (in parallel, then the `serial` tests alone)
#   bash scripts/dev.sh setup                          only set up
#   bash scripts/dev.sh audit                          pip-audit of requirements.lock
#   bash scripts/dev.sh lock                           rewrite requirements.lock from pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "voxmeter needs Python 3.11 or newer on PATH (or set PYTHON=/path/to/python)" >&2
  return 1
}

setup() {
  if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
  fi
  if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] ||
     [ requirements.lock -nt .venv/.installed ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]'
    touch .venv/.installed
  fi
  # The dashboard's message catalogs, compiled from their .po files (the .mo are not kept).
  .venv/bin/pybabel compile --use-fuzzy -d src/voxmeter/entrypoints/dashboard/locale -D messages \
    >/dev/null
  # axe-core for the dashboard's accessibility test, from the npm registry (locked).
  if command -v npm >/dev/null 2>&1 && [ ! -d tests/e2e/browser/node_modules/axe-core ]; then
    (cd tests/e2e/browser && npm ci --silent --no-audit --no-fund)
  fi
}

# The locked versions are what setup installs and what the audit checks.
lock() {
  local tmp
  tmp=$(mktemp -d)
  "$(pick_python)" -m venv "$tmp/venv"
  "$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
  "$tmp/venv/bin/python" -m pip install --quiet -e '.[dev]'
  {
    echo "# The exact versions the test suite runs with (runtime and dev), used as pip constraints by"
    echo "# scripts/dev.sh and audited by pip-audit in .ci/run. Regenerate: bash scripts/dev.sh lock"
    "$tmp/venv/bin/python" -m pip freeze --exclude-editable
  } > requirements.lock
  rm -rf "$tmp"
}

# Known vulnerabilities in the locked versions fail. A version the advisory service cannot be
# asked about is listed and reported as NOT AUDITED, which is not a pass.
audit() {
  local report
  report=$(mktemp)
  .venv/bin/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off \
    --format json --output "$report" 2>/dev/null || true
  .venv/bin/python scripts/audit_report.py "$report" requirements.lock
  local status=$?
  rm -f "$report"
  return $status
}

# Two phases (tests/conftest.py): the tests not marked `serial` in parallel workers, then the
# `serial` ones (latency, time and memory bounds) one at a time, so nothing shares their CPU.
# Both get the same options; either failing fails the command. A phase left with no test by
# the options (pytest's exit 5) is not a failure unless both are.
# VOXMETER_TEST_WORKERS sets the number of workers (measured best on 2 cores: see
# docs/development.md).
run_tests() {
  local parallel=0 serial=0
  .venv/bin/python -m pytest -n "${VOXMETER_TEST_WORKERS:-3}" --dist worksteal --phase parallel \
    "$@" || parallel=$?
  .venv/bin/python -m pytest --phase serial "$@" -n 0 || serial=$?
  if [ "$parallel" -eq 5 ] && [ "$serial" -eq 5 ]; then return 5; fi
  [ "$parallel" -eq 5 ] && parallel=0
  [ "$serial" -eq 5 ] && serial=0
  if [ "$parallel" -ne 0 ]; then return "$parallel"; fi
  return "$serial"
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  setup) setup ;;
  lock) lock ;;
  audit) setup; audit ;;
  demo) setup; exec .venv/bin/voxmeter demo "$@" ;;
  test)
    setup
    .venv/bin/ruff check src tests bench scripts
    .venv/bin/mypy
    run_tests "$@"
    ;;
  *) echo "usage: bash scripts/dev.sh demo|test|setup [options]" >&2; exit 2 ;;
esac
