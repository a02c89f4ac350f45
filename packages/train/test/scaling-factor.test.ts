import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { LeffaModel } from '@leffa-webgpu/models';
import { syntheticExample, toBatch } from '@leffa-webgpu/data';
import { leffaConfigFromExtra } from '@leffa-webgpu/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainLeffa } from '../src/cli/train-leffa.js';
import { smallLeffaRun } from './small-leffa-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'scaling-factor-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await T.init();
});

describe('train --scaling-factor', () => {
  const args = { ...smallLeffaRun, steps: 1, pool: 1, init: 'shipped:leffa-tiny-tryon', saveEvery: 1 };
  const recordedConfig = (out: string) =>
    leffaConfigFromExtra(JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).extra);

  it("'unit' gives the training images' latents unit variance, and the checkpoint records the factor", async () => {
    const out = join(tmp, 'unit');
    await trainLeffa({ ...args, out, scalingFactor: 'unit' });
    const config = recordedConfig(out);
    expect(config.vae.scalingFactor).not.toBeCloseTo(0.18215, 3);
    // The model as a later command loads it: its scaled latents of the same 16 examples have unit variance.
    const model = new LeffaModel(config);
    await T.loadCheckpoint(join(out, 'checkpoint'), { model });
    const examples = Array.from({ length: 16 }, (_, i) => syntheticExample('tryon', i, 64, 48));
    const values: number[] = [];
    for (let i = 0; i < 16; i += 4) {
      const batch = toBatch(examples.slice(i, i + 4));
      for (const image of [batch.source, batch.reference])
        values.push(...(await T.noGrad(() => model.encodeImage(image, { sample: false })).data()));
      T.dispose(batch);
    }
    const mean = values.reduce((a, v) => a + v, 0) / values.length;
    const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
    expect(variance).toBeCloseTo(1, 3);
  });

  it('a number replaces the checkpoint factor as given', async () => {
    const out = join(tmp, 'number');
    await trainLeffa({ ...args, out, scalingFactor: 0.3 });
    expect(recordedConfig(out).vae.scalingFactor).toBe(0.3);
  });
});
