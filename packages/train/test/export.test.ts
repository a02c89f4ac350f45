import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import {
  DENSEPOSE_CONFIGS,
  DensePoseHead,
  OPENPOSE_SMALL,
  OpenPoseBody,
  SCHP_CONFIGS,
  SCHPNetwork,
} from '@leffa-webgpu/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoint } from '../src/cli/export.js';
import { loadDensePose, loadOpenPose, loadSchp, schpPart } from '@leffa-webgpu/pipelines';

const tmp = mkdtempSync(join(tmpdir(), 'export-'));
const x = () => T.rand([2, 3, 40, 32], { generator: new T.Generator(5) });

beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const maxRelDiff = (a: Float32Array, b: Float32Array) => {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
};

describe('export (inference-only float16 copies)', () => {
  it('SCHP: the self-correction aggregate becomes the exported model', async () => {
    T.manualSeed(1);
    const trained = new SCHPNetwork(SCHP_CONFIGS.small).eval();
    const aggregate = new SCHPNetwork(SCHP_CONFIGS.small).eval();
    const src = join(tmp, 'schp-train');
    await T.saveCheckpoint(src, {
      model: trained,
      ema: schpPart(aggregate),
      extra: { kind: 'schp', rounds: 2, config: SCHP_CONFIGS.small, size: [32, 24], rng: 7 },
    });
    const out = join(tmp, 'schp-export');
    await exportCheckpoint({ ckpt: src, out, ema: false, note: { meanIoU: 0.5 } });

    const extra = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')).extra;
    expect(extra).toMatchObject({ kind: 'schp', rounds: 0, aggregateOfRounds: 2, size: [32, 24], meanIoU: 0.5 });
    expect(extra.rng).toBeUndefined();
    const loaded = await loadSchp(out);
    expect(loaded.aggregate).toBe(false);
    expect(loaded.inputSize).toEqual([32, 24]);
    const input = x();
    const want = await aggregate.forward(input)[0][1].data();
    const got = await loaded.model.forward(input)[0][1].data();
    const other = await trained.forward(input)[0][1].data();
    expect(maxRelDiff(got, want)).toBeLessThan(1e-2); // float16 weights
    expect(maxRelDiff(other, want)).toBeGreaterThan(0.05); // not the trained network's outputs

    // Or, asked for, the trained network.
    const networkOut = join(tmp, 'schp-export-network');
    await exportCheckpoint({ ckpt: src, out: networkOut, ema: false, schpWeights: 'network' });
    expect(JSON.parse(readFileSync(join(networkOut, 'state.json'), 'utf8')).extra).toMatchObject({
      rounds: 0,
      weights: 'network',
    });
    const network = await loadSchp(networkOut);
    expect(maxRelDiff(await network.model.forward(input)[0][1].data(), other)).toBeLessThan(1e-2);
  });

  it('DensePose: same outputs within float16 rounding; --ema is refused for non-Leffa checkpoints', async () => {
    T.manualSeed(2);
    const head = new DensePoseHead(DENSEPOSE_CONFIGS.small).eval();
    const src = join(tmp, 'dp-train');
    await T.saveCheckpoint(src, {
      model: head,
      extra: { kind: 'densepose', config: DENSEPOSE_CONFIGS.small, size: [32, 24] },
    });
    const out = join(tmp, 'dp-export');
    await exportCheckpoint({ ckpt: src, out, ema: false });
    const loaded = await loadDensePose(out);
    expect(loaded.size).toEqual([32, 24]);
    const input = x();
    const want = head.forward(input);
    const got = loaded.model.forward(input);
    expect(maxRelDiff(await got.I.data(), await want.I.data())).toBeLessThan(1e-2);
    await expect(exportCheckpoint({ ckpt: src, out: join(tmp, 'dp-ema'), ema: true })).rejects.toThrow(
      /--ema is for Leffa checkpoints/,
    );
  });

  it('OpenPose: a train-openpose checkpoint (kind openpose) exports to the same network', async () => {
    T.manualSeed(3);
    const body = new OpenPoseBody(OPENPOSE_SMALL).eval();
    const src = join(tmp, 'openpose-train');
    await T.saveCheckpoint(src, {
      model: body,
      extra: { kind: 'openpose', step: 4, rng: 1, history: [], config: OPENPOSE_SMALL },
    });
    const out = join(tmp, 'openpose-export');
    await exportCheckpoint({ ckpt: src, out, ema: false });
    expect(JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')).extra).toMatchObject({
      kind: 'openpose',
      step: 4,
    });
    const loaded = await loadOpenPose(out);
    const input = x();
    const want = await body.forward(input).stages.at(-1)!.heatmap.data();
    expect(maxRelDiff(await loaded.forward(input).stages.at(-1)!.heatmap.data(), want)).toBeLessThan(1e-2);
  });
});
