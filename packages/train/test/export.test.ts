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
import { trainableParameters } from '../src/leffa/trainer.js';
import { smallLeffaRun } from './small-leffa-run.js';
import {
  leffaFrom,
  loadDensePose,
  loadOpenPose,
  loadSchp,
  openCheckpointFolder,
  schpPart,
} from '@leffa-webgpu/pipelines';

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

  it("Leffa: --ema writes the weights' moving average at the run's --ema-decay", async () => {
    const { trainLeffa } = await import('../src/cli/train-leffa.js');
    const exported = async (emaDecay: number) => {
      const run = join(tmp, `leffa-ema-${emaDecay}`);
      const args = { ...smallLeffaRun, out: run, pool: 1, steps: 1, saveEvery: 1 };
      await trainLeffa({ ...args, init: 'shipped:leffa-tiny-tryon', emaDecay });
      const bytes = async (ema: boolean) => {
        const out = join(run, ema ? 'ema' : 'live');
        await exportCheckpoint({ ckpt: join(run, 'checkpoint'), out, ema });
        return readFileSync(join(out, 'model.safetensors'));
      };
      return { live: await bytes(false), ema: await bytes(true) };
    };
    // Decay 0: the average is the last step's weights; decay 1: it never leaves the starting weights.
    const follows = await exported(0);
    expect(follows.ema.equals(follows.live)).toBe(true);
    const frozen = await exported(1);
    expect(frozen.ema.equals(frozen.live)).toBe(false);
    expect(frozen.live.equals(follows.live)).toBe(true);

    // Older checkpoints keyed the shadows by position in the trainer's order; a file missing one is refused.
    const ckpt = join(tmp, 'leffa-ema-0', 'checkpoint');
    const named = await T.loadSafetensors(join(ckpt, 'ema.safetensors'));
    const order = [...trainableParameters(await leffaFrom(await openCheckpointFolder(ckpt))).keys()];
    await T.saveSafetensors(join(ckpt, 'ema.safetensors'), new Map(order.map((n, i) => [String(i), named.get(n)!])));
    const legacy = join(tmp, 'leffa-ema-legacy');
    await exportCheckpoint({ ckpt, out: legacy, ema: true });
    expect(readFileSync(join(legacy, 'model.safetensors')).equals(follows.live)).toBe(true);
    await T.saveSafetensors(join(ckpt, 'ema.safetensors'), new Map([...named].slice(1)));
    await expect(exportCheckpoint({ ckpt, out: join(tmp, 'leffa-ema-partial'), ema: true })).rejects.toThrow(
      /export --ema: '.*ema\.safetensors': loadStateDict\(LeffaModel\): 1 problem\(s\)\n {2}missing: unet\.\S+$/,
    );
  }, 180_000);

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
