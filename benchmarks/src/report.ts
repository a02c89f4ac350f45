export interface CaseResult {
  case: string;
  ours_ms: number;
  peer_ms: number | null;
  torch_ms: number | null;
  /** Speedup over the tfjs peer: peer_ms / ours_ms. */
  ratio: number | null;
  /** Speedup over PyTorch on the CPU: torch_ms / ours_ms. */
  ratio_torch: number | null;
  gflops: number | null;
  gbps: number | null;
  /** Our GFLOP/s as a percentage of the measured FMA ceiling. */
  pct_fma_ceiling: number | null;
  us_per_op: number | null;
  err_peer: number | null;
  err_torch: number | null;
  ours_times_ms: number[];
  peer_times_ms: number[];
}

const fmt = (x: number | null, digits = 1) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const err = (x: number | null) => (x === null ? '-' : x.toExponential(1));

/** The results as an aligned text table. */
export function formatTable(results: CaseResult[]): string {
  const header = ['case', 'ours ms', 'tfjs ms', 'torch ms', 'x tfjs', 'x torch', 'GFLOP/s', 'GB/s', '% FMA', 'us/op', 'err tfjs', 'err torch'];
  const rows = results.map((r) => [
    r.case,
    fmt(r.ours_ms, 2),
    fmt(r.peer_ms, 2),
    fmt(r.torch_ms, 2),
    fmt(r.ratio, 2),
    fmt(r.ratio_torch, 2),
    fmt(r.gflops),
    fmt(r.gbps, 2),
    fmt(r.pct_fma_ceiling, 0),
    fmt(r.us_per_op),
    err(r.err_peer),
    err(r.err_torch),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
