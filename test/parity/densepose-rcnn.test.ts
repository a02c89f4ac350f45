import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import {
  DENSEPOSE_RCNN_R50_FPN,
  RCNNDetector,
  RESNET50_FPN,
  ResNetFPN,
  batchedNms,
  poolBoxes,
  poolerLevels,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

const SMALL = {
  blocks: [3, 4, 6, 3] as [number, number, number, number],
  stem: 8,
  res2Out: 16,
  bottleneck: 4,
  strideInOneByOne: true,
  fpnOut: 16,
};

/** `name shape` lines written by the oracle from its detectron2-layout modules. */
function keyFile(name: string): Map<string, number[]> {
  const text = readFileSync(fileURLToPath(new URL(`../golden/out/${name}`, import.meta.url)), 'utf8');
  return new Map(
    text
      .trim()
      .split('\n')
      .map((l) => {
        const [k, s] = l.split(' ');
        return [k!, s ? s.split(',').map(Number) : []];
      }),
  );
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
    expect(() => model.forward(T.zeros([1, 3, 96, 70]))).toThrow(
      /ResNetFPN: expected \[N, 3, H, W\] with H and W multiples of 32 .* got \[1, 3, 96, 70\]/,
    );
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
      const out = T.roiAlign(x, rois, {
        outputSize: [Number(m[3]), Number(m[4])],
        spatialScale: 0.25,
        samplingRatio: Number(m[2]),
        aligned: m[1] === '1',
      });
      expect([...out.shape], key).toEqual(g.host(key).shape);
      expectClose(await out.data(), g.host(key).data, 1e-5, key);
      // The last box lies wholly outside the map: zeros; the others are not.
      const host = await out.data();
      const per = Number(m[3]) * Number(m[4]) * 5;
      expect(
        host.slice(7 * per, 8 * per).every((v) => v === 0),
        key,
      ).toBe(true);
      expect(
        host.slice(0, per).some((v) => v !== 0),
        key,
      ).toBe(true);
      n++;
    }
    expect(n).toBe(8);
  });

  it('refuses malformed arguments, naming the op and the shapes', () => {
    const x = T.zeros([1, 2, 4, 4]);
    expect(() => T.roiAlign(x, T.zeros([3, 4]), { outputSize: 2, spatialScale: 1 })).toThrow(
      /roiAlign: expected input \[N, C, H, W\] and rois \[K, 5\] .* got \[1, 2, 4, 4\] and \[3, 4\]/,
    );
    expect(() => T.roiAlign(x, T.zeros([3, 5]), { outputSize: 0, spatialScale: 1 })).toThrow(
      /roiAlign: outputSize must be positive integers/,
    );
    expect(() => T.roiAlign(x, T.zeros([3, 5]), { outputSize: 2, spatialScale: 1, samplingRatio: -1 })).toThrow(
      /roiAlign: samplingRatio must be an integer >= 0/,
    );
    expect(T.roiAlign(x, T.zeros([0, 5]), { outputSize: [3, 2], spatialScale: 1 }).shape).toEqual([0, 2, 3, 2]);
  });
});

describe('DensePose R-CNN detection path (RPN, box head, NMS) against the PyTorch re-implementation', () => {
  it('RPN outputs, proposals, box-head outputs and detections of a narrow model', async () => {
    const g = new ModelGolden('densepose_rcnn_detect');
    const config = { ...DENSEPOSE_RCNN_R50_FPN, backbone: SMALL, fcDim: 32 };
    const model = new RCNNDetector(config);
    model.loadStateDict(g.stateDict());
    const { rpn, boxes } = await model.detect(g.tensor('input'));
    for (let l = 0; l < 5; l++) {
      for (const [name, t] of [
        [`rpn_logits${l}`, rpn.logits[l]!],
        [`rpn_deltas${l}`, rpn.deltas[l]!],
      ] as const) {
        expect([...t.shape], name).toEqual(g.host(`out/${name}`).shape);
        expectClose(await t.data(), g.host(`out/${name}`).data, 1e-4, name);
      }
    }
    // Proposals: same count and order (no near-ties at these weights), boxes and logits close.
    const wantP = g.host('out/proposals');
    expect(rpn.proposals.boxes.length).toBe(wantP.data.length);
    expectClose(rpn.proposals.boxes, wantP.data, 1e-4, 'proposals');
    expectClose(rpn.proposals.scores, g.host('out/proposal_logits').data, 1e-4, 'proposal logits');
    // Box head on the same proposals: logits and deltas, then the detections after threshold 0.5 and NMS 0.5.
    expect(poolerLevels(rpn.proposals.boxes)).toEqual(g.host('out/box_levels').data);
    expectClose(await boxes.clsLogits.data(), g.host('out/cls_logits').data, 1e-4, 'cls logits');
    expectClose(await boxes.bboxDeltas.data(), g.host('out/bbox_deltas').data, 1e-4, 'bbox deltas');
    const wantD = g.host('out/det_boxes');
    expect(boxes.detections.boxes.length).toBe(wantD.data.length);
    expectClose(boxes.detections.boxes, wantD.data, 1e-4, 'detections');
    expectClose(boxes.detections.scores, g.host('out/det_scores').data, 1e-4, 'detection scores');
    expect(boxes.detections.scores.every((s) => s > 0.5)).toBe(true);
  });

  it('ROIPooler: boxes pooled from their FPN level, in their order', async () => {
    const g = new ModelGolden('densepose_rcnn_detect');
    const model = new RCNNDetector({ ...DENSEPOSE_RCNN_R50_FPN, backbone: SMALL, fcDim: 32 });
    model.loadStateDict(g.stateDict());
    const x = T.sub(g.tensor('input'), T.tensor(Float32Array.from(RCNNDetector.PIXEL_MEAN), [1, 3, 1, 1]));
    const pooled = poolBoxes(model.backbone.forward(x), g.host('out/proposals').data as Float32Array, 7, 2, false);
    expectClose(await pooled.data(), g.host('out/box_pooled').data, 1e-4, 'pooled');
  });

  it('batchedNms keeps the best box of each overlapping cluster, per group', () => {
    const boxes = new Float32Array([0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30, 0, 0, 10, 10]);
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.95], null, 0.5)).toEqual([3, 2]);
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.95], [0, 0, 0, 1], 0.5)).toEqual([3, 0, 2]);
    // Boxes 0 and 3 are the same box (IoU 1): only a threshold of 1 keeps both.
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.95], null, 0.99)).toEqual([3, 1, 2]);
    expect(batchedNms(boxes, [0.9, 0.8, 0.7, 0.95], null, 1)).toEqual([3, 0, 1, 2]);
  });
});
