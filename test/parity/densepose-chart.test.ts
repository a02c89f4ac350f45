import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import {
  DENSEPOSE_CHART_HEAD,
  DENSEPOSE_RCNN_R50_FPN,
  DENSEPOSE_RCNN_R50_FPN_S1X,
  type DensePoseInstance,
  type DensePosePredictor,
  DensePoseRCNN,
  type DensePoseRCNNConfig,
  leffaDensePoseImage,
  loadReleasedDensePose,
  pilResizeBilinear,
  poolerLevels,
  renderSeg,
  shortestEdgeSize,
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
const NARROW: DensePoseRCNNConfig = {
  detector: { ...DENSEPOSE_RCNN_R50_FPN, backbone: SMALL, fcDim: 32 },
  head: { ...DENSEPOSE_CHART_HEAD, hidden: 16 },
};
/** The oracle's MIN_SIZE_TEST / MAX_SIZE_TEST for the narrow model. */
const RESIZE = { shortEdge: 96, maxSize: 160 };

const out = (name: string) => fileURLToPath(new URL(`../golden/out/${name}`, import.meta.url));
const bytesOf = (name: string) => new Uint8Array(readFileSync(out(name)));
const u8 = (h: T.HostTensor) => Uint8Array.from(h.data);

/** Pixels (of `channels` each) where two images differ. */
function differing(a: Uint8Array, b: ArrayLike<number>, channels = 1): number {
  let n = 0;
  for (let p = 0; p < a.length; p += channels) {
    for (let c = 0; c < channels; c++) {
      if (a[p + c] !== b[p + c]) {
        n++;
        break;
      }
    }
  }
  return n;
}

let g: ModelGolden;
let predictor: DensePosePredictor;
let image: { data: Uint8Array; height: number; width: number };
let people: DensePoseInstance[];

beforeAll(async () => {
  await T.init();
  g = new ModelGolden('densepose_chart_pipeline');
  const input = g.host('input');
  image = { data: u8(input), height: input.shape[0]!, width: input.shape[1]! };
  predictor = await loadReleasedDensePose(bytesOf('densepose_chart_model.pkl'), { config: NARROW, resize: RESIZE });
  people = await predictor.predict(image);
}, 120_000);

describe('DensePose chart head (DensePoseV1ConvXHead + DensePoseChartPredictor) against the PyTorch re-implementation', () => {
  it('densepose pooler (ROIAlign 28, not aligned), 8 convs, deconvs and 2x bilinear upsampling on the detected boxes', async () => {
    const model = predictor.model;
    const resized = g.host('resized');
    const [h, w] = resized.shape as [number, number, number];
    const planar = new Float32Array(3 * h * w);
    for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) planar[c * h * w + p] = resized.data[3 * p + c]!;
    const { features, rpn, boxes } = await model.detect(T.tensor(planar, [1, 3, h, w]));
    expectClose(boxes.detections.boxes, g.host('out/det_boxes').data, 1e-4, 'detections');
    expectClose(boxes.detections.scores, g.host('out/det_scores').data, 1e-4, 'scores');
    const det = g.host('out/det_boxes').data as Float32Array;
    const charts = model.roi_heads.densepose(features, det)!;
    for (const [key, t] of [
      ['coarse_segm', charts.coarseSegm],
      ['fine_segm', charts.fineSegm],
      ['u', charts.u],
      ['v', charts.v],
    ] as const) {
      expect([...t.shape], key).toEqual(g.host(`out/${key}`).shape);
      expectClose(await t.data(), g.host(`out/${key}`).data, 1e-4, key);
    }
    expect(charts.fineSegm.shape).toEqual([det.length / 4, 25, 112, 112]);
    expect(model.roi_heads.densepose(features, new Float32Array(0))).toBeNull();
    T.dispose([features, rpn.logits, rpn.deltas, boxes.clsLogits, boxes.bboxDeltas, charts]);
  });

  it('the full-size model has the released checkpoint key set and shapes (roi_heads.densepose_head / densepose_predictor)', () => {
    const text = readFileSync(out('densepose_chart_s1x_keys.txt'), 'utf8');
    const shapes = new Map(
      text
        .trim()
        .split('\n')
        .map((l) => {
          const [k, s] = l.split(' ');
          return [k!, s!.split(',').map(Number)] as [string, number[]];
        }),
    );
    const full = T.nn.withoutInit(() => new DensePoseRCNN(DENSEPOSE_RCNN_R50_FPN_S1X));
    expect(full.checkStateDict(shapes)).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect([...shapes.keys()].filter((k) => k.includes('densepose')).length).toBe(8 * 2 + 4 * 2);
    expect(shapes.get('roi_heads.densepose_predictor.index_uv_lowres.weight')).toEqual([512, 25, 4, 4]);
    full.dispose();
  });
});

describe('ROIPooler levels (assign_boxes_to_levels, canonical 224 at p4)', () => {
  it('powers of two of 224 start a level; smaller and larger boxes clamp to p2 and p5', () => {
    const boxes = new Float32Array([
      0, 0, 224, 224, 0, 0, 112, 112, 0, 0, 111.9, 112, 5, 5, 61, 61, 0, 0, 2000, 2000, 0, 0, 447.99, 448, 10, 20, 458,
      468,
    ]);
    expect([...poolerLevels(boxes)]).toEqual([2, 1, 0, 0, 3, 2, 3]);
  });
});

describe("DefaultPredictor's test-time resize (ResizeShortestEdge through Pillow's bilinear filter)", () => {
  it('output sizes and pixels equal Pillow: enlarging, shrinking, one side, the max-size cap', () => {
    const r = new ModelGolden('densepose_chart_resize');
    for (let k = 0; r.tensors.has(`in${k}`); k++) {
      const [H, W, short, max, h, w] = [...r.host(`args${k}`).data];
      expect(shortestEdgeSize(H!, W!, short!, max!), `case ${k}`).toEqual([h, w]);
      const got = pilResizeBilinear(u8(r.host(`in${k}`)), H!, W!, 3, h!, w!);
      expect(differing(got, r.host(`out${k}`).data), `case ${k}: ${H}x${W} -> ${h}x${w}`).toBe(0);
    }
    expect(() => pilResizeBilinear(new Uint8Array(5), 2, 2, 3, 4, 4)).toThrow(
      /pilResizeBilinear: expected 2x2x3 = 12 bytes, got 5/,
    );
  });
});

describe("Leffa's DensePosePredictor outputs from the released-format .pkl", () => {
  it('people in the input image: boxes (detector_postprocess), labels and U, V over each integer box', async () => {
    const kept = g.host('out/kept').data;
    expect(people.length).toBe(kept.length);
    expectClose(Float32Array.from(people.flatMap((p) => [...p.box])), g.host('out/image_boxes').data, 1e-4, 'boxes');
    for (const [k, p] of people.entries()) {
      const labels = g.host(`out/labels${k}`);
      expect([p.height, p.width], `person ${k}`).toEqual(labels.shape);
      // Argmax of bilinear mixtures: a near-tie may flip a pixel in float32.
      const bad = differing(p.labels, labels.data);
      expect(bad / p.labels.length, `person ${k}: ${bad} labels differ`).toBeLessThan(1e-3);
      const uv = g.host(`out/uv${k}`).data;
      const n = p.labels.length;
      for (let i = 0; i < n; i++) {
        if (p.labels[i] !== labels.data[i]) continue;
        for (const c of [0, 1]) {
          if (Math.abs(p.uv[c * n + i]! - uv[c * n + i]!) > 1e-4)
            throw new Error(`person ${k}: uv[${c}] at ${i}: ${p.uv[c * n + i]} vs ${uv[c * n + i]}`);
        }
      }
      expect(
        p.labels.some((l) => l > 0),
        `person ${k} has body parts`,
      ).toBe(true);
    }
    // By descending score, all above Leffa's threshold.
    expect(people.every((p, i) => p.score > 0.5 && (i === 0 || p.score <= people[i - 1]!.score))).toBe(true);
  });

  it('predict_iuv: [I, V, U] of the best person pasted at its box; predict_seg: PARULA parts of the last person (cv2-rendered reference)', async () => {
    const { height: H, width: W } = image;
    const live = T.memoryStats().liveBuffers;
    const iuv = await predictor.predictIUV(image);
    const seg = await predictor.predictSeg(image);
    // Features, chart outputs and resized maps are freed (a run leaked 271 buffers before); earlier tests'
    // garbage may be collected meanwhile, so the count can only fall.
    expect(T.memoryStats().liveBuffers).toBeLessThanOrEqual(live);
    const wantIuv = g.host('out/predict_iuv');
    const wantSeg = g.host('out/predict_seg');
    expect(wantIuv.shape).toEqual([H, W, 3]);
    // U and V are min-max scaled and truncated to uint8: off by one where float rounding crosses an integer.
    let far = 0;
    for (let i = 0; i < iuv.length; i++) if (Math.abs(iuv[i]! - wantIuv.data[i]!) > 1) far++;
    expect(far, 'IUV values that differ by more than 1').toBe(0);
    expect(differing(iuv, wantIuv.data, 3) / (H * W)).toBeLessThan(5e-3);
    expect(differing(seg, wantSeg.data, 3) / (H * W)).toBeLessThan(2e-3);
    expect(seg.some((v) => v > 0)).toBe(true);
    // Only the last person is drawn (Leffa's visualiser clears the image before each one).
    expect(differing(seg, renderSeg(people.slice(-1), H, W), 3)).toBe(0);
    expect(differing(seg, renderSeg(people.slice(0, 1), H, W), 3)).toBeGreaterThan(0);
    // app.py's condition images: VITON-HD the RGB seg, DressCode I three times, pose transfer [U, V, I].
    const vt = leffaDensePoseImage(people, H, W, 'viton_hd');
    const dc = leffaDensePoseImage(people, H, W, 'dress_code');
    const pt = leffaDensePoseImage(people, H, W, 'pose_transfer');
    for (let p = 0; p < H * W * 3; p += 3) {
      expect([vt[p], vt[p + 1], vt[p + 2]]).toEqual([seg[p + 2], seg[p + 1], seg[p]]);
      expect([dc[p], dc[p + 1], dc[p + 2]]).toEqual([iuv[p], iuv[p], iuv[p]]);
      expect([pt[p], pt[p + 1], pt[p + 2]]).toEqual([iuv[p + 2], iuv[p + 1], iuv[p]]);
    }
  });

  it('no person above the threshold is an error naming the image, not an empty picture', () => {
    expect(() => leffaDensePoseImage([], 20, 30, 'viton_hd')).toThrow(
      /predict_seg: DensePose R-CNN found no person .* in the 20x30 image/,
    );
    expect(() => leffaDensePoseImage([], 20, 30, 'dress_code')).toThrow(/predict_iuv: DensePose R-CNN found no person/);
  });
});

describe('the released .pkl loader', () => {
  it('reads the bare dict and old checkpoints with pixel statistics and cell anchors beside the weights', async () => {
    for (const name of ['densepose_chart_bare.pkl', 'densepose_chart_buffers.pkl']) {
      const p = await loadReleasedDensePose(bytesOf(name), { config: NARROW, resize: RESIZE });
      const a = p.model.stateDict().get('roi_heads.densepose_predictor.u_lowres.weight')!;
      const b = predictor.model.stateDict().get('roi_heads.densepose_predictor.u_lowres.weight')!;
      expect(await a.data(), name).toEqual(await b.data());
    }
    const fromPath = await loadReleasedDensePose(out('densepose_chart_model.pkl'), { config: NARROW });
    expect(fromPath.resize).toEqual({ shortEdge: 800, maxSize: 1333 });
  });

  it('refuses Caffe2 blobs, missing or extra keys and other pixel statistics, naming the file and the key', async () => {
    const load = (name: string) => loadReleasedDensePose(bytesOf(name), { config: NARROW });
    await expect(load('densepose_chart_blobs.pkl')).rejects.toThrow(
      /a Detectron \(Caffe2\) blob dict \('blobs\.conv1_w', \.\.\.\).*expected model_final_162be9\.pkl/,
    );
    await expect(load('densepose_chart_missing.pkl')).rejects.toThrow(
      /not the densepose_rcnn_R_50_FPN_s1x checkpoint .*1 problem\(s\):\n {2}missing roi_heads\.densepose_predictor\.u_lowres\.bias/,
    );
    await expect(load('densepose_chart_confidence.pkl')).rejects.toThrow(
      /unexpected roi_heads\.densepose_predictor\.sigma_2_lowres\.weight/,
    );
    await expect(load('densepose_chart_pixel.pkl')).rejects.toThrow(
      /pixel_std is \[57, 57, 57\], but this model normalises with \[1, 1, 1\]/,
    );
    // The full-size model refuses the narrow weights by shape.
    await expect(loadReleasedDensePose(bytesOf('densepose_chart_model.pkl'))).rejects.toThrow(
      /shape of backbone\.bottom_up\.stem\.conv1\.weight: expected \[64, 3, 7, 7\], got \[8, 3, 7, 7\]/,
    );
    await expect(loadReleasedDensePose(bytesOf('pkl_evil.pkl'))).rejects.toThrow(
      /pickle references global 'os\.system', which is not allowed/,
    );
    await expect(loadReleasedDensePose('/nonexistent/model_final_162be9.pkl')).rejects.toThrow(
      /cannot read '\/nonexistent\/model_final_162be9\.pkl'/,
    );
    await expect(loadReleasedDensePose(new Uint8Array([0x50, 0x4b, 3, 4]))).rejects.toThrow(
      /not a pickle of protocol 2 or later .* not a detectron2 \.pkl checkpoint/,
    );
  });
});
