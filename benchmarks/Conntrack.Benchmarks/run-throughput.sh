#!/usr/bin/env bash
# Runs the OVS workload (`throughput`) RUNS times for 1 and for 2 threads, one run at a time, and prints every
# run and the median Mpps of each, with the load average before and after each run (other work on this 2-core
# machine shows up there) and a fingerprint of the engine sources measured.
# Usage: ./run-throughput.sh [RUNS=7] [PACKETS_PER_THREAD=50000000] [BATCH=32] [EXTRA FLAGS, e.g. --pin]
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-7}
packets=${2:-50000000}
batch=${3:-32}
shift $(( $# < 3 ? $# : 3 ))
extra=("$@")
dotnet build -c Release -v q -nologo >/dev/null
dll=bin/Release/net10.0/Conntrack.Benchmarks.dll
echo "engine sources: $(find ../../src/Conntrack -name '*.cs' -not -path '*/obj/*' | sort | xargs cat | sha256sum | cut -c1-16)"
for threads in 1 2; do
  results=()
  for ((i = 1; i <= runs; i++)); do
    before=$(cut -d' ' -f1 /proc/loadavg)
    out=$(dotnet "$dll" throughput --threads "$threads" --packets "$packets" --batch "$batch" "${extra[@]}" 2>/dev/null)
    after=$(cut -d' ' -f1 /proc/loadavg)
    mpps=$(echo "$out" | sed -n 's/ Mpps$//p')
    results+=("$mpps")
    echo "threads=$threads run=$i $(echo "$out" | tr '\n' ' ') load=${before}->${after}"
  done
  median=$(printf '%s\n' "${results[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
  echo "threads=$threads median=${median} Mpps over $runs runs of $packets packets per thread, batch $batch ${extra[*]}"
done
