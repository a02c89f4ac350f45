/**
 * Human-parsing metrics from a confusion matrix, as SCHP's evaluate.py (compute_mean_ioU): pixel accuracy,
 * mean class accuracy and IoU per class, over the pixels whose truth is not ignored.
 */
import * as T from '@leffa-webgpu/core';
import type { SCHPNetwork } from '@leffa-webgpu/models';
import { type ParsingExample, parsingInput } from './trainer.js';

export interface ParsingMetrics {
  /** Correct pixels / counted pixels. */
  pixelAccuracy: number;
  /** Mean over classes present in the truth of (correct / truth pixels). */
  meanAccuracy: number;
  /** Mean IoU over the classes that occur (in truth or prediction); the meaningful number on synthetic data. */
  meanIoU: number;
  /** evaluate.py's mean over all classes (absent ones count 0, so it is capped by the classes that occur). */
  meanIoUAll: number;
  /** IoU per class; NaN for classes absent from both truth and prediction. */
  iou: number[];
  pixels: number;
}

/** A numClasses x numClasses confusion matrix (rows truth, columns prediction). */
export class ConfusionMatrix {
  readonly counts: Float64Array;

  constructor(
    readonly numClasses = 20,
    readonly ignoreIndex = 255,
  ) {
    this.counts = new Float64Array(numClasses * numClasses);
  }

  /** Adds one label map pair (same length); ignored truth pixels are skipped. */
  add(predicted: ArrayLike<number>, truth: ArrayLike<number>): this {
    if (predicted.length !== truth.length)
      throw new Error(`ConfusionMatrix.add: ${predicted.length} predicted labels for ${truth.length} truth labels`);
    const C = this.numClasses;
    for (let i = 0; i < truth.length; i++) {
      const t = truth[i]!;
      if (t === this.ignoreIndex) continue;
      const p = predicted[i]!;
      if (t < 0 || t >= C || p < 0 || p >= C)
        throw new Error(`ConfusionMatrix.add: label ${t < 0 || t >= C ? t : p} at pixel ${i} is outside 0..${C - 1}`);
      this.counts[t * C + p]!++;
    }
    return this;
  }

  metrics(): ParsingMetrics {
    const C = this.numClasses;
    let tpAll = 0;
    let total = 0;
    const iou: number[] = [];
    let accSum = 0;
    let accN = 0;
    for (let c = 0; c < C; c++) {
      let pos = 0; // truth pixels of c
      let res = 0; // predicted pixels of c
      for (let k = 0; k < C; k++) {
        pos += this.counts[c * C + k]!;
        res += this.counts[k * C + c]!;
      }
      const tp = this.counts[c * C + c]!;
      tpAll += tp;
      total += pos;
      const union = pos + res - tp;
      iou.push(union > 0 ? tp / union : NaN);
      if (pos > 0) {
        accSum += tp / pos;
        accN++;
      }
    }
    const present = iou.filter((v) => !Number.isNaN(v));
    return {
      pixelAccuracy: total ? tpAll / total : NaN,
      meanAccuracy: accN ? accSum / accN : NaN,
      meanIoU: present.length ? present.reduce((a, b) => a + b, 0) / present.length : NaN,
      meanIoUAll: iou.reduce((a, v) => a + (Number.isNaN(v) ? 0 : v), 0) / C,
      iou,
      pixels: total,
    };
  }
}

/**
 * Parsing of same-size examples with the raw forward at their own size (the training size, no person-box
 * warp): fused logits upsampled bilinearly (align_corners) to the image and argmax. Runs in eval mode and
 * restores the model's mode. Returns one label map per example.
 */
export async function predictParsing(model: SCHPNetwork, examples: ParsingExample[], batch = 4): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  if (examples.length === 0) return out;
  const { height: H, width: W } = examples[0]!;
  if (examples.some((e) => e.height !== H || e.width !== W))
    throw new Error(`predictParsing: every example must be ${H}x${W}`);
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < examples.length; i += batch) {
      const chunk = examples.slice(i, i + batch);
      const labels = T.noGrad(() =>
        T.tidy(() => {
          const x = T.tensor(
            parsingInput(
              chunk.map((e) => e.image),
              H,
              W,
            ),
            [chunk.length, 3, H, W],
          );
          const fusion = model.forward(x)[0][1];
          return T.argmax(T.interpolate(fusion, { size: [H, W], mode: 'bilinear', alignCorners: true }), 1);
        }),
      );
      const data = await labels.intData();
      labels.dispose();
      chunk.forEach((_, b) => out.push(Uint8Array.from(data.subarray(b * H * W, (b + 1) * H * W))));
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/** mIoU, pixel accuracy, ... of a model on held-out examples (their labels as truth), and its predictions. */
export async function evaluateParsing(
  model: SCHPNetwork,
  examples: ParsingExample[],
  batch = 4,
): Promise<{ metrics: ParsingMetrics; predictions: Uint8Array[] }> {
  const predictions = await predictParsing(model, examples, batch);
  const cm = new ConfusionMatrix(model.config.numClasses);
  predictions.forEach((p, i) => cm.add(p, examples[i]!.labels));
  return { metrics: cm.metrics(), predictions };
}
