import * as T from '@leffa-webgpu/core';
import { FPN_STRIDES, RESNET50_FPN, type FPNFeatures, type ResNetFPNConfig, ResNetFPN } from './backbone.js';

/**
 * detectron2's GeneralizedRCNN detection path as DensePose R-CNN (densepose_rcnn_R_50_FPN_s1x) configures it, at
 * test time: StandardRPNHead over p2..p6 with DefaultAnchorGenerator (one size per level 32..512, ratios 0.5 / 1 /
 * 2, offset 0), per-level top 1000 by objectness, clipping, empty-box removal, NMS 0.7 per level, top 1000; the
 * ROIPooler (ROIAlign 7x7, sampling ratio 2, not aligned, level floor(4 + log2(sqrt(area) / 224)) in [2, 5]);
 * FastRCNNConvFCHead (fc1, fc2 of 1024) and the FastRCNNOutputLayers predictor (one class), box deltas with weights
 * (10, 10, 5, 5), score threshold (Leffa's DensePosePredictor: 0.5), NMS 0.5, at most 100 detections.
 * Keys: `proposal_generator.rpn_head.{conv,objectness_logits,anchor_deltas}`, `roi_heads.box_head.fc1|fc2`,
 * `roi_heads.box_predictor.{cls_score,bbox_pred}`. Box post-processing (top-k, NMS) runs on the host.
 */
export interface RCNNConfig {
  backbone: ResNetFPNConfig;
  /** Anchor size per FPN level p2..p6 and the aspect ratios (height / width). */
  anchorSizes: number[];
  aspectRatios: number[];
  rpnPreNmsTopK: number;
  rpnPostNmsTopK: number;
  rpnNmsThresh: number;
  boxPoolerResolution: number;
  boxSamplingRatio: number;
  /** ROI_BOX_HEAD.POOLER_TYPE: 'ROIAlign' (false) or 'ROIAlignV2' (true). */
  boxAligned: boolean;
  fcDim: number;
  numClasses: number;
  boxRegWeights: [number, number, number, number];
  /** ROI_HEADS.SCORE_THRESH_TEST (Leffa sets 0.5). */
  scoreThresh: number;
  nmsThresh: number;
  detectionsPerImage: number;
}

export const DENSEPOSE_RCNN_R50_FPN: RCNNConfig = {
  backbone: RESNET50_FPN,
  anchorSizes: [32, 64, 128, 256, 512],
  aspectRatios: [0.5, 1, 2],
  rpnPreNmsTopK: 1000,
  rpnPostNmsTopK: 1000,
  rpnNmsThresh: 0.7,
  boxPoolerResolution: 7,
  boxSamplingRatio: 2,
  boxAligned: false,
  fcDim: 1024,
  numClasses: 1,
  boxRegWeights: [10, 10, 5, 5],
  scoreThresh: 0.5,
  nmsThresh: 0.5,
  detectionsPerImage: 100,
};

/** Box2BoxTransform.apply_deltas's clamp on dw, dh. */
const SCALE_CLAMP = Math.log(1000 / 16);

/** DefaultAnchorGenerator's anchors of one level, [H * W * A, 4] row-major over (y, x, anchor). */
export function gridAnchors(
  h: number,
  w: number,
  stride: number,
  size: number,
  ratios: readonly number[],
): Float32Array {
  const cell = ratios.map((r) => {
    const aw = Math.sqrt((size * size) / r);
    const ah = r * aw;
    return [-aw / 2, -ah / 2, aw / 2, ah / 2];
  });
  const out = new Float32Array(h * w * ratios.length * 4);
  let o = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (const c of cell) {
        out[o++] = x * stride + c[0]!;
        out[o++] = y * stride + c[1]!;
        out[o++] = x * stride + c[2]!;
        out[o++] = y * stride + c[3]!;
      }
    }
  }
  return out;
}

/** Box2BoxTransform.apply_deltas for one box: (dx, dy, dw, dh) / weights on an (x1, y1, x2, y2) box. */
export function applyDelta(
  box: ArrayLike<number>,
  d: ArrayLike<number>,
  weights: readonly number[],
  out: Float32Array,
  at: number,
  bAt = 0,
  dAt = 0,
): void {
  const w = box[bAt + 2]! - box[bAt]!;
  const h = box[bAt + 3]! - box[bAt + 1]!;
  const cx = box[bAt]! + 0.5 * w;
  const cy = box[bAt + 1]! + 0.5 * h;
  const dw = Math.min(d[dAt + 2]! / weights[2]!, SCALE_CLAMP);
  const dh = Math.min(d[dAt + 3]! / weights[3]!, SCALE_CLAMP);
  const pcx = (d[dAt]! / weights[0]!) * w + cx;
  const pcy = (d[dAt + 1]! / weights[1]!) * h + cy;
  const pw = Math.exp(dw) * w;
  const ph = Math.exp(dh) * h;
  out[at] = pcx - 0.5 * pw;
  out[at + 1] = pcy - 0.5 * ph;
  out[at + 2] = pcx + 0.5 * pw;
  out[at + 3] = pcy + 0.5 * ph;
}

const clamp = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);

/**
 * Greedy non-maximum suppression (torchvision.ops.batched_nms): within each group, by descending score, boxes
 * whose IoU with a kept one exceeds `thresh` are dropped. Returns kept indices by descending score.
 */
export function batchedNms(
  boxes: Float32Array,
  scores: ArrayLike<number>,
  groups: ArrayLike<number> | null,
  thresh: number,
): number[] {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const removed = new Uint8Array(n);
  const area = (i: number) => (boxes[4 * i + 2]! - boxes[4 * i]!) * (boxes[4 * i + 3]! - boxes[4 * i + 1]!);
  const keep: number[] = [];
  for (let oi = 0; oi < n; oi++) {
    const i = order[oi]!;
    if (removed[i]) continue;
    keep.push(i);
    const ai = area(i);
    for (let oj = oi + 1; oj < n; oj++) {
      const j = order[oj]!;
      if (removed[j] || (groups && groups[j] !== groups[i])) continue;
      const iw = Math.max(0, Math.min(boxes[4 * i + 2]!, boxes[4 * j + 2]!) - Math.max(boxes[4 * i]!, boxes[4 * j]!));
      const ih = Math.max(
        0,
        Math.min(boxes[4 * i + 3]!, boxes[4 * j + 3]!) - Math.max(boxes[4 * i + 1]!, boxes[4 * j + 1]!),
      );
      const inter = iw * ih;
      if (inter / (ai + area(j) - inter) > thresh) removed[j] = 1;
    }
  }
  return keep;
}

/** StandardRPNHead: shared 3x3 conv + ReLU, then objectness logits (A) and anchor deltas (4A) per level. */
export class StandardRPNHead extends T.Module {
  readonly conv: T.nn.Conv2d;
  readonly objectness_logits: T.nn.Conv2d;
  readonly anchor_deltas: T.nn.Conv2d;
  constructor(channels: number, anchors: number) {
    super();
    this.conv = this.addModule('conv', new T.nn.Conv2d(channels, channels, 3, { padding: 1 }));
    this.objectness_logits = this.addModule('objectness_logits', new T.nn.Conv2d(channels, anchors, 1));
    this.anchor_deltas = this.addModule('anchor_deltas', new T.nn.Conv2d(channels, 4 * anchors, 1));
  }

  forward(x: T.Tensor): [logits: T.Tensor, deltas: T.Tensor] {
    const t = T.relu(this.conv.forward(x));
    return [this.objectness_logits.forward(t), this.anchor_deltas.forward(t)];
  }
}

/** `proposal_generator`: holds `rpn_head` (the key prefix detectron2 uses). */
export class RPN extends T.Module {
  readonly rpn_head: StandardRPNHead;
  constructor(channels: number, anchors: number) {
    super();
    this.rpn_head = this.addModule('rpn_head', new StandardRPNHead(channels, anchors));
  }
}

/** FastRCNNConvFCHead with NUM_FC 2 and no convs: flatten, fc1 + ReLU, fc2 + ReLU. */
export class FastRCNNConvFCHead extends T.Module {
  readonly fc1: T.nn.Linear;
  readonly fc2: T.nn.Linear;
  constructor(inputSize: number, fc: number) {
    super();
    this.fc1 = this.addModule('fc1', new T.nn.Linear(inputSize, fc));
    this.fc2 = this.addModule('fc2', new T.nn.Linear(fc, fc));
  }

  forward(x: T.Tensor): T.Tensor {
    return T.relu(this.fc2.forward(T.relu(this.fc1.forward(T.flatten(x, 1)))));
  }
}

/** FastRCNNOutputLayers: class logits (classes + background last) and class-specific box deltas. */
export class FastRCNNOutputLayers extends T.Module {
  readonly cls_score: T.nn.Linear;
  readonly bbox_pred: T.nn.Linear;
  constructor(fc: number, classes: number) {
    super();
    this.cls_score = this.addModule('cls_score', new T.nn.Linear(fc, classes + 1));
    this.bbox_pred = this.addModule('bbox_pred', new T.nn.Linear(fc, 4 * classes));
  }
}

/** Boxes (x1, y1, x2, y2) in input-image pixels with their scores, as host arrays. */
export interface Boxes {
  boxes: Float32Array;
  scores: Float32Array;
}

/**
 * ROIPooler's level of each box (assign_boxes_to_levels): floor(4 + log2(sqrt(area) / 224 + 1e-8)) clamped to
 * [2, 5], minus 2, in float32 as PyTorch computes it (detectron2 since 2020 adds 1e-8, before it machine epsilon).
 */
export function poolerLevels(boxes: Float32Array): Int32Array {
  const f = Math.fround;
  const n = boxes.length / 4;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const area = f(f(boxes[4 * i + 2]! - boxes[4 * i]!) * f(boxes[4 * i + 3]! - boxes[4 * i + 1]!));
    const level = f(4 + f(Math.log2(f(f(f(Math.sqrt(area)) / 224) + f(1e-8)))));
    out[i] = Math.min(Math.max(Math.floor(level), 2), 5) - 2;
  }
  return out;
}

/**
 * ROIPooler over p2..p5: each box pooled from its level with roiAlign, results in the boxes' order
 * ([K, C, size, size]).
 */
export function poolBoxes(
  feats: FPNFeatures,
  boxes: Float32Array,
  size: number,
  samplingRatio: number,
  aligned: boolean,
): T.Tensor {
  // The rois, per-level pools and the index tensor are freed with the scope.
  return T.tidy(() => {
    const levels = poolerLevels(boxes);
    const maps = [feats.p2, feats.p3, feats.p4, feats.p5];
    const parts: T.Tensor[] = [];
    const order: number[] = [];
    for (let l = 0; l < 4; l++) {
      const idx = [...levels.keys()].filter((i) => levels[i] === l);
      if (!idx.length) continue;
      const rois = new Float32Array(idx.length * 5);
      idx.forEach((i, r) => rois.set([0, ...boxes.subarray(4 * i, 4 * i + 4)], 5 * r));
      parts.push(
        T.roiAlign(maps[l]!, T.tensor(rois, [idx.length, 5]), {
          outputSize: size,
          spatialScale: 1 / FPN_STRIDES[l]!,
          samplingRatio,
          aligned,
        }),
      );
      order.push(...idx);
    }
    const C = feats.p2.shape[1]!;
    if (!parts.length) return T.zeros([0, C, size, size]);
    const cat = parts.length === 1 ? parts[0]! : T.concat(parts, 0);
    // Back to the boxes' order: position of box i in `order`.
    const inverse = new Int32Array(order.length);
    order.forEach((i, p) => (inverse[i] = p));
    return T.indexSelect(cat, 0, T.tensor(inverse, [order.length], 'int32'));
  });
}

export interface RPNOutputs {
  /** Per level p2..p6: objectness logits [1, A, H, W] and deltas [1, 4A, H, W]. */
  logits: T.Tensor[];
  deltas: T.Tensor[];
  /** Proposals after NMS, by descending objectness, and their logits. */
  proposals: Boxes;
}

/** The RPN's test-time proposals (find_top_rpn_proposals) for one image of `size` [h, w] (before padding). */
export async function rpnProposals(
  rpn: RPN,
  feats: FPNFeatures,
  size: [number, number],
  config: RCNNConfig,
): Promise<RPNOutputs> {
  const A = config.aspectRatios.length;
  const levels = [feats.p2, feats.p3, feats.p4, feats.p5, feats.p6];
  const logits: T.Tensor[] = [];
  const deltas: T.Tensor[] = [];
  const candBoxes: number[] = [];
  const candScores: number[] = [];
  const candLevels: number[] = [];
  for (let l = 0; l < levels.length; l++) {
    const [lg, dl] = T.tidy(() => rpn.rpn_head.forward(levels[l]!));
    logits.push(lg);
    deltas.push(dl);
    const [, , H, W] = lg.shape as [number, number, number, number];
    const lh = await lg.data();
    const dh = await dl.data();
    const anchors = gridAnchors(H, W, FPN_STRIDES[l]!, config.anchorSizes[l]!, config.aspectRatios);
    // (A, H, W) -> (H, W, A) order, as detectron2 flattens.
    const n = H * W * A;
    const score = new Float32Array(n);
    for (let a = 0; a < A; a++) for (let p = 0; p < H * W; p++) score[p * A + a] = lh[a * H * W + p]!;
    const k = Math.min(config.rpnPreNmsTopK, n);
    const top = Array.from({ length: n }, (_, i) => i)
      .sort((a, b) => score[b]! - score[a]! || a - b)
      .slice(0, k);
    const box = new Float32Array(4);
    const d = new Float32Array(4);
    for (const i of top) {
      const p = Math.floor(i / A);
      const a = i % A;
      for (let c = 0; c < 4; c++) d[c] = dh[(a * 4 + c) * H * W + p]!;
      applyDelta(anchors, d, [1, 1, 1, 1], box, 0, 4 * i);
      const [h, w] = size;
      const b = [clamp(box[0]!, w), clamp(box[1]!, h), clamp(box[2]!, w), clamp(box[3]!, h)];
      if (!b.every(Number.isFinite) || !Number.isFinite(score[i]!)) continue;
      if (!(b[2]! - b[0]! > 0 && b[3]! - b[1]! > 0)) continue;
      candBoxes.push(...b);
      candScores.push(score[i]!);
      candLevels.push(l);
    }
  }
  const boxes = new Float32Array(candBoxes);
  const keep = batchedNms(boxes, candScores, candLevels, config.rpnNmsThresh).slice(0, config.rpnPostNmsTopK);
  return {
    logits,
    deltas,
    proposals: {
      boxes: Float32Array.from(keep.flatMap((i) => [...boxes.subarray(4 * i, 4 * i + 4)])),
      scores: Float32Array.from(keep.map((i) => candScores[i]!)),
    },
  };
}

export interface BoxHeadOutputs {
  /** Class logits [P, classes + 1] and box deltas [P, 4 x classes] of the proposals. */
  clsLogits: T.Tensor;
  bboxDeltas: T.Tensor;
  /** Detections after score threshold and NMS, by descending score (class 0: person). */
  detections: Boxes;
}

/** `roi_heads`' box path; DensePoseROIHeads (chart-head.ts) adds the DensePose head and predictor. */
export class BoxROIHeads extends T.Module {
  readonly box_head: FastRCNNConvFCHead;
  readonly box_predictor: FastRCNNOutputLayers;
  constructor(readonly config: RCNNConfig) {
    super();
    const r = config.boxPoolerResolution;
    this.box_head = this.addModule('box_head', new FastRCNNConvFCHead(config.backbone.fpnOut * r * r, config.fcDim));
    this.box_predictor = this.addModule('box_predictor', new FastRCNNOutputLayers(config.fcDim, config.numClasses));
  }

  /** fast_rcnn_inference_single_image for one image of `size` [h, w] (before padding). */
  async detect(feats: FPNFeatures, proposals: Float32Array, size: [number, number]): Promise<BoxHeadOutputs> {
    const c = this.config;
    const pooled = poolBoxes(feats, proposals, c.boxPoolerResolution, c.boxSamplingRatio, c.boxAligned);
    const [clsLogits, bboxDeltas, softmax] = T.tidy(() => {
      const x = this.box_head.forward(pooled);
      const logits = this.box_predictor.cls_score.forward(x);
      return [logits, this.box_predictor.bbox_pred.forward(x), T.softmax(logits, -1)];
    });
    const probs = await softmax.data();
    softmax.dispose();
    const deltas = await bboxDeltas.data();
    const K = c.numClasses;
    const [h, w] = size;
    const boxes: number[] = [];
    const scores: number[] = [];
    const classes: number[] = [];
    const box = new Float32Array(4);
    const P = proposals.length / 4;
    for (let i = 0; i < P; i++) {
      for (let k = 0; k < K; k++) {
        const s = probs[i * (K + 1) + k]!;
        applyDelta(proposals, deltas, c.boxRegWeights, box, 0, 4 * i, (i * K + k) * 4);
        const b = [clamp(box[0]!, w), clamp(box[1]!, h), clamp(box[2]!, w), clamp(box[3]!, h)];
        if (!(s > c.scoreThresh) || !b.every(Number.isFinite)) continue;
        boxes.push(...b);
        scores.push(s);
        classes.push(k);
      }
    }
    const all = new Float32Array(boxes);
    const keep = batchedNms(all, scores, classes, c.nmsThresh).slice(0, c.detectionsPerImage);
    T.dispose(pooled);
    return {
      clsLogits,
      bboxDeltas,
      detections: {
        boxes: Float32Array.from(keep.flatMap((i) => [...all.subarray(4 * i, 4 * i + 4)])),
        scores: Float32Array.from(keep.map((i) => scores[i]!)),
      },
    };
  }
}

/** The detector: `backbone`, `proposal_generator`, `roi_heads` (box path), detectron2's key layout. */
export class RCNNDetector extends T.Module {
  readonly backbone: ResNetFPN;
  readonly proposal_generator: RPN;
  readonly roi_heads: BoxROIHeads;
  /** cfg.MODEL.PIXEL_MEAN (BGR) with PIXEL_STD 1. */
  static readonly PIXEL_MEAN = [103.53, 116.28, 123.675] as const;

  constructor(
    readonly config: RCNNConfig = DENSEPOSE_RCNN_R50_FPN,
    roiHeads?: BoxROIHeads,
  ) {
    super();
    this.backbone = this.addModule('backbone', new ResNetFPN(config.backbone));
    this.proposal_generator = this.addModule(
      'proposal_generator',
      new RPN(config.backbone.fpnOut, config.aspectRatios.length),
    );
    this.roi_heads = this.addModule('roi_heads', roiHeads ?? new BoxROIHeads(config));
  }

  /**
   * Runs the detector on one BGR image [1, 3, h, w] in 0..255, already resized (detectron2's test resize is the
   * caller's): normalised, then zero-padded at the bottom and right to multiples of 32 as ImageList does. Boxes
   * are in the resized image's pixels. Returns features, RPN outputs and detections.
   */
  async detect(image: T.Tensor): Promise<{ features: FPNFeatures; rpn: RPNOutputs; boxes: BoxHeadOutputs }> {
    if (image.rank !== 4 || image.shape[0] !== 1 || image.shape[1] !== 3)
      throw new Error(`RCNNDetector.detect: expected one BGR image [1, 3, H, W], got ${T.formatShape(image.shape)}`);
    const s: [number, number] = [image.shape[2]!, image.shape[3]!];
    const d = ResNetFPN.SIZE_DIVISIBILITY;
    const features = T.tidy(() => {
      const normalised = T.sub(image, T.tensor(Float32Array.from(RCNNDetector.PIXEL_MEAN), [1, 3, 1, 1]));
      return this.backbone.forward(T.pad(normalised, [0, (d - (s[1] % d)) % d, 0, (d - (s[0] % d)) % d]));
    });
    const rpn = await rpnProposals(this.proposal_generator, features, s, this.config);
    const boxes = await this.roi_heads.detect(features, rpn.proposals.boxes, s);
    return { features, rpn, boxes };
  }
}
