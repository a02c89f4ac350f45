import * as T from '@leffa-webgpu/core';
import type { FPNFeatures } from './backbone.js';
import { BoxROIHeads, DENSEPOSE_RCNN_R50_FPN, type RCNNConfig, RCNNDetector, poolBoxes } from './rcnn.js';

/**
 * DensePose's chart branch (detectron2 projects/DensePose: modeling/roi_heads/{roi_head,v1convx}.py and
 * modeling/predictors/chart.py) as Base-DensePose-RCNN-FPN.yaml configures it: the `densepose_pooler`
 * (ROI_DENSEPOSE_HEAD.POOLER_TYPE "ROIAlign", i.e. not aligned, overriding the project's "ROIAlignV2" default;
 * 28x28, sampling ratio 2, the box pooler's FPN levels), DensePoseV1ConvXHead (8 stacked 3x3 convs of 512 with
 * ReLU, keys `body_conv_fcn1..8`) and DensePoseChartPredictor (four stride-2 4x4 transposed convs:
 * `ann_index_lowres` coarse segmentation (2), `index_uv_lowres` fine segmentation I (24 parts + background),
 * `u_lowres`, `v_lowres`, each upsampled 2x bilinearly without corner alignment: 28 -> 56 -> 112).
 */
export interface DensePoseHeadConfig {
  /** ROI_DENSEPOSE_HEAD.NUM_STACKED_CONVS, CONV_HEAD_DIM, CONV_HEAD_KERNEL. */
  convs: number;
  hidden: number;
  kernel: number;
  /** NUM_PATCHES (24: the fine-segmentation and U/V channels are patches + 1). */
  patches: number;
  /** NUM_COARSE_SEGM_CHANNELS. */
  coarseChannels: number;
  /** DECONV_KERNEL and UP_SCALE. */
  deconvKernel: number;
  upScale: number;
  /** POOLER_RESOLUTION, POOLER_SAMPLING_RATIO; POOLER_TYPE 'ROIAlignV2' is aligned. */
  poolerResolution: number;
  samplingRatio: number;
  aligned: boolean;
}

export const DENSEPOSE_CHART_HEAD: DensePoseHeadConfig = {
  convs: 8,
  hidden: 512,
  kernel: 3,
  patches: 24,
  coarseChannels: 2,
  deconvKernel: 4,
  upScale: 2,
  poolerResolution: 28,
  samplingRatio: 2,
  aligned: false,
};

/** The whole of densepose_rcnn_R_50_FPN_s1x: detector and chart head. */
export interface DensePoseRCNNConfig {
  detector: RCNNConfig;
  head: DensePoseHeadConfig;
}

export const DENSEPOSE_RCNN_R50_FPN_S1X: DensePoseRCNNConfig = {
  detector: DENSEPOSE_RCNN_R50_FPN,
  head: DENSEPOSE_CHART_HEAD,
};

/** DensePoseV1ConvXHead: `body_conv_fcn{i}` convs (kernel // 2 padding), each followed by ReLU. */
export class DensePoseV1ConvXHead extends T.Module implements T.nn.TensorModule {
  readonly convs: T.nn.Conv2d[];
  constructor(
    inChannels: number,
    readonly config: DensePoseHeadConfig,
  ) {
    super();
    this.convs = Array.from({ length: config.convs }, (_, i) =>
      this.addModule(
        `body_conv_fcn${i + 1}`,
        new T.nn.Conv2d(i === 0 ? inChannels : config.hidden, config.hidden, config.kernel, {
          padding: config.kernel >> 1,
        }),
      ),
    );
  }

  forward(x: T.Tensor): T.Tensor {
    for (const conv of this.convs) x = T.relu(conv.forward(x));
    return x;
  }
}

/** DensePoseChartPredictorOutput: [K, 2, S, S] coarse, [K, 25, S, S] fine, U and V (S = 4 x pooler resolution). */
export interface ChartOutputs {
  coarseSegm: T.Tensor;
  fineSegm: T.Tensor;
  u: T.Tensor;
  v: T.Tensor;
}

/** DensePoseChartPredictor: transposed convs then bilinear upsampling by UP_SCALE. */
export class DensePoseChartPredictor extends T.Module {
  readonly ann_index_lowres: T.nn.ConvTranspose2d;
  readonly index_uv_lowres: T.nn.ConvTranspose2d;
  readonly u_lowres: T.nn.ConvTranspose2d;
  readonly v_lowres: T.nn.ConvTranspose2d;

  constructor(
    inChannels: number,
    readonly config: DensePoseHeadConfig,
  ) {
    super();
    const k = config.deconvKernel;
    const deconv = (out: number) =>
      new T.nn.ConvTranspose2d(inChannels, out, k, { stride: 2, padding: Math.trunc(k / 2 - 1) });
    this.ann_index_lowres = this.addModule('ann_index_lowres', deconv(config.coarseChannels));
    this.index_uv_lowres = this.addModule('index_uv_lowres', deconv(config.patches + 1));
    this.u_lowres = this.addModule('u_lowres', deconv(config.patches + 1));
    this.v_lowres = this.addModule('v_lowres', deconv(config.patches + 1));
  }

  forward(x: T.Tensor): ChartOutputs {
    const up = (m: T.nn.ConvTranspose2d) =>
      T.tidy(() =>
        T.interpolate(m.forward(x), { scaleFactor: this.config.upScale, mode: 'bilinear', alignCorners: false }),
      );
    return {
      coarseSegm: up(this.ann_index_lowres),
      fineSegm: up(this.index_uv_lowres),
      u: up(this.u_lowres),
      v: up(this.v_lowres),
    };
  }
}

/** DensePoseROIHeads: the box path plus `densepose_head` and `densepose_predictor` on the detected boxes. */
export class DensePoseROIHeads extends BoxROIHeads {
  readonly densepose_head: DensePoseV1ConvXHead;
  readonly densepose_predictor: DensePoseChartPredictor;

  constructor(
    config: RCNNConfig,
    readonly head: DensePoseHeadConfig,
  ) {
    super(config);
    this.densepose_head = this.addModule('densepose_head', new DensePoseV1ConvXHead(config.backbone.fpnOut, head));
    this.densepose_predictor = this.addModule('densepose_predictor', new DensePoseChartPredictor(head.hidden, head));
  }

  /** The chart outputs of `boxes` (x1, y1, x2, y2 in the resized input's pixels); null for no box, as detectron2. */
  densepose(feats: FPNFeatures, boxes: Float32Array): ChartOutputs | null {
    if (boxes.length === 0) return null;
    const h = this.head;
    return T.tidy(() =>
      this.densepose_predictor.forward(
        this.densepose_head.forward(poolBoxes(feats, boxes, h.poolerResolution, h.samplingRatio, h.aligned)),
      ),
    );
  }
}

/** GeneralizedRCNN with DensePoseROIHeads: detectron2's keys for the whole released checkpoint. */
export class DensePoseRCNN extends RCNNDetector {
  declare readonly roi_heads: DensePoseROIHeads;

  constructor(readonly full: DensePoseRCNNConfig = DENSEPOSE_RCNN_R50_FPN_S1X) {
    super(full.detector, new DensePoseROIHeads(full.detector, full.head));
  }

  /**
   * Detection then the chart branch on one BGR image [1, 3, h, w] in 0..255 already resized (see
   * `RCNNDetector.detect`); boxes in the resized image's pixels.
   */
  async inferResized(
    image: T.Tensor,
  ): Promise<{ boxes: Float32Array; scores: Float32Array; charts: ChartOutputs | null }> {
    const { features, rpn, boxes } = await this.detect(image);
    const det = boxes.detections;
    const charts = this.roi_heads.densepose(features, det.boxes);
    T.dispose([...Object.values(features), ...rpn.logits, ...rpn.deltas, boxes.clsLogits, boxes.bboxDeltas]);
    return { boxes: det.boxes, scores: det.scores, charts };
  }
}
