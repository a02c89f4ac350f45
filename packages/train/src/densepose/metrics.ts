/**
 * DensePose metrics on held-out images with dense ground truth: part segmentation from a 25-class confusion
 * matrix (background + 24 parts; mIoU, pixel accuracy) and the UV error |u - u*| + |v - v*| averaged over
 * the pixels whose part is predicted correctly (foreground only), the usual "UV error on correct parts".
 */
import { DENSEPOSE_CLASSES, type DensePoseHead, type IuvResult, predictIuv } from '@leffa-webgpu/models';
import * as T from '@leffa-webgpu/core';
import { ConfusionMatrix, type ParsingMetrics } from '../schp/metrics.js';
import { type DensePoseExample, densePoseInput } from './trainer.js';

export interface DensePoseMetrics extends ParsingMetrics {
  /** Mean of |u - u*| + |v - v*| over correctly labelled foreground pixels (NaN when there are none). */
  uvError: number;
  /** Those pixels. */
  uvPixels: number;
}

/** Accumulates the metrics over map pairs (truth: the example's parts / u / v). */
export class DensePoseScore {
  readonly confusion = new ConfusionMatrix(DENSEPOSE_CLASSES, 255);
  private uvSum = 0;
  private uvCount = 0;

  add(
    pred: { parts: ArrayLike<number>; u: ArrayLike<number>; v: ArrayLike<number> },
    truth: { parts: ArrayLike<number>; u: ArrayLike<number>; v: ArrayLike<number> },
  ): this {
    const n = truth.parts.length;
    if (
      pred.parts.length !== n ||
      pred.u.length !== n ||
      pred.v.length !== n ||
      truth.u.length !== n ||
      truth.v.length !== n
    ) {
      throw new Error(
        `DensePoseScore.add: maps differ in size (predicted parts/u/v ${pred.parts.length}/${pred.u.length}/${pred.v.length}, truth ${n}/${truth.u.length}/${truth.v.length})`,
      );
    }
    this.confusion.add(pred.parts, truth.parts);
    for (let i = 0; i < n; i++) {
      const t = truth.parts[i]!;
      if (t === 0 || pred.parts[i] !== t) continue;
      this.uvSum += Math.abs(pred.u[i]! - truth.u[i]!) + Math.abs(pred.v[i]! - truth.v[i]!);
      this.uvCount++;
    }
    return this;
  }

  metrics(): DensePoseMetrics {
    return {
      ...this.confusion.metrics(),
      uvError: this.uvCount ? this.uvSum / this.uvCount : NaN,
      uvPixels: this.uvCount,
    };
  }
}

/** Predictions (eval mode, at the examples' own size) and metrics of a model on held-out examples. */
export async function evaluateDensePose(
  model: DensePoseHead,
  examples: DensePoseExample[],
): Promise<{ metrics: DensePoseMetrics; predictions: IuvResult[] }> {
  const wasTraining = model.training;
  model.eval();
  const score = new DensePoseScore();
  const predictions: IuvResult[] = [];
  try {
    for (const e of examples) {
      const x = T.tensor(densePoseInput([e.image], e.height, e.width), [3, e.height, e.width]);
      const p = await predictIuv(model, x);
      x.dispose();
      predictions.push(p);
      score.add(p, e);
    }
  } finally {
    model.train(wasTraining);
  }
  return { metrics: score.metrics(), predictions };
}
