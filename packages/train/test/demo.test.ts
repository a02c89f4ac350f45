import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demo } from '../src/cli/demo.js';

const tmp = mkdtempSync(join(tmpdir(), 'demo-'));
beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('demo command', () => {
  it('evaluates before and after the fine-tune on the same people and seeds, and never ends worse than it started', async () => {
    const out = join(tmp, 'demo');
    // A learning rate far too high for fine-tuning: the tuned weights get worse, so the demo must keep the start.
    const result = await demo({
      task: 'tryon',
      init: 'shipped:leffa-tiny-tryon',
      out,
      steps: 2,
      lr: 0.05,
      examples: 2,
      seeds: [0, 1],
      sampleSteps: 4,
    });
    expect(result.before.seeds).toEqual([0, 1]);
    expect(result.after.examples).toBe(2);
    expect(result.after.ssim.mean).toBeLessThan(result.before.ssim.mean);
    expect(result.kept).toBe('start');
    expect(result.checkpoint).toBe('shipped:leffa-tiny-tryon');
    expect(JSON.parse(readFileSync(join(out, 'demo.json'), 'utf8')).kept).toBe('start');
    expect(existsSync(join(out, 'before-after.png'))).toBe(true);
    // The fine-tune continues the shipped try-on's last recipe: flow supervision weighted 3, the reference readout
    // and mass, the diffusion loss under Min-SNR-gamma 5 with the mask region weighted 4x.
    expect(readFileSync(join(out, 'loss.csv'), 'utf8').split('\n')[0]).toBe(
      'step,total,diffusion,leffa,flow,readout,mass',
    );
    const trained = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).extra.options;
    expect(trained).toMatchObject({
      flowSupervision: 3,
      referenceReadout: 0.5,
      referenceMass: 1,
      snrGamma: 5,
      maskWeight: 4,
    });
  }, 400_000); // two evaluations and a fine-tune of the shipped model at its 32x24 latent
});
