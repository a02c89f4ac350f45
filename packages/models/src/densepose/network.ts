import * as T from '@leffa-webgpu/core';
import { IdentityABN, bottleneckStage, deepStemForward } from '../schp/network.js';

/**
 * A fully convolutional, single-person DensePose-style network: dense correspondence from image pixels to
 * body-surface charts (Güler et al., "DensePose", CVPR 2018; detectron2's DensePose R-CNN outputs).
 *
 * - Backbone: a ResNet of SCHP's bottlenecks (deep 3x3 stem, IdentityABN norms, same state-dict keys:
 *   conv1/bn1 .. conv3/bn3, layer1..layer4), at the standard strides 4, 8, 16, 32 (no dilation).
 * - A light FPN decoder: 1x1 laterals on layers 1..4 (`lateral.i`), top-down nearest upsampling and sum down
 *   to stride 4, one 3x3 smoothing convolution (`smooth`).
 * - A head of `headConvs` 3x3 + ReLU convolutions (`head.i`, detectron2's DensePoseV1ConvXHead without the ROI
 *   pooling), then 1x1 predictors: `index_uv` (25 logits: background + the 24 detectron2 parts) and `u`, `v`
 *   (24 channels each, one per part, squashed by a sigmoid into [0, 1]; detectron2 regresses them raw).
 *
 * Deliberate differences from DensePose R-CNN: no detector / ROIAlign (the input is a person crop, see
 * `personCrop`), no coarse foreground segmentation branch, no transposed-conv upsampling in the predictor.
 */
export interface DensePoseConfig {
  /** Bottlenecks per stage ([3, 4, 6, 3] = ResNet-50). */
  layers: [number, number, number, number];
  /** Stem widths: conv1/conv2 output, conv3 output. */
  stem: [number, number];
  /** Bottleneck widths per stage; each stage outputs 4x. */
  planes: [number, number, number, number];
  /** FPN width (laterals, top-down path and smoothing). */
  fpn: number;
  /** 3x3 + ReLU convolutions of the head and their width. */
  headConvs: number;
  headWidth: number;
}

/** Background plus detectron2's 24 surface parts. */
export const DENSEPOSE_PARTS = 24;
export const DENSEPOSE_CLASSES = DENSEPOSE_PARTS + 1;

export const DENSEPOSE_CONFIGS = {
  /** A ResNet-50 (deep stem, "ResNet-50-C") with a 256-wide FPN and a 4 x 256 head. */
  resnet50: {
    layers: [3, 4, 6, 3],
    stem: [64, 128],
    planes: [64, 128, 256, 512],
    fpn: 256,
    headConvs: 4,
    headWidth: 256,
  },
  /** One bottleneck per stage and reduced widths, for tests and training here. */
  small: { layers: [1, 1, 1, 1], stem: [16, 24], planes: [16, 24, 32, 48], fpn: 48, headConvs: 2, headWidth: 48 },
} satisfies Record<string, DensePoseConfig>;

export const DENSEPOSE_SMALL: DensePoseConfig = DENSEPOSE_CONFIGS.small;
export const DENSEPOSE_RESNET50: DensePoseConfig = DENSEPOSE_CONFIGS.resnet50;

/** Smallest input side: one pixel at layer 4's stride 32. */
export const DENSEPOSE_MIN_SIDE = 32;

export interface DensePoseOutput {
  /** Part logits [N, 25, h, w] (index 0 = background). */
  I: T.Tensor;
  /** Per-part chart coordinates in [0, 1], [N, 24, h, w]; channel k is part k + 1. */
  U: T.Tensor;
  V: T.Tensor;
}

export interface DensePoseForwardOptions {
  /** Upsample the stride-4 maps to the input size (bilinear); otherwise they are at ceil(H/4) x ceil(W/4). */
  upsample?: boolean;
}

// ImageNet statistics (RGB): the network takes images in [0, 1] and normalises them itself.
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

const conv3x3 = (inC: number, outC: number, stride = 1, bias = false) =>
  new T.nn.Conv2d(inC, outC, 3, { stride, padding: 1, bias });

export class DensePoseHead extends T.Module {
  readonly conv1: T.nn.Conv2d;
  readonly bn1: IdentityABN;
  readonly conv2: T.nn.Conv2d;
  readonly bn2: IdentityABN;
  readonly conv3: T.nn.Conv2d;
  readonly bn3: IdentityABN;
  readonly layer1: T.nn.Sequential;
  readonly layer2: T.nn.Sequential;
  readonly layer3: T.nn.Sequential;
  readonly layer4: T.nn.Sequential;
  readonly lateral: T.nn.ModuleList<T.nn.Conv2d>;
  readonly smooth: T.nn.Conv2d;
  readonly head: T.nn.ModuleList<T.nn.Conv2d>;
  readonly index_uv: T.nn.Conv2d;
  readonly u: T.nn.Conv2d;
  readonly v: T.nn.Conv2d;

  constructor(readonly config: DensePoseConfig = DENSEPOSE_SMALL) {
    super();
    const { stem, planes, layers, fpn, headConvs, headWidth } = config;
    if (layers.some((n) => !(Number.isInteger(n) && n >= 1)))
      throw new Error(`DensePoseHead: every stage needs at least one bottleneck, got layers [${layers.join(', ')}]`);
    if (!(Number.isInteger(headConvs) && headConvs >= 0))
      throw new Error(`DensePoseHead: headConvs must be a non-negative integer, got ${headConvs}`);
    this.conv1 = this.addModule('conv1', conv3x3(3, stem[0], 2));
    this.bn1 = this.addModule('bn1', new IdentityABN(stem[0]));
    this.conv2 = this.addModule('conv2', conv3x3(stem[0], stem[0]));
    this.bn2 = this.addModule('bn2', new IdentityABN(stem[0]));
    this.conv3 = this.addModule('conv3', conv3x3(stem[0], stem[1]));
    this.bn3 = this.addModule('bn3', new IdentityABN(stem[1]));
    const c = planes.map((p) => p * 4);
    this.layer1 = this.addModule('layer1', bottleneckStage(stem[1], planes[0], layers[0], 1));
    this.layer2 = this.addModule('layer2', bottleneckStage(c[0]!, planes[1], layers[1], 2));
    this.layer3 = this.addModule('layer3', bottleneckStage(c[1]!, planes[2], layers[2], 2));
    this.layer4 = this.addModule('layer4', bottleneckStage(c[2]!, planes[3], layers[3], 2));
    this.lateral = this.addModule('lateral', new T.nn.ModuleList(planes.map((p) => new T.nn.Conv2d(p * 4, fpn, 1))));
    this.smooth = this.addModule('smooth', new T.nn.Conv2d(fpn, fpn, 3, { padding: 1 }));
    this.head = this.addModule(
      'head',
      new T.nn.ModuleList(
        Array.from(
          { length: headConvs },
          (_, i) => new T.nn.Conv2d(i === 0 ? fpn : headWidth, headWidth, 3, { padding: 1 }),
        ),
      ),
    );
    const headOut = headConvs > 0 ? headWidth : fpn;
    this.index_uv = this.addModule('index_uv', new T.nn.Conv2d(headOut, DENSEPOSE_CLASSES, 1));
    this.u = this.addModule('u', new T.nn.Conv2d(headOut, DENSEPOSE_PARTS, 1));
    this.v = this.addModule('v', new T.nn.Conv2d(headOut, DENSEPOSE_PARTS, 1));
  }

  /** The four backbone stages' outputs (strides 4, 8, 16, 32) of a normalised input. */
  private backbone(x: T.Tensor): T.Tensor[] {
    const c1 = this.layer1.forward(deepStemForward(this, x));
    const c2 = this.layer2.forward(c1);
    const c3 = this.layer3.forward(c2);
    const c4 = this.layer4.forward(c3);
    return [c1, c2, c3, c4];
  }

  /** The stride-4 head features (FPN top-down path, smoothing, head convolutions). */
  features(x: T.Tensor): T.Tensor {
    const cs = this.backbone(x);
    const lat = [...this.lateral];
    let p = lat[3]!.forward(cs[3]!);
    for (let i = 2; i >= 0; i--) {
      const l = lat[i]!.forward(cs[i]!);
      // Nearest upsampling to the lateral's exact size: odd sizes round up at each stride.
      p = T.add(l, T.interpolate(p, { size: [l.shape[2]!, l.shape[3]!], mode: 'nearest' }));
    }
    let h = T.relu(this.smooth.forward(p));
    for (const conv of this.head) h = T.relu(conv.forward(h));
    return h;
  }

  /**
   * Images [N, 3, H, W] with values in [0, 1] (RGB; ImageNet normalisation happens here) to part logits and
   * per-part U/V at stride 4, or at H x W with `upsample`.
   */
  forward(x: T.Tensor, options: DensePoseForwardOptions = {}): DensePoseOutput {
    if (x.rank !== 4 || x.shape[1] !== 3)
      throw new Error(`DensePoseHead: expected images [N, 3, H, W] in [0, 1], got ${T.formatShape(x.shape)}`);
    const [, , H, W] = x.shape as [number, number, number, number];
    if (H < DENSEPOSE_MIN_SIDE || W < DENSEPOSE_MIN_SIDE) {
      throw new Error(
        `DensePoseHead: input ${T.formatShape(x.shape)} is too small; H and W must be at least ${DENSEPOSE_MIN_SIDE} (layer 4 has stride 32)`,
      );
    }
    const mean = T.tensor(MEAN, [1, 3, 1, 1]);
    const std = T.tensor(STD, [1, 3, 1, 1]);
    const h = this.features(T.div(T.sub(x, mean), std));
    let I = this.index_uv.forward(h);
    let U = T.sigmoid(this.u.forward(h));
    let V = T.sigmoid(this.v.forward(h));
    if (options.upsample) {
      // Bilinear weights are convex, so the upsampled U/V stay in [0, 1].
      const up = (t: T.Tensor) => T.interpolate(t, { size: [H, W], mode: 'bilinear' });
      I = up(I);
      U = up(U);
      V = up(V);
    }
    return { I, U, V };
  }
}

/**
 * DensePose-COCO's part names by index (0 background; each body part has two charts, e.g. 7 and 9 for the
 * right upper leg; detectron2 pairs left/right as 3<->4, 5<->6, 7<->8, ..., 23<->24).
 */
export const DENSEPOSE_PART_NAMES: readonly string[] = [
  'background',
  'torso',
  'torso',
  'right_hand',
  'left_hand',
  'left_foot',
  'right_foot',
  'upper_leg_right',
  'upper_leg_left',
  'upper_leg_right',
  'upper_leg_left',
  'lower_leg_right',
  'lower_leg_left',
  'lower_leg_right',
  'lower_leg_left',
  'upper_arm_left',
  'upper_arm_right',
  'upper_arm_left',
  'upper_arm_right',
  'lower_arm_left',
  'lower_arm_right',
  'lower_arm_left',
  'lower_arm_right',
  'head',
  'head',
];
