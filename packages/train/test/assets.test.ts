import * as T from '@leffa-webgpu/core';
import { LeffaModel, OPENPOSE_SMALL, OpenPoseBody } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { leffaConfigFromExtra, loadDensePose, loadSchp, resolveCheckpoint } from '../src/index.js';

// Held-out scores the shipped parsers were exported with (see packages/train/README.md).
const SCHP_MIOU = 0.5; // 0.518
const DENSEPOSE_MIOU = 0.6; // 0.609

beforeAll(async () => {
  await T.init();
});

// The demo and the default `pose` / `tryon` checkpoints: they must load strictly into the models that use them.
describe('shipped checkpoints', () => {
  it('openpose-small loads into the small OpenPose model', async () => {
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    const extra = (await T.loadCheckpoint(resolveCheckpoint('shipped:openpose-small'), { model })) as { pck02: number };
    expect(extra.pck02).toBeGreaterThanOrEqual(0.8);
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

  it('schp-small and densepose-small (the photo pipeline defaults) load and record their held-out scores', async () => {
    const schp = await loadSchp('shipped:schp-small');
    expect(schp.model.config.numClasses).toBe(20);
    expect(schp.inputSize).toEqual([64, 48]);
    const schpExtra = (await T.openCheckpoint(resolveCheckpoint('shipped:schp-small'))).extra as { meanIoU: number };
    expect(schpExtra.meanIoU).toBeGreaterThanOrEqual(SCHP_MIOU);
    const dp = await loadDensePose('shipped:densepose-small');
    expect(dp.size).toEqual([64, 48]);
    const dpExtra = (await T.openCheckpoint(resolveCheckpoint('shipped:densepose-small'))).extra as { partMeanIoU: number };
    expect(dpExtra.partMeanIoU).toBeGreaterThanOrEqual(DENSEPOSE_MIOU);
  });

  it('names a checkpoint the package does not ship', () => {
    expect(() => resolveCheckpoint('shipped:parser-xl')).toThrow('shipped:parser-xl: this package ships no such checkpoint');
  });
});
