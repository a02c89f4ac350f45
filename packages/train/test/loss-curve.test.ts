import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loggedSteps, lossChartSvg, lossCsv, niceTicks, writeLossCurve } from '../src/cli/loss-curve.js';

const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
const polylines = (svg: string) =>
  [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) =>
    m[1]!.split(' ').map((p) => p.split(',').map(Number)),
  );

describe('loss curve', () => {
  it('niceTicks: 1, 2 or 5 times a power of ten, covering the range', () => {
    expect(niceTicks(0, 100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(0.013, 0.048)).toEqual([0.02, 0.03, 0.04]);
    expect(niceTicks(0, 6)).toEqual([0, 2, 4, 6]);
  });

  it('SVG chart: title, axis labels, tick labels, a legend entry and a line per series', () => {
    const svg = lossChartSvg({
      title: 'train tryon',
      steps: [10, 20, 30],
      series: [
        { name: 'total', values: [0.5, 0.4, 0.3] },
        { name: 'diffusion', values: [0.45, 0.35, 0.25] },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    const t = texts(svg);
    expect(t).toEqual(
      expect.arrayContaining([
        'train tryon',
        'step',
        'loss',
        'total',
        'diffusion',
        '0',
        '10',
        '20',
        '30',
        '0.3',
        '0.4',
        '0.5',
      ]),
    );
    const lines = polylines(svg);
    expect(lines).toHaveLength(2);
    // Falling losses go down the page: y grows (SVG y points down) and x grows with the step.
    for (const pts of lines) {
      expect(pts).toHaveLength(3);
      expect(pts[0]![0]).toBeLessThan(pts[2]![0]!);
      expect(pts[0]![1]).toBeLessThan(pts[2]![1]!);
    }
  });

  it('a curve spanning more than a decade gets a labelled log axis with decade ticks', () => {
    const svg = lossChartSvg({ title: 'x', steps: [1, 2, 3], series: [{ name: 'loss', values: [2, 0.2, 0.02] }] });
    const t = texts(svg);
    expect(t).toContain('loss (log scale)');
    expect(t).toEqual(expect.arrayContaining(['0.01', '0.1', '1', '10']));
    // Equal ratios are equal distances on a log axis.
    const ys = polylines(svg)[0]!.map((p) => p[1]!);
    expect(ys[1]! - ys[0]!).toBeGreaterThan(10);
    expect(Math.abs(ys[1]! - ys[0]! - (ys[2]! - ys[1]!))).toBeLessThan(0.2);
  });

  it('a non-finite value leaves a gap; names are XML-escaped', () => {
    const svg = lossChartSvg({
      title: 'a<b & c',
      steps: [1, 2, 3, 4, 5],
      series: [{ name: 'x"y', values: [1, 0.9, Number.NaN, 0.8, 0.7] }],
    });
    expect(polylines(svg).map((p) => p.length)).toEqual([2, 2]);
    expect(svg).toContain('a&lt;b &amp; c');
    expect(svg).toContain('x&quot;y');
  });

  it('CSV: a step column and one column per series; writeLossCurve writes both files', async () => {
    const curve = {
      title: 't',
      steps: [10, 20],
      series: [
        { name: 'total', values: [0.5, 0.25] },
        { name: 'flow', values: [Number.NaN, 1e-7] },
      ],
    };
    expect(lossCsv(curve)).toBe('step,total,flow\n10,0.5,NaN\n20,0.25,1e-7\n');
    const dir = mkdtempSync(join(tmpdir(), 'leffa-loss-'));
    try {
      await writeLossCurve(join(dir, 'run'), curve);
      expect(readFileSync(join(dir, 'run', 'loss.csv'), 'utf8')).toBe(lossCsv(curve));
      expect(readFileSync(join(dir, 'run', 'loss.svg'), 'utf8')).toBe(lossChartSvg(curve));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loggedSteps: every n steps, and the final step when a run logs it off the grid', () => {
    expect(loggedSteps(3, 10)).toEqual([10, 20, 30]);
    expect(loggedSteps(3, 10, 25)).toEqual([10, 20, 25]);
    expect(loggedSteps(3, 10, 30)).toEqual([10, 20, 30]);
    expect(loggedSteps(0, 10, 5)).toEqual([]);
  });
});
