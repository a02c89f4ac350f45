import * as T from '@leffa-webgpu/core';
import type { ChartOutputs } from './chart-head.js';
import { parulaBgr } from './parula.js';

/**
 * From the chart outputs to the images Leffa feeds its model (leffa_utils/densepose_predictor.py), step by step
 * as the code it runs: detectron2's detector_postprocess (boxes scaled back to the input image, clipped, empty
 * ones dropped), DensePose's ToChartResultConverter (outputs resampled to the integer box: labels = argmax of the
 * bilinearly resized fine segmentation where the coarse one says foreground, U and V read from each pixel's
 * part), then Leffa's `predict_iuv` and `predict_seg` (DensePoseResultsFineSegmentationVisualizer).
 */

/** One detected person: box and score in the input image, and the chart result over its integer box. */
export interface DensePoseInstance {
  /** x1, y1, x2, y2 in the input image's pixels (float32). */
  box: Float32Array;
  score: number;
  /** make_int_box of the box as x, y, w, h: each truncated. */
  intBox: [x: number, y: number, w: number, h: number];
  /** Height and width of the result: max(h, 1), max(w, 1). */
  height: number;
  width: number;
  /** Part index per pixel, 0 (background) .. 24, row-major. */
  labels: Uint8Array;
  /** U then V per pixel ([2, height, width]), 0 on the background. */
  uv: Float32Array;
}

/**
 * detector_postprocess: boxes from the resized image (`from` [h, w]) to the input image (`to` [H, W]) by
 * float32 multiplication, clipped to it; returns the kept boxes' indices (positive width and height).
 */
export function boxesToImage(
  boxes: Float32Array,
  from: [number, number],
  to: [number, number],
): { boxes: Float32Array; keep: number[] } {
  const sx = Math.fround(to[1] / from[1]);
  const sy = Math.fround(to[0] / from[0]);
  const out = new Float32Array(boxes.length);
  const keep: number[] = [];
  for (let i = 0; i < boxes.length / 4; i++) {
    for (let c = 0; c < 4; c++) {
      const v = Math.fround(boxes[4 * i + c]! * (c % 2 === 0 ? sx : sy));
      out[4 * i + c] = Math.min(Math.max(v, 0), c % 2 === 0 ? to[1] : to[0]);
    }
    if (out[4 * i + 2]! - out[4 * i]! > 0 && out[4 * i + 3]! - out[4 * i + 1]! > 0) keep.push(i);
  }
  return { boxes: out, keep };
}

/** BoxMode XYXY -> XYWH in float32, then make_int_box's truncation. */
export function intBox(box: ArrayLike<number>): [number, number, number, number] {
  return [
    Math.trunc(box[0]!),
    Math.trunc(box[1]!),
    Math.trunc(Math.fround(box[2]! - box[0]!)),
    Math.trunc(Math.fround(box[3]! - box[1]!)),
  ];
}

/**
 * densepose_chart_predictor_output_to_result for output `i` of `charts` and its box in the input image: the
 * outputs resized bilinearly (no corner alignment) to the integer box, fine-segmentation argmax masked by the
 * coarse one, U and V of each pixel's part.
 */
export async function chartResult(
  charts: ChartOutputs,
  i: number,
  box: Float32Array,
  score: number,
): Promise<DensePoseInstance> {
  const ib = intBox(box);
  const height = Math.max(ib[3], 1);
  const width = Math.max(ib[2], 1);
  const resized = (t: T.Tensor) => {
    const one = T.narrow(t, 0, i, 1);
    const r = T.interpolate(one, { size: [height, width], mode: 'bilinear', alignCorners: false });
    one.dispose();
    return r;
  };
  const argmaxOf = async (t: T.Tensor) => {
    const r = resized(t);
    const a = T.argmax(r, 1);
    r.dispose();
    const host = await a.data();
    a.dispose();
    return host;
  };
  const fine = await argmaxOf(charts.fineSegm);
  const coarse = await argmaxOf(charts.coarseSegm);
  const n = height * width;
  const labels = new Uint8Array(n);
  const index = new Int32Array(n);
  for (let p = 0; p < n; p++) index[p] = labels[p] = coarse[p]! > 0 ? fine[p]! : 0;
  const idx = T.tensor(index, [1, 1, height, width], 'int32');
  const uv = new Float32Array(2 * n);
  for (const [c, t] of [charts.u, charts.v].entries()) {
    const r = resized(t);
    const g = T.gather(r, 1, idx);
    const host = await g.data();
    T.dispose([r, g]);
    for (let p = 0; p < n; p++) uv[c * n + p] = labels[p]! > 0 ? host[p]! : 0;
  }
  idx.dispose();
  return { box, score, intBox: ib, height, width, labels, uv };
}

function noPerson(op: string, height: number, width: number): Error {
  return new Error(
    `${op}: DensePose R-CNN found no person with a score above the threshold (0.5) in the ${height}x${width} image; ` +
      'the image needs a visible person (with the released weights, model_final_162be9.pkl)',
  );
}

/**
 * Leffa's `predict_iuv`: the first (highest-scoring) person's labels and U, V (min-max normalised over the
 * whole [2, h, w] UV array, times 255) pasted into a zero image of the input's size at the integer box,
 * channels in Leffa's order [I, V, U]; [height, width, 3] uint8 (float values truncated as numpy casts).
 */
export function renderIUV(instances: readonly DensePoseInstance[], height: number, width: number): Uint8Array {
  const first = instances[0];
  if (!first) throw noPerson('predict_iuv', height, width);
  const out = new Uint8Array(height * width * 3);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of first.uv) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const range = Math.fround(hi - lo);
  // float32 as PyTorch computes (uv - min) / (max - min) * 255; a constant UV array is 0/0, written as 0.
  const scaled = (v: number) =>
    range > 0 ? Math.trunc(Math.fround(Math.fround(Math.fround(v - lo) / range) * 255)) : 0;
  const [x1, y1] = first.intBox;
  const n = first.height * first.width;
  // Rows and columns of the box inside the image (numpy's slice x1:x1 + w clips to the image).
  const rows = Math.min(first.intBox[3], height - y1);
  const cols = Math.min(first.intBox[2], width - x1);
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const p = y * first.width + x;
      const o = ((y1 + y) * width + x1 + x) * 3;
      out[o] = first.labels[p]!;
      out[o + 1] = scaled(first.uv[n + p]!);
      out[o + 2] = scaled(first.uv[p]!);
    }
  }
  return out;
}

/**
 * Leffa's `predict_seg`: DensePoseResultsFineSegmentationVisualizer on a zero image, [height, width, 3] uint8
 * in OpenCV's BGR order. Part index I is painted as PARULA(trunc(I * 255 / 24)) and the background stays 0.
 * Leffa's visualiser (inplace=False) clears the whole image before drawing each person, so only the last
 * (lowest-scoring) detection remains, as here.
 */
export function renderSeg(instances: readonly DensePoseInstance[], height: number, width: number): Uint8Array {
  const last = instances[instances.length - 1];
  if (!last) throw noPerson('predict_seg', height, width);
  const out = new Uint8Array(height * width * 3);
  const [x1, y1, w, h] = last.intBox;
  if (w <= 0 || h <= 0) return out;
  const scale = Math.fround(255 / 24);
  const rows = Math.min(h, height - y1);
  const cols = Math.min(w, width - x1);
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const label = last.labels[y * last.width + x]!;
      if (label === 0) continue;
      const o = ((y1 + y) * width + x1 + x) * 3;
      out.set(parulaBgr(Math.min(Math.fround(label * scale), 255)), o);
    }
  }
  return out;
}

/** Which densepose image Leffa's app.py builds (`vt_model_type` for try-on, or pose transfer). */
export type LeffaDensePoseKind = 'viton_hd' | 'dress_code' | 'pose_transfer';

/**
 * The densepose condition image as Leffa's app.py makes it from the two predictor outputs, RGB
 * [height, width, 3]: VITON-HD takes predict_seg with its channels reversed, DressCode predict_iuv's I channel
 * three times, pose transfer predict_iuv with its channels reversed ([U, V, I]).
 */
export function leffaDensePoseImage(
  instances: readonly DensePoseInstance[],
  height: number,
  width: number,
  kind: LeffaDensePoseKind,
): Uint8Array {
  const src = kind === 'viton_hd' ? renderSeg(instances, height, width) : renderIUV(instances, height, width);
  const out = new Uint8Array(src.length);
  for (let p = 0; p < src.length; p += 3) {
    if (kind === 'dress_code') out.fill(src[p]!, p, p + 3);
    else out.set([src[p + 2]!, src[p + 1]!, src[p]!], p);
  }
  return out;
}
