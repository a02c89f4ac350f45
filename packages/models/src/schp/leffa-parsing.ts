import * as T from '@leffa-webgpu/core';
import type { OnnxGraph } from '../onnx/graph.js';
import { ATR_LABELS, LIP_LABELS } from './labels.js';
import { schpInput, schpOutput } from './infer.js';

/**
 * Leffa's human parsing (preprocess/humanparsing/parsing_api.py, `Parsing(atr_path, lip_path)`): the released
 * SCHP exports `parsing_atr.onnx` (512x512, 18 ATR classes) and `parsing_lip.onnx` (473x473, 20 LIP classes)
 * each run as SCHP's simple_extractor (aspect-preserving affine of the whole image to the input size, BGR,
 * ImageNet-normalised; the fused head's logits, output 1, upsampled with align_corners and warped back to the
 * image; argmax), then combined on the ATR labels:
 *
 * 1. upper clothes (4) and arms (14, 15) with the holes they enclose filled become upper clothes, except arms and
 *    enclosed holes larger than 2000 pixels, which keep their labels (hole_fill / refine_hole);
 * 2. ATR face (11) that LIP does not call face (13) becomes neck, label 18;
 * 3. the face mask is the remaining label 11.
 *
 * Differences from the official code: the warps interpolate in float (cv2 warps the uint8 image with
 * fixed-point weights and rounds), and the "larger than 2000" test of refine_hole counts the pixels of each
 * 8-connected hole (islands inside included), where cv2 measures contour polygons (for cv2 4.6, whose
 * findContours reads the int64 hole image as int32 labels, the area of a rectangular hole's surrounding contour
 * equals its pixel count); holes near 2000 pixels can be decided differently.
 */

export const LEFFA_NECK_LABEL = 18;

export interface LeffaParsingResult {
  height: number;
  width: number;
  /** ATR labels after the clothes hole filling, with neck = 18: the parse map of get_agnostic_mask_hd/_dc. */
  labels: Uint8Array;
  /** 1 where labels is face (11), else 0. */
  faceMask: Uint8Array;
  /** The raw ATR and LIP argmax maps. */
  atr: Uint8Array;
  lip: Uint8Array;
}

/** Pixels of `mask` (h x w, nonzero = in) reachable from (0, 0) through 4-connected zero pixels (cv2.floodFill). */
function outsideOf(mask: Uint8Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w);
  if (mask[0]) return out;
  const stack = [0];
  out[0] = 1;
  while (stack.length) {
    const i = stack.pop()!;
    const y = Math.floor(i / w);
    const x = i - y * w;
    const visit = (j: number) => {
      if (!out[j] && !mask[j]) {
        out[j] = 1;
        stack.push(j);
      }
    };
    if (x > 0) visit(i - 1);
    if (x < w - 1) visit(i + 1);
    if (y > 0) visit(i - w);
    if (y < h - 1) visit(i + w);
  }
  return out;
}

/** 8-connected components of `mask` with their islands; those with more than `minPixels` pixels. */
function largeRegions(mask: Uint8Array, h: number, w: number, minPixels: number): Uint8Array {
  const keep = new Uint8Array(h * w);
  const seen = new Uint8Array(h * w);
  for (let s = 0; s < h * w; s++) {
    if (!mask[s] || seen[s]) continue;
    const comp: number[] = [s];
    seen[s] = 1;
    let x0 = w,
      x1 = 0,
      y0 = h,
      y1 = 0;
    for (let k = 0; k < comp.length; k++) {
      const i = comp[k]!;
      const y = Math.floor(i / w);
      const x = i - y * w;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
          const j = yy * w + xx;
          if (mask[j] && !seen[j]) {
            seen[j] = 1;
            comp.push(j);
          }
        }
      }
    }
    // Islands: pixels of the bounding box (grown by one) not 4-connected to its border outside the component.
    const bw = x1 - x0 + 3;
    const bh = y1 - y0 + 3;
    const box = new Uint8Array(bw * bh);
    for (const i of comp) box[(Math.floor(i / w) - y0 + 1) * bw + (i % w) - x0 + 1] = 1;
    const outside = outsideOf(box, bh, bw);
    let filled = 0;
    for (let i = 0; i < bw * bh; i++) if (!outside[i]) filled++;
    if (filled <= minPixels) continue;
    for (let by = 1; by < bh - 1; by++) {
      for (let bx = 1; bx < bw - 1; bx++) if (!outside[by * bw + bx]) keep[(by - 1 + y0) * w + bx - 1 + x0] = 1;
    }
  }
  return keep;
}

/**
 * parsing_api.onnx_inference's combination of the ATR and LIP label maps (both h x w, row-major): hole filling
 * of the upper clothes, neck (18) from ATR face outside LIP face, and the face mask.
 */
export function combineLeffaParsing(
  atr: ArrayLike<number>,
  lip: ArrayLike<number>,
  height: number,
  width: number,
): { labels: Uint8Array; faceMask: Uint8Array } {
  const n = height * width;
  if (atr.length !== n || lip.length !== n)
    throw new Error(
      `combineLeffaParsing: expected ${n} labels (${height}x${width}), got ATR ${atr.length}, LIP ${lip.length}`,
    );
  // The official code pads one background pixel around the map.
  const h = height + 2;
  const w = width + 2;
  const p = new Uint8Array(h * w);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) p[(y + 1) * w + x + 1] = atr[y * width + x]!;
  const arm = p.map((v) => (v === 14 || v === 15 ? 1 : 0));
  const upper = p.map((v, i) => (v === 4 || arm[i] ? 1 : 0));
  const outside = outsideOf(upper, h, w);
  // Filled clothes: clothes, arms and the holes they enclose.
  const filled = outside.map((o) => (o ? 0 : 1));
  const holes = filled.map((f, i) => (f && p[i] !== 4 && !arm[i] ? 1 : 0));
  const large = largeRegions(holes, h, w, 2000);
  const labels = new Uint8Array(n);
  const faceMask = new Uint8Array(n);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y + 1) * w + x + 1;
      let v = large[i] || arm[i] ? p[i]! : filled[i] ? 4 : p[i]!;
      const o = y * width + x;
      if (v === 11 && lip[o] !== 13) v = LEFFA_NECK_LABEL;
      labels[o] = v;
      faceMask[o] = v === 11 ? 1 : 0;
    }
  }
  return { labels, faceMask };
}

/**
 * Leffa's `Parsing`: the ATR and LIP SCHP exports run by the ONNX executor. `parse(image)` takes an RGB image
 * [3, H, W] or [1, 3, H, W] in [0, 1].
 */
export class LeffaHumanParsing {
  constructor(
    readonly atr: OnnxGraph,
    readonly lip: OnnxGraph,
  ) {}

  async parse(image: T.Tensor): Promise<LeffaParsingResult> {
    const [height, width] = image.shape.slice(-2) as [number, number];
    const maps: Uint8Array[] = [];
    for (const [graph, set] of [
      [this.atr, ATR_LABELS],
      [this.lip, LIP_LABELS],
    ] as const) {
      // The export's fixed input size (512x512 ATR, 473x473 LIP for the released files), else the label set's.
      const shape = graph.info().inputs[0]?.shape;
      const fixed =
        shape?.length === 4 &&
        typeof shape[2] === 'number' &&
        typeof shape[3] === 'number' &&
        shape[2] > 0 &&
        shape[3] > 0;
      const inputSize: [number, number] = fixed ? [shape[2] as number, shape[3] as number] : set.inputSize;
      if (graph.inputNames.length !== 1 || graph.outputNames.length < 2) {
        throw new Error(
          `LeffaHumanParsing (${set.name}): expected an SCHP export with one input and the (parsing, fusion, edge) outputs, got inputs [${graph.inputNames.join(', ')}] and ${graph.outputNames.length} outputs`,
        );
      }
      // parsing_api.py: output[1], the fused head, upsampled to the input size and warped back (transform_logits).
      const x = schpInput(image, inputSize);
      let outs: Record<string, T.Tensor>;
      try {
        outs = await graph.runAsync({ [graph.inputNames[0]!]: x });
      } finally {
        x.dispose();
      }
      const fused = outs[graph.outputNames[1]!]!;
      try {
        if (fused.shape[1] !== set.labels.length) {
          throw new Error(
            `LeffaHumanParsing: the ${set.name.toUpperCase()} graph gave ${T.formatShape(fused.shape)}, not the ${set.labels.length} ${set.name.toUpperCase()} classes: is it parsing_${set.name}.onnx?`,
          );
        }
        const r = schpOutput(fused, image, inputSize, set.labels.length);
        maps.push(Uint8Array.from(await r.labels.intData()));
        T.dispose([r.logits, r.labels]);
      } finally {
        T.dispose(Object.values(outs));
      }
    }
    const [atr, lip] = maps as [Uint8Array, Uint8Array];
    return { height, width, atr, lip, ...combineLeffaParsing(atr, lip, height, width) };
  }

  dispose(): void {
    this.atr.dispose();
    this.lip.dispose();
  }
}
