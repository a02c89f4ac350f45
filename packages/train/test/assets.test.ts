import * as T from '@leffa-webgpu/core';
import { LeffaModel, OPENPOSE_SMALL, OpenPoseBody } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { leffaConfigOf, resolveCheckpoint } from '../src/index.js';

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
    const dir = resolveCheckpoint(`shipped:${name}`);
    const model = new LeffaModel(leffaConfigOf(dir));
    const extra = (await T.loadCheckpoint(dir, { model })) as { task: string; size: number[] };
    expect(extra.task).toBe(task);
    expect(extra.size).toEqual([128, 96]);
    T.dispose(model.parameters());
  });

  it('names a checkpoint the package does not ship', () => {
    expect(() => resolveCheckpoint('shipped:schp-small')).toThrow('shipped:schp-small: this package ships no such checkpoint');
  });
});
