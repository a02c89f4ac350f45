import * as T from '@leffa-webgpu/core';
import { LeffaModel, OPENPOSE_SMALL, OpenPoseBody } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { syntheticPoseExample } from '@leffa-webgpu/data';
import { leffaConfigFromExtra, loadDensePose, loadSchp, resolveCheckpoint } from '@leffa-webgpu/pipelines';
import {
  evaluateDensePose,
  evaluateParsing,
  pck,
  syntheticDensePoseExample,
  syntheticParsingExample,
} from '../src/index.js';

// Held-out scores the shipped parsers were exported with (see packages/train/README.md).
const SCHP_MIOU = 0.8;
const DENSEPOSE_MIOU = 0.6; // 0.609

beforeAll(async () => {
  await T.init();
});

// The demo and the default `pose` / `tryon` checkpoints: they must load strictly into the models that use them.
describe('shipped checkpoints', () => {
  it("openpose-small finds held-out synthetic people's keypoints at the PCK it records", async () => {
    const model = new OpenPoseBody(OPENPOSE_SMALL).eval();
    const extra = (await T.loadCheckpoint(resolveCheckpoint('shipped:openpose-small'), { model })) as { pck02: number };
    // train-openpose's held-out people (seeds from 800_000_000) at its default 128x96.
    const held = Array.from({ length: 50 }, (_, i) => syntheticPoseExample(800_000_000 + i, 128, 96));
    const score = await pck(model, held);
    expect(score).toBeGreaterThanOrEqual(0.9);
    expect(Math.abs(score - extra.pck02)).toBeLessThan(0.01);
  });

  it.each([
    ['leffa-tiny-tryon', 'tryon'],
    ['leffa-tiny-pose', 'pose'],
  ])('%s loads into the architecture it names', async (name, task) => {
    const opened = await T.openCheckpoint(resolveCheckpoint(`shipped:${name}`));
    const model = new LeffaModel(leffaConfigFromExtra(opened.extra));
    await opened.load({ model });
    const extra = opened.extra as { task: string; size: number[] };
    expect(extra.task).toBe(task);
    expect(extra.size).toEqual([128, 96]);
    T.dispose(model.parameters());
  });

  it('schp-small parses held-out synthetic people at the mIoU it records (>= 0.8)', async () => {
    const schp = await loadSchp('shipped:schp-small');
    expect(schp.model.config.numClasses).toBe(20);
    expect(schp.inputSize).toEqual([64, 48]);
    // train-schp's held-out people (seeds from 900_000_000), never drawn for training.
    const held = Array.from({ length: 50 }, (_, i) => syntheticParsingExample(900_000_000 + i, 64, 48));
    const { metrics } = await evaluateParsing(schp.model, held);
    expect(metrics.meanIoU).toBeGreaterThanOrEqual(SCHP_MIOU);
    const schpExtra = (await T.openCheckpoint(resolveCheckpoint('shipped:schp-small'))).extra as { meanIoU: number };
    // Recorded from the float32 run; the shipped copy is float16.
    expect(Math.abs(metrics.meanIoU - schpExtra.meanIoU)).toBeLessThan(0.01);
  });

  it('densepose-small parses held-out synthetic people at the part mIoU it records', async () => {
    const dp = await loadDensePose('shipped:densepose-small');
    expect(dp.size).toEqual([64, 48]);
    // train-densepose's held-out people (seeds from 700_000_000).
    const held = Array.from({ length: 50 }, (_, i) => syntheticDensePoseExample(700_000_000 + i, 64, 48));
    const { metrics } = await evaluateDensePose(dp.model, held);
    expect(metrics.meanIoU).toBeGreaterThanOrEqual(DENSEPOSE_MIOU);
    const dpExtra = (await T.openCheckpoint(resolveCheckpoint('shipped:densepose-small'))).extra as {
      partMeanIoU: number;
    };
    expect(Math.abs(metrics.meanIoU - dpExtra.partMeanIoU)).toBeLessThan(0.01);
  });

  it('names a checkpoint the package does not ship', () => {
    expect(() => resolveCheckpoint('shipped:parser-xl')).toThrow(
      'shipped:parser-xl: this package ships no such checkpoint',
    );
  });
});
