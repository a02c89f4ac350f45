import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { RESNET50_FPN, ResNetFPN } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

const SMALL = { blocks: [3, 4, 6, 3] as [number, number, number, number], stem: 8, res2Out: 16, bottleneck: 4, strideInOneByOne: true, fpnOut: 16 };

/** `name shape` lines written by the oracle from its detectron2-layout modules. */
function keyFile(name: string): Map<string, number[]> {
  const text = readFileSync(fileURLToPath(new URL(`../golden/out/${name}`, import.meta.url)), 'utf8');
  return new Map(text.trim().split('\n').map((l) => { const [k, s] = l.split(' '); return [k!, s ? s.split(',').map(Number) : []]; }));
}

beforeAll(async () => {
  await T.init();
});

describe('DensePose R-CNN (detectron2 R_50_FPN) against a PyTorch re-implementation', () => {
  it('ResNet-50 (FrozenBN, stride in 1x1) + FPN: res2..res5 and p2..p6 of a narrow model with detectron2 keys', async () => {
    const g = new ModelGolden('densepose_rcnn_backbone');
    const model = new ResNetFPN(SMALL);
    const weights = new Map([...g.stateDict()].map(([k, v]) => [k.replace(/^backbone\./, ''), v]));
    model.loadStateDict(weights);
    const x = g.tensor('input');
    const res = model.bottom_up.forward(x);
    const p = model.forward(x);
    for (const [name, t] of [...Object.entries(res), ...Object.entries(p)]) {
      const key = `out/${name}`;
      expect([...t.shape], key).toEqual(g.host(key).shape);
      expectClose(await t.data(), g.host(key).data, 1e-4, key);
    }
    expect(p.p6.shape).toEqual([1, 16, 2, 1]);
    expect(() => model.forward(T.zeros([1, 3, 96, 70]))).toThrow(/ResNetFPN: expected \[N, 3, H, W\] with H and W multiples of 32 .* got \[1, 3, 96, 70\]/);
  });

  it('the full-size ResNet-50 + FPN has detectron2 key names and shapes', () => {
    const expected = keyFile('densepose_rcnn_r50_fpn_keys.txt');
    const full = T.nn.withoutInit(() => new ResNetFPN(RESNET50_FPN));
    const shapes = new Map([...expected].map(([k, v]) => [k.replace(/^backbone\./, ''), v]));
    expect(full.checkStateDict(shapes)).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect([...full.stateDict().keys()].sort()).toEqual([...shapes.keys()].sort());
  });
});

describe('roiAlign against torchvision.ops.roi_align semantics', () => {
  it('aligned false/true, sampling ratio 2 and adaptive, square and oblong bins, boxes partly and wholly outside', async () => {
    const g = new ModelGolden('densepose_rcnn_roi_align');
    const x = g.tensor('input');
    const rois = g.tensor('rois');
    let n = 0;
    for (const key of g.tensors.keys()) {
      const m = /^out\/aligned(\d)_sr(\d)_(\d)x(\d)$/.exec(key);
      if (!m) continue;
      const out = T.roiAlign(x, rois, { outputSize: [Number(m[3]), Number(m[4])], spatialScale: 0.25, samplingRatio: Number(m[2]), aligned: m[1] === '1' });
      expect([...out.shape], key).toEqual(g.host(key).shape);
      expectClose(await out.data(), g.host(key).data, 1e-5, key);
      // The last box lies wholly outside the map: zeros; the others are not.
      const host = await out.data();
      const per = Number(m[3]) * Number(m[4]) * 5;
      expect(host.slice(7 * per, 8 * per).every((v) => v === 0), key).toBe(true);
      expect(host.slice(0, per).some((v) => v !== 0), key).toBe(true);
      n++;
    }
    expect(n).toBe(8);
  });

  it('refuses malformed arguments, naming the op and the shapes', () => {
    const x = T.zeros([1, 2, 4, 4]);
    expect(() => T.roiAlign(x, T.zeros([3, 4]), { outputSize: 2, spatialScale: 1 })).toThrow(/roiAlign: expected input \[N, C, H, W\] and rois \[K, 5\] .* got \[1, 2, 4, 4\] and \[3, 4\]/);
    expect(() => T.roiAlign(x, T.zeros([3, 5]), { outputSize: 0, spatialScale: 1 })).toThrow(/roiAlign: outputSize must be positive integers/);
    expect(() => T.roiAlign(x, T.zeros([3, 5]), { outputSize: 2, spatialScale: 1, samplingRatio: -1 })).toThrow(/roiAlign: samplingRatio must be an integer >= 0/);
    expect(T.roiAlign(x, T.zeros([0, 5]), { outputSize: [3, 2], spatialScale: 1 }).shape).toEqual([0, 2, 3, 2]);
  });
});
