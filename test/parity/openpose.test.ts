import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { OPENPOSE_BODY, OPENPOSE_SMALL, OpenPoseBody, openPoseKeys } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

beforeAll(async () => {
  await T.init();
});

describe('OpenPose body network against PyTorch', () => {
  it('every stage output of a small model loaded from the PyTorch port layout', async () => {
    const g = new ModelGolden('openpose_small');
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    // The golden holds the port's prefixed keys (model0.conv1_1.weight, ...): mapped to the official flat names.
    model.loadStateDict(openPoseKeys(g.stateDict()));
    const out = model.forward(g.tensor('input/x'));
    expect(out.stages.length).toBe(3);
    for (const [i, s] of out.stages.entries()) {
      for (const [name, t] of [['paf', s.paf], ['heatmap', s.heatmap]] as const) {
        const key = `output/${name}${i + 1}`;
        expect([...t.shape]).toEqual(g.host(key).shape);
        expectClose(await t.data(), g.host(key).data, 1e-4, key);
      }
    }
  });

  it('the full model has the official key names and shapes (52.3M parameters)', () => {
    const expected = JSON.parse(readFileSync(fileURLToPath(new URL('../golden/out/openpose_keys.json', import.meta.url)), 'utf8')) as Record<string, number[]>;
    const model = T.nn.withoutInit(() => new OpenPoseBody(OPENPOSE_BODY));
    const flat = openPoseKeys(new Map(Object.entries(expected)));
    expect(model.checkStateDict(flat)).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect(model.numParameters()).toBe(52311446);
    // The official file's flat names are ours already.
    expect([...model.stateDict().keys()][0]).toBe('conv1_1.weight');
    expect([...model.stateDict().keys()].at(-1)).toBe('Mconv7_stage6_L2.bias');
    model.dispose();
  });
});
