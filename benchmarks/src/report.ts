export interface CaseResult {
  case: string;
  ours_ms: number;
  peer_ms: number | null;
  torch_ms: number | null;
  /** Speedup over the tfjs peer: peer_ms / ours_ms. */
  ratio: number | null;
  /** Speedup over the parity oracle, Debian's PyTorch 1.13 (reference BLAS): torch_ms / ours_ms. */
  ratio_torch: number | null;
  /** pip's PyTorch 2.x (MKL, oneDNN), the speed peer; null when absent. */
  torch2_ms: number | null;
  /** Speedup over PyTorch 2.x: torch2_ms / ours_ms (below 1: ours is slower). */
  ratio_torch2: number | null;
  gflops: number | null;
  gbps: number | null;
  /** Our GFLOP/s as a percentage of the measured FMA ceiling. */
  pct_fma_ceiling: number | null;
  us_per_op: number | null;
  err_peer: number | null;
  err_torch: number | null;
  err_torch2: number | null;
  /** Extra GPU memory (peak live bytes above the inputs) of our run, and of the baseline's. */
  peak_mb: number;
  baseline: string | null;
  baseline_ms: number | null;
  /** Speedup over our own baseline path: baseline_ms / ours_ms. */
  ratio_baseline: number | null;
  baseline_peak_mb: number | null;
  /** Why the baseline could not run here, if it could not. */
  baseline_error: string | null;
  ours_times_ms: number[];
  peer_times_ms: number[];
  torch2_times_ms: number[];
  /** Each round's medians (PyTorch 2.x timed just before ours): how far the ratio moves within one run. */
  rounds: { ours_ms: number; torch2_ms: number | null }[];
}

const fmt = (x: number | null, digits = 1) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const err = (x: number | null) => (x === null ? '-' : x.toExponential(1));

/** The results as an aligned text table. */
export function formatTable(results: CaseResult[]): string {
  const header = [
    'case',
    'ours ms',
    'tfjs ms',
    't2 ms',
    't1.13 ms',
    'x tfjs',
    'x t2',
    'x t1.13',
    'GFLOP/s',
    'GB/s',
    '% FMA',
    'us/op',
    'peak MB',
    'x base',
    'base MB',
    'err tfjs',
    'err t1.13',
  ];
  const rows = results.map((r) => [
    r.case,
    fmt(r.ours_ms, 2),
    fmt(r.peer_ms, 2),
    fmt(r.torch2_ms, 2),
    fmt(r.torch_ms, 2),
    fmt(r.ratio, 2),
    fmt(r.ratio_torch2, 2),
    fmt(r.ratio_torch, 2),
    fmt(r.gflops),
    fmt(r.gbps, 2),
    fmt(r.pct_fma_ceiling, 0),
    fmt(r.us_per_op),
    fmt(r.peak_mb, 1),
    r.baseline_error ? 'n/a' : fmt(r.ratio_baseline, 2),
    r.baseline_error ? 'n/a' : fmt(r.baseline_peak_mb, 1),
    err(r.err_peer),
    err(r.err_torch),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** One line per case with a baseline: what it was, and why it could not run where it could not. */
export function formatBaselines(results: CaseResult[]): string {
  return results
    .filter((r) => r.baseline)
    .map((r) =>
      r.baseline_error
        ? `  ${r.case}: baseline '${r.baseline}' cannot run here: ${r.baseline_error}`
        : `  ${r.case}: baseline '${r.baseline}' ${fmt(r.baseline_ms, 2)} ms, ${fmt(r.baseline_peak_mb, 1)} MB (ours ${fmt(r.peak_mb, 1)} MB)`,
    )
    .join('\n');
}

/** One line per case against PyTorch 2.x: each round's ratio (its t2 median / our median), so the spread shows. */
export function formatRounds(results: CaseResult[]): string {
  return results
    .filter((r) => r.rounds.some((x) => x.torch2_ms !== null))
    .map((r) => `  ${r.case}: ${r.rounds.map((x) => fmt(x.torch2_ms! / x.ours_ms, 2)).join(', ')}`)
    .join('\n');
}
