import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoint } from '../src/cli/export.js';
import { trainSchp } from '../src/cli/train-schp.js';
import { loadSchp } from '@leffa-webgpu/pipelines';

const tmp = mkdtempSync(join(tmpdir(), 'schp-cli-'));
beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('train-schp command', () => {
  it('trains through two self-correction rounds on noisy labels, logs the held-out curve, and exports the aggregate', async () => {
    const out = join(tmp, 'run');
    await trainSchp({
      out,
      steps: 5,
      batch: 2,
      height: 32,
      width: 24,
      cycles: 2,
      cycleSteps: 2,
      optimizer: 'adamw',
      labelNoise: 0.3,
      evalExamples: 2,
      evalEvery: 2,
      bnBatches: 1,
      saveEvery: 100,
      seed: 1,
    });
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.rounds).toBe(2);
    expect(metrics.labelNoise).toBe(0.3);
    // Steps 2 and 4 (the final step is evaluated once, below); the round before step 4 switches to the aggregate.
    expect(metrics.curve.map((c: { step: number; rounds: number }) => [c.step, c.rounds])).toEqual([
      [2, 0],
      [4, 1],
    ]);
    for (const c of metrics.curve) expect(c.meanIoU).toBeGreaterThanOrEqual(0);
    expect(metrics.aggregate.meanIoU).toBeGreaterThanOrEqual(0);
    for (const f of ['samples.png', 'loss.svg', 'loss.csv', 'checkpoint/state.json', 'checkpoint/ema.safetensors'])
      expect(existsSync(join(out, f)), f).toBe(true);

    const shipped = join(tmp, 'exported');
    await exportCheckpoint({
      ckpt: join(out, 'checkpoint'),
      out: shipped,
      ema: false,
      note: { meanIoU: metrics.aggregate.meanIoU },
    });
    const loaded = await loadSchp(shipped);
    expect(loaded.inputSize).toEqual([32, 24]);
    expect(loaded.aggregate).toBe(false);
  });
});
