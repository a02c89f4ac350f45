import * as T from '@leffa-webgpu/core';
import { DENSEPOSE_RCNN_R50_FPN_S1X, DensePoseRCNN, type DensePoseRCNNConfig } from './chart-head.js';
import {
  type DensePoseInstance,
  type LeffaDensePoseKind,
  boxesToImage,
  chartResult,
  leffaDensePoseImage,
  renderIUV,
  renderSeg,
} from './leffa-outputs.js';
import { RCNNDetector } from './rcnn.js';
import { DETECTRON2_TEST_RESIZE, pilResizeBilinear, shortestEdgeSize } from './resize.js';

/**
 * The released DensePose R-CNN (`densepose_rcnn_R_50_FPN_s1x`, `model_final_162be9.pkl`) as Leffa's
 * DensePosePredictor runs it: the checkpoint read with the restricted unpickler and checked against the
 * model's detectron2 key set, DefaultPredictor's resize, the detector and chart head, and Leffa's
 * `predict_iuv` / `predict_seg` images.
 */

/** An interleaved 3-channel uint8 image, row-major [height, width, 3]. */
export interface DensePoseImage {
  data: Uint8Array;
  height: number;
  width: number;
}

/**
 * Keys a detectron2 checkpoint may hold beyond the model's parameters (buffers older detectron2 versions
 * saved): the pixel statistics, checked against the config's, and the anchor generator's cell anchors, which
 * the model computes from the config.
 */
const PIXEL_STATS = /^pixel_(mean|std)$/;
const CELL_ANCHORS = /^proposal_generator\.anchor_generator\.cell_anchors\.\d+$/;

/**
 * Checks a detectron2 state dict (from `T.readPkl`) against `model`'s keys and shapes: refuses Caffe2 blob
 * names (Detectron's `{'blobs': ...}` files), missing, unknown and wrong-shaped keys, and pixel statistics other
 * than the config's; returns the dict without the ignorable extras.
 */
export function checkReleasedDensePose(
  weights: Map<string, T.HostTensor>,
  model: DensePoseRCNN,
  source: string,
): Map<string, T.HostTensor> {
  const blobs = [...weights.keys()].filter((k) => k.startsWith('blobs.'));
  if (blobs.length) {
    throw new Error(
      `${source}: a Detectron (Caffe2) blob dict ('${blobs[0]}', ...), such as the ImageNet R-50.pkl initialisation or a Detectron1 model, ` +
        'not a trained detectron2 DensePose R-CNN; expected model_final_162be9.pkl (densepose_rcnn_R_50_FPN_s1x)',
    );
  }
  const kept = new Map<string, T.HostTensor>();
  for (const [k, v] of weights) {
    if (CELL_ANCHORS.test(k)) continue;
    const m = PIXEL_STATS.exec(k);
    if (m) {
      const want = m[1] === 'mean' ? RCNNDetector.PIXEL_MEAN : [1, 1, 1];
      if (v.data.length !== 3 || [...v.data].some((x, i) => Math.abs(x - want[i]!) > 1e-3)) {
        throw new Error(
          `${source}: ${k} is [${[...v.data].join(', ')}], but this model normalises with [${want.join(', ')}] (cfg.MODEL.PIXEL_${m[1]!.toUpperCase()})`,
        );
      }
      continue;
    }
    kept.set(k, v);
  }
  const report = model.checkStateDict(new Map([...kept].map(([k, v]) => [k, v.shape])));
  const problems = [
    ...report.mismatched.map(
      (m) => `shape of ${m.key}: expected ${T.formatShape(m.expected)}, got ${T.formatShape(m.got)}`,
    ),
    ...report.missing.map((k) => `missing ${k}`),
    ...report.unexpected.map((k) => `unexpected ${k}`),
  ];
  if (problems.length) {
    throw new Error(
      `${source}: not the densepose_rcnn_R_50_FPN_s1x checkpoint (model_final_162be9.pkl): ${problems.length} problem(s):\n  ` +
        `${problems.slice(0, 12).join('\n  ')}${problems.length > 12 ? `\n  ... and ${problems.length - 12} more` : ''}`,
    );
  }
  return kept;
}

export interface DensePosePredictorOptions {
  /** The model's shape (the released model's by default; narrower ones for tests). */
  config?: DensePoseRCNNConfig;
  /** cfg.INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST. */
  resize?: { shortEdge: number; maxSize: number };
}

/**
 * Leffa's DensePosePredictor: `predict` (DefaultPredictor + DensePoseResultExtractor), `predictIUV` and
 * `predictSeg`. Images are handed over as DefaultPredictor receives them: its config reads them as BGR, and
 * Leffa's app passes its RGB arrays unchanged, so pass the RGB image as is to reproduce Leffa.
 */
export class DensePosePredictor {
  readonly resize: { shortEdge: number; maxSize: number };
  constructor(
    readonly model: DensePoseRCNN,
    options: DensePosePredictorOptions = {},
  ) {
    this.resize = options.resize ?? DETECTRON2_TEST_RESIZE;
  }

  /** The detected people (score > 0.5, by descending score) with their chart results in the image's pixels. */
  predict(image: DensePoseImage): Promise<DensePoseInstance[]> {
    return T.noGrad(() => this.run(image));
  }

  private async run(image: DensePoseImage): Promise<DensePoseInstance[]> {
    const { data, height: H, width: W } = image;
    if (!(H >= 1 && W >= 1) || data.length !== H * W * 3) {
      throw new Error(
        `DensePosePredictor: expected a ${H}x${W}x3 uint8 image (${H * W * 3} bytes), got ${data.length} bytes`,
      );
    }
    const [h, w] = shortestEdgeSize(H, W, this.resize.shortEdge, this.resize.maxSize);
    const resized = pilResizeBilinear(data, H, W, 3, h, w);
    const planar = new Float32Array(3 * h * w);
    for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) planar[c * h * w + p] = resized[3 * p + c]!;
    const x = T.tensor(planar, [1, 3, h, w]);
    const out = await this.model.inferResized(x);
    x.dispose();
    const { boxes, keep } = boxesToImage(out.boxes, [h, w], [H, W]);
    const instances: DensePoseInstance[] = [];
    for (const i of keep)
      instances.push(await chartResult(out.charts!, i, boxes.slice(4 * i, 4 * i + 4), out.scores[i]!));
    if (out.charts) T.dispose(Object.values(out.charts));
    return instances;
  }

  /** Leffa's predict_iuv: [H, W, 3] uint8, channels [I, V, U], the best person in its box. */
  async predictIUV(image: DensePoseImage): Promise<Uint8Array> {
    return renderIUV(await this.predict(image), image.height, image.width);
  }

  /** Leffa's predict_seg: [H, W, 3] uint8, the fine segmentation painted with PARULA in BGR order. */
  async predictSeg(image: DensePoseImage): Promise<Uint8Array> {
    return renderSeg(await this.predict(image), image.height, image.width);
  }

  /** The RGB densepose condition image Leffa's app.py builds for `kind` (see leffaDensePoseImage). */
  async leffaDensePose(image: DensePoseImage, kind: LeffaDensePoseKind): Promise<Uint8Array> {
    return leffaDensePoseImage(await this.predict(image), image.height, image.width, kind);
  }
}

/**
 * Loads the released `model_final_162be9.pkl` (a path on Node, or its bytes): a pickle of numpy arrays,
 * `{'model': {name: ndarray}, ...}` or the bare dict, read without executing anything and checked key by key
 * (see checkReleasedDensePose). Returns the predictor Leffa's preprocessing uses.
 */
export async function loadReleasedDensePose(
  pathOrBytes: string | Uint8Array,
  options: DensePosePredictorOptions = {},
): Promise<DensePosePredictor> {
  const source = typeof pathOrBytes === 'string' ? pathOrBytes : 'model_final_162be9.pkl (bytes)';
  const bytes = typeof pathOrBytes === 'string' ? await T.readFileBytes(pathOrBytes) : pathOrBytes;
  const host = T.readPkl(bytes, source);
  const model = T.nn.withoutInit(() => new DensePoseRCNN(options.config ?? DENSEPOSE_RCNN_R50_FPN_S1X));
  const weights = checkReleasedDensePose(host, model, source);
  model.loadStateDict(T.toDevice(weights));
  return new DensePosePredictor(model.eval(), options);
}
