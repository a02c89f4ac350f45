import { mkdir, writeFile } from 'node:fs/promises';

/** A training curve: the logged steps and one or more series with a value per logged step. */
export interface LossCurve {
  /** Chart title, e.g. 'train tryon'. */
  title: string;
  steps: number[];
  series: { name: string; values: number[] }[];
}

const COLORS = ['#c8282a', '#285ac8', '#2a9a3c', '#c87d14', '#7a3cb4', '#14a0a0'];

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Tick values 1, 2 or 5 times a power of ten covering [lo, hi] with about `count` intervals. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const label = (v: number) =>
  v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3) ? v.toExponential(0) : String(Number(v.toPrecision(6)));

/**
 * The curve as an SVG line chart: x axis 'step', y axis 'loss' (log scale, labelled so, when the positive values
 * span more than a decade), tick labels, a legend naming each series, and the title. Non-finite values leave a gap
 * (a log axis also skips values <= 0).
 */
export function lossChartSvg(curve: LossCurve, width = 640, height = 360): string {
  const m = { left: 72, right: 20, top: 34, bottom: 48 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const finite = curve.series.flatMap((s) => s.values).filter(Number.isFinite);
  const positive = finite.filter((v) => v > 0);
  const log =
    positive.length === finite.length && positive.length > 0 && Math.max(...positive) / Math.min(...positive) > 10;
  const f = (v: number) => (log ? Math.log10(v) : v);
  let [ylo, yhi] = finite.length ? [Math.min(...finite.map(f)), Math.max(...finite.map(f))] : [0, 1];
  if (log) [ylo, yhi] = [Math.floor(ylo), Math.ceil(yhi)];
  if (yhi === ylo) [ylo, yhi] = [ylo - 0.5, yhi + 0.5];
  if (!log) {
    const t = niceTicks(ylo, yhi);
    const step = t.length > 1 ? t[1]! - t[0]! : 1;
    [ylo, yhi] = [Math.min(ylo, t[0]!), Math.max(yhi, t.at(-1)! < yhi ? t.at(-1)! + step : t.at(-1)!)];
  }
  const xs = curve.steps;
  const xlo = 0;
  const xhi = Math.max(1, ...xs);
  const X = (s: number) => m.left + ((s - xlo) / (xhi - xlo)) * pw;
  const Y = (v: number) => m.top + ph - ((f(v) - ylo) / (yhi - ylo)) * ph;
  const yTicks = log
    ? Array.from({ length: yhi - ylo + 1 }, (_, i) => 10 ** (ylo + i))
    : niceTicks(ylo, yhi).filter((v) => v >= ylo && v <= yhi);
  const xTicks = niceTicks(xlo, xhi).filter((v) => v <= xhi);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(curve.title)}</text>`);
  for (const v of yTicks) {
    const y = Y(v).toFixed(1);
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(
      `<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(label(v))}</text>`,
    );
  }
  for (const s of xTicks) {
    const x = X(s).toFixed(1);
    out.push(`<line x1="${x}" y1="${m.top + ph}" x2="${x}" y2="${m.top + ph + 4}" stroke="#333333"/>`);
    out.push(`<text x="${x}" y="${m.top + ph + 17}" text-anchor="middle">${escapeXml(label(s))}</text>`);
  }
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#333333"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#333333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${height - 8}" text-anchor="middle">step</text>`);
  out.push(
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${log ? 'loss (log scale)' : 'loss'}</text>`,
  );
  curve.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length]!;
    // One polyline per run of drawable points, so a NaN leaves a gap instead of a line through it.
    let run: string[] = [];
    const flush = () => {
      if (run.length === 1)
        out.push(`<circle cx="${run[0]!.split(',')[0]}" cy="${run[0]!.split(',')[1]}" r="2" fill="${color}"/>`);
      if (run.length > 1)
        out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${run.join(' ')}"/>`);
      run = [];
    };
    s.values.forEach((v, i) => {
      if (!Number.isFinite(v) || (log && v <= 0) || xs[i] === undefined) return flush();
      run.push(`${X(xs[i]!).toFixed(1)},${Y(v).toFixed(1)}`);
    });
    flush();
    const ly = m.top + 10 + 16 * k;
    const lx = m.left + pw - 130;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 26}" y="${ly}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The curve as CSV: a `step` column and one column per series; a missing or non-finite value is written as it is (NaN, Infinity) or left empty. */
export function lossCsv(curve: LossCurve): string {
  const rows = [['step', ...curve.series.map((s) => s.name)].join(',')];
  curve.steps.forEach((step, i) =>
    rows.push([step, ...curve.series.map((s) => (s.values[i] === undefined ? '' : String(s.values[i])))].join(',')),
  );
  return `${rows.join('\n')}\n`;
}

/** Writes `loss.svg` (the chart) and `loss.csv` (the numbers) into `dir`. */
export async function writeLossCurve(dir: string, curve: LossCurve): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(`${dir}/loss.svg`, lossChartSvg(curve));
  await writeFile(`${dir}/loss.csv`, lossCsv(curve));
}

/**
 * Steps of a history logged as bare numbers every `every` steps: the i-th value was logged at step every * (i + 1),
 * except that a run which also logs its final step puts the last value at `finalStep` when that is not a multiple.
 */
export function loggedSteps(count: number, every: number, finalStep?: number): number[] {
  return Array.from({ length: count }, (_, i) =>
    i === count - 1 && finalStep !== undefined && finalStep % every !== 0 ? finalStep : every * (i + 1),
  );
}
