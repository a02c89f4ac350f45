import * as T from '@leffa-webgpu/core';
import { LEFFA_CONFIGS } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { LeffaTrainer, SyntheticLeffaSource, toBatch } from '../src/index.js';

beforeAll(async () => {
  await T.init();
});

describe('Leffa training', () => {
  it('a tiny run with the Leffa loss reduces the total loss', async () => {
    const trainer = new LeffaTrainer({ config: LEFFA_CONFIGS.tiny, seed: 1, lr: 1e-3, weightDecay: 0, emaDecay: 0.9, leffa: { mode: 'on', maxTimestep: 1000 } });
    const source = new SyntheticLeffaSource('tryon', 64, 48, 0);
    // One fixed batch, seen repeatedly: the loss must fall.
    const batch = toBatch(source.take(2));
    const totals: number[] = [];
    const leffa: number[] = [];
    for (let step = 0; step < 12; step++) {
      const losses = trainer.step(batch);
      totals.push(await losses.total.item());
      leffa.push(await losses.leffa.item());
      T.dispose(losses);
    }
    expect(totals.every(Number.isFinite)).toBe(true);
    expect(leffa.some((v) => v > 0)).toBe(true);
    const first = (totals[0]! + totals[1]! + totals[2]!) / 3;
    const last = (totals[9]! + totals[10]! + totals[11]!) / 3;
    expect(last).toBeLessThan(first);
  });
});
