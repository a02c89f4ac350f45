import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { experiment } from '../src/cli/experiment.js';

const tmp = mkdtempSync(join(tmpdir(), 'experiment-'));
beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('experiment command', () => {
  it('a flow warm-up, then the baseline and the Leffa run from its checkpoint, compared in one table', async () => {
    const out = join(tmp, 'exp');
    await experiment({
      task: 'tryon',
      out,
      steps: 2,
      batch: 2,
      height: 64,
      width: 48,
      pool: 2,
      seed: 3,
      init: 'shipped:leffa-tiny-tryon',
      lr: 1e-4,
      leffaWeight: 1,
      flowWarmup: 2,
      warmupLr: 5e-4,
      evalExamples: 1,
    });
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(Object.keys(summary.results)).toEqual(['warmup', 'baseline', 'leffa']);
    for (const r of Object.values(summary.results) as { meanFlowEpe: number }[])
      expect(r.meanFlowEpe).toBeGreaterThan(0);
    // The warm-up trains the flow loss only; the Leffa run logs a Leffa loss, the baseline none.
    const history = (name: string) =>
      JSON.parse(readFileSync(join(out, name, 'metrics.json'), 'utf8')).history as { leffa: number; flow?: number }[];
    expect(history('warmup').every((h) => h.flow! > 0 && h.leffa === 0)).toBe(true);
    expect(history('baseline').every((h) => h.leffa === 0 && h.flow === undefined)).toBe(true);
    expect(readFileSync(join(out, 'summary.md'), 'utf8')).toMatch(
      /\| warmup \|[^\n]*\n\| baseline \|[^\n]*\n\| leffa \|/,
    );
    expect(existsSync(join(out, 'leffa', 'samples-final.png'))).toBe(true);
  });
});
