#!/usr/bin/env bash
# Checks the kernels on whatever WebGPU adapter Dawn finds (a GPU, or lavapipe on the CPU): runs the parity suites
# once with the adapter's own kernel choice and once with each kernel variant forced in turn (LEFFA_FORCE_KERNELS,
# see test/helpers/force-kernels.ts), then the CI benchmark profile, and writes every log, the vitest and benchmark
# JSON and a summary.md into one folder.
#
#   bash scripts/gpu-check.sh [out-dir]            (default gpu-check/<UTC time>)
#   GPU_CHECK_TESTS="test/parity/conv.test.ts ..." bash scripts/gpu-check.sh     (narrower suites)
#   GPU_CHECK_VARIANTS="matmul=tiled conv=register" bash scripts/gpu-check.sh    (only these variants)
#   GPU_CHECK_BENCH=0 bash scripts/gpu-check.sh    (no benchmark)
#
# Exits non-zero when a suite or the benchmark's result checks fail; a variant the adapter cannot run (the
# subgroup kernels without the subgroups feature) is reported as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
OUT="${1:-gpu-check/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
TESTS="${GPU_CHECK_TESTS:-test/parity packages/core/test/matmul.test.ts packages/core/test/indexing.test.ts packages/core/test/nn-ops.test.ts}"
VARIANTS="${GPU_CHECK_VARIANTS:-matmul=tiled matmul=register matmul=broadcast conv=register conv=broadcast convAlgorithm=direct convAlgorithm=winograd convAlgorithm=winograd4 convAlgorithm=sliding convLoads=scalar sort=workgroup sort=fused rowLanes=8 rowLanes=64}"
SUMMARY="$OUT/summary.md"
status=0

[ -d node_modules ] || npm ci --no-audit --no-fund
if ! node scripts/probe-adapter.mjs > "$OUT/adapter.log" 2>&1; then
  echo "gpu-check: no WebGPU adapter ($(tail -1 "$OUT/adapter.log")); run scripts/setup-webgpu.sh" >&2
  exit 1
fi
ADAPTER="$(grep -m1 '^webgpu adapter:' "$OUT/adapter.log" | sed 's/^webgpu adapter: //')"
# The adapter's features decide which variants can run (the 'broadcast' kernels need subgroups).
FEATURES="$(node -e "
  const { create, globals } = await import('webgpu'); Object.assign(globalThis, globals);
  const a = await create([]).requestAdapter(); console.log([...a.features].join(' ')); process.exit(0);
" --input-type=module 2>/dev/null || true)"
[ -d test/golden/out ] || { bash scripts/setup-oracle.sh && npm run golden; } > "$OUT/golden.log" 2>&1 || { echo "gpu-check: golden files could not be made (see $OUT/golden.log)" >&2; exit 1; }

{
  echo "# gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- adapter: $ADAPTER"
  echo "- features: ${FEATURES:-?}"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "- suites: $TESTS"
  echo
  echo "| forced kernels | result | passed | failed | seconds |"
  echo "| --- | --- | ---: | ---: | ---: |"
} > "$SUMMARY"

for variant in auto $VARIANTS; do
  name="${variant//=/-}"
  if [[ "$variant" == *=broadcast ]] && [[ " $FEATURES " != *" subgroups "* ]]; then
    echo "| $variant | skipped: the adapter has no subgroups feature | | | |" >> "$SUMMARY"
    continue
  fi
  force=""; [ "$variant" = auto ] || force="$variant"
  echo "gpu-check: suites with ${force:-the automatic kernel choice}..."
  start=$SECONDS
  # shellcheck disable=SC2086
  LEFFA_FORCE_KERNELS="$force" npx vitest run $TESTS --reporter=default --reporter=json --outputFile="$OUT/vitest-$name.json" > "$OUT/vitest-$name.log" 2>&1
  rc=$?
  counts="$(node -e "
    const r = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
    console.log(r.numPassedTests + ' ' + r.numFailedTests);
  " "$OUT/vitest-$name.json" 2>/dev/null || echo '- -')"
  read -r passed failed <<< "$counts"
  if [ "$rc" = 0 ]; then result=pass; else result="FAIL (vitest-$name.log)"; status=1; fi
  echo "| ${force:-automatic} | $result | $passed | $failed | $((SECONDS - start)) |" >> "$SUMMARY"
done

if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  echo "gpu-check: CI benchmark profile..."
  [ -f packages/core/dist/index.js ] || npm run build > "$OUT/build.log" 2>&1
  bash benchmarks/setup-torch.sh > "$OUT/setup-torch.log" 2>&1 || true
  if npm run bench -w benchmarks -- --profile ci --out "$OUT/bench-ci.json" > "$OUT/bench-ci.log" 2>&1; then
    bench=pass
  else
    bench="FAIL (bench-ci.log)"
    status=1
  fi
  {
    echo
    echo "## CI benchmark profile: $bench"
    echo
    echo '```'
    sed -n '/^case /,/^wrote /p' "$OUT/bench-ci.log"
    echo '```'
  } >> "$SUMMARY"
fi

echo "gpu-check: results in $OUT"
cat "$SUMMARY"
exit "$status"
