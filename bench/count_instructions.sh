#!/usr/bin/env bash
# Instructions per round trip of bench_ask's gevent scenarios, counted by
# valgrind's callgrind: unlike ops/s, the count does not move with the
# machine's load, so two versions of the code can be compared on a busy
# machine. Each scenario runs N and 3N round trips; the difference over 2N
# leaves out start-up and import costs.
#
#     bench/count_instructions.sh [N] [SCENARIO ...]    # default: 3000 full minimal chain
#     CALLERS=50 bench/count_instructions.sh ...          # N round trips shared by 50 greenlets
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONHASHSEED=${PYTHONHASHSEED:-0}  # the same dict layouts every run: comparable counts
callers=${CALLERS:-1}
n=${1:-3000}
shift || true
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(full minimal chain)
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

count() {  # scenario ops -> instructions of the whole run
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$PYTHON" bench/bench_ask.py --count "$1" --ops "$2" --callers "$callers" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

for scenario in "${scenarios[@]}"; do
    low=$(count "$scenario" "$n")
    high=$(count "$scenario" $((3 * n)))
    echo "$scenario, $callers caller(s): $(( (high - low) / (2 * n) )) instructions per round trip"
done
