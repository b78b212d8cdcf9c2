#!/usr/bin/env bash
# The benchmark, end to end (docs/performance.md): installs what it needs, then bench/run.py.
#   bash bench/run.sh            # full run, about 8 minutes; writes bench/results/ and docs/performance.md
#   bash bench/run.sh --quick    # smoke test, sizes up to 1,000, about 3 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[bench]'
exec .venv/bin/python -m bench.run "$@"
