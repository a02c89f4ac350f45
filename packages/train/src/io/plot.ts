import type { RgbImage } from './png.js';

/**
 * A small line chart (no text rendering: the series are coloured lines on a light grid, log-scaled when
 * the values span more than a decade). Enough to see a loss curve go down.
 */
export function lineChart(series: { values: number[]; color: [number, number, number] }[], width = 480, height = 240): RgbImage {
  const data = new Uint8Array(width * height * 3).fill(255);
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  if (all.length === 0) return { width, height, data };
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  const log = hi / lo > 10;
  const f = (v: number) => (log ? Math.log10(v) : v);
  const [a, b] = [f(lo), f(hi) === f(lo) ? f(lo) + 1 : f(hi)];
  const pad = 10;
  const set = (x: number, y: number, c: [number, number, number]) => {
    if (x >= 0 && y >= 0 && x < width && y < height) data.set(c, 3 * (y * width + x));
  };
  for (let g = 0; g <= 4; g++) {
    const y = Math.round(pad + ((height - 2 * pad) * g) / 4);
    for (let x = pad; x < width - pad; x++) set(x, y, [225, 225, 225]);
  }
  for (const s of series) {
    const n = s.values.length;
    let prev: [number, number] | null = null;
    s.values.forEach((v, i) => {
      if (!(v > 0) || !Number.isFinite(v)) return;
      const x = Math.round(pad + ((width - 2 * pad) * i) / Math.max(n - 1, 1));
      const y = Math.round(height - pad - ((height - 2 * pad) * (f(v) - a)) / (b - a));
      if (prev) {
        const steps = Math.max(Math.abs(x - prev[0]), Math.abs(y - prev[1]), 1);
        for (let k = 0; k <= steps; k++) set(Math.round(prev[0] + ((x - prev[0]) * k) / steps), Math.round(prev[1] + ((y - prev[1]) * k) / steps), s.color);
      }
      prev = [x, y];
    });
  }
  return { width, height, data };
}
