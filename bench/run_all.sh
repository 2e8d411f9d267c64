#!/usr/bin/env bash
# Every benchmark in one go: the runner's (spawn rate, output MB/s) and the engine's
# (throughput, fire lag, tick cost and RSS at 1M jobs, failover) and the API's (GetStatus
# latency at a fixed rate, StreamOutput MB/s) and the schedule's (next_after per call,
# missed-slot counting, planning a job far behind), then issue 17's targets side by side.
# Pass --quick for a smoke check of the engine and targets benches. Figures and how to
# read them: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
echo "== runner (bench/runner_bench.py)"
$PY bench/runner_bench.py
echo
echo "== sandbox pieces (bench/sandbox_flags_bench.py)"
$PY bench/sandbox_flags_bench.py
echo
echo "== engine (bench/engine_bench.py $*)"
$PY bench/engine_bench.py "$@"
echo
echo "== API (bench/api_bench.py)"
$PY bench/api_bench.py
echo
echo "== schedule (bench/schedule_bench.py)"
$PY bench/schedule_bench.py
echo
echo "== SQL jobs (bench/sql_bench.py)"
$PY bench/sql_bench.py
echo "== output archive (bench/archive_bench.py)"
$PY bench/archive_bench.py
echo
echo "== issue 17 targets (bench/targets_bench.py $*)"
$PY bench/targets_bench.py "$@"
