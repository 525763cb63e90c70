#!/usr/bin/env bash
# Regenerates every table and plot of docs/performance.md from fresh measurements.
#
#   scripts/perf-report.sh            full run (~15 minutes on 2 cores), rewrites docs/performance.md
#                                     and docs/perf/*.png
#   scripts/perf-report.sh --quick    smoke run (CI): every benchmark once, briefly; the report is
#                                     written into build/bench/report/ and the committed one is
#                                     left alone
#
# Needs what `scripts/install-deps.sh --all` installs (Google Benchmark, Go, gnuplot) and Node.
# The machine should be otherwise idle: the figures are medians and ratios within one run, but
# wake-up and detection latencies still depend on idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
  --quick) quick=true ;;
  "") ;;
  *)
    echo "usage: scripts/perf-report.sh [--quick]" >&2
    exit 2
    ;;
esac

out=build/bench/report
bin=build/bench/benchmarks
rm -rf "$out"
mkdir -p "$out"

echo "== building (cmake --workflow --preset bench)"
cmake --workflow --preset bench >"$out/build.log" 2>&1 || {
  tail -50 "$out/build.log" >&2
  exit 1
}

if $quick; then
  gbench=(--benchmark_min_time=0.001 --benchmark_repetitions=1)
  time_flags=(--quick)
  disconnect_flags=(--quick)
else
  gbench=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
  time_flags=()
  disconnect_flags=()
fi

echo "== core operations against std::stop_token (multi-threaded process)"
"$bin/ctoken_bench" "${gbench[@]}" --benchmark_out="$out/core.json" --benchmark_out_format=json | tee "$out/core.txt"
echo "== core operations (single-threaded process)"
"$bin/ctoken_bench" --single_threaded "${gbench[@]}" --benchmark_out="$out/core_st.json" \
  --benchmark_out_format=json | tee "$out/core_st.txt"
echo "== time and waiting"
"$bin/ctoken_bench_time" "${time_flags[@]}" --json "$out/time.json" | tee "$out/time.txt"
echo "== disconnect detection (ctoken server against Go, Node and a bare epoll floor)"
"$bin/disconnect/ctoken_disconnect_bench" "${disconnect_flags[@]}" --json "$out/disconnect.json" |
  tee "$out/disconnect.txt"

# What the figures were measured on.
python3 - "$out/machine.json" <<'EOF'
import json, os, platform, re, subprocess, sys, datetime
def first_line(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[0].strip()
    except Exception:
        return None
cpu = None
with open("/proc/cpuinfo", encoding="utf-8") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
bench = first_line(["dpkg-query", "-W", "-f=${Version}", "libbenchmark-dev"])
info = {
    "date": datetime.date.today().isoformat(),
    "cpu": cpu,
    "cpus": os.cpu_count(),
    "kernel": platform.release(),
    "cxx": first_line(["g++", "--version"]),
    "benchmark": bench,
    "go": first_line(["go", "version"]),
    "node": first_line(["node", "--version"]),
}
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(info, f, indent=1)
EOF

if $quick; then
  cp docs/performance.md "$out/performance.md"
  python3 benchmarks/report/make_report.py --in "$out" --doc "$out/performance.md" --plots "$out/perf"
else
  python3 benchmarks/report/make_report.py --in "$out" --doc docs/performance.md --plots docs/perf
fi
