#!/usr/bin/env bash
# Samples the timed loop of one benchmark case with perf (cpu-clock; this VM has no hardware counters) and prints
# the hottest methods, then the hottest instructions of the methods whose names contain PATTERN: the JIT's code is
# read from the live process at the addresses of its perf map, disassembled with objdump, and annotated.
# Usage: ./perf-profile.sh PATTERN SECONDS CASE METHOD [FLOWS] [RUN_SECONDS]
#   e.g. ./perf-profile.sh "TrackTuple InBatch" 8 established-tcp batch32 1000000 12
set -eu
cd "$(dirname "$0")"
pattern=$1; secs=$2; shift 2
dll=$(pwd)/bin/Release/net10.0/Conntrack.Benchmarks.dll
out=$(mktemp -d)
export DOTNET_PerfMapEnabled=3 DOTNET_EnableWriteXorExecute=0
dotnet "$dll" profile "$@" 2>"$out/err" &
pid=$!
until grep -q "^# profiling" "$out/err" 2>/dev/null; do sleep 0.2; done
sleep 1
perf record -e cpu-clock -F 4000 -g -p "$pid" -o "$out/perf.data" -- sleep "$secs" >/dev/null 2>&1
python3 - "$pid" "$out" $pattern <<'PY'
import re, sys
pid, out, pats = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
with open(f'/tmp/perf-{pid}.map') as m, open(f'/proc/{pid}/mem', 'rb') as mem, open(f'{out}/methods.txt', 'w') as idx:
    for line in m:
        addr, size, name = line.rstrip('\n').split(' ', 2)
        if any(p in name for p in pats) and ('Optimized' in name or 'Tier1' in name):
            mem.seek(int(addr, 16)); code = mem.read(int(size, 16))
            open(f'{out}/{addr}.bin', 'wb').write(code)
            idx.write(f'{addr} {name[:150]}\n')
PY
wait "$pid"
grep -v '^$' "$out/err"
perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep '%' | head -15 | cut -c1-160 || true
perf script -i "$out/perf.data" -F ip --hide-call-graph 2>/dev/null > "$out/ips.txt"
while read -r addr name; do
  python3 - "$out" "$addr" "$name" <<'PY'
import collections, os, subprocess, sys
out, addr, name = sys.argv[1], int(sys.argv[2], 16), sys.argv[3]
binf = f'{out}/{sys.argv[2]}.bin'; size = os.path.getsize(binf)
ips = [int(x, 16) for x in open(f'{out}/ips.txt').read().split()]
c = collections.Counter(ip - addr for ip in ips if addr <= ip < addr + size)
if not c: sys.exit()
print(f'\n== {name}: {100 * sum(c.values()) / len(ips):.1f}% of samples; hottest instructions (sample lands after the stalled one):')
dis = subprocess.run(['objdump', '-D', '-b', 'binary', '-mi386:x86-64', '-M', 'intel', binf], capture_output=True, text=True).stdout.splitlines()
lines = {}
for l in dis:
    head = l.split(':', 1)[0].strip()
    try: lines[int(head, 16)] = l
    except ValueError: pass
for off, n in c.most_common(6):
    prev = max((o for o in lines if o < off), default=None)
    print(f'  {100 * n / len(ips):5.2f}%  {lines.get(off, hex(off)).strip()[:80]}   (after: {lines.get(prev, "").strip()[:60]})')
PY
done < "$out/methods.txt"
echo "perf data and code dumps: $out"
