/**
 * Geometric augmentation for pose and parsing training: a random rotation, scale and horizontal flip applied
 * to an image (bilinear), to label maps (nearest) and to keypoints alike. Flips swap left/right parts and
 * labels, so that "left" keeps meaning the person's left.
 */
import type { Rng } from './synthetic/rng.js';

export interface Affine {
  /** Maps output pixel centres to input coordinates: x' = a x + b y + c, y' = d x + e y + f. */
  inverse: [number, number, number, number, number, number];
  flip: boolean;
}

export interface AugmentOptions {
  maxRotation?: number;
  scale?: [number, number];
  flip?: boolean;
}

/** A random similarity transform about the image centre (and a flip with probability 1/2). */
export function randomAffine(rng: Rng, width: number, height: number, options: AugmentOptions = {}): Affine {
  const rot = ((options.maxRotation ?? 20) * Math.PI) / 180;
  const angle = rng.uniform(-rot, rot);
  const [lo, hi] = options.scale ?? [0.85, 1.15];
  const s = rng.uniform(lo, hi);
  const flip = (options.flip ?? true) && rng.chance(0.5);
  const cx = width / 2;
  const cy = height / 2;
  // Forward: p' = R S F (p - c) + c; inverse: p = F R^-1 (p' - c) / s + c.
  const cos = Math.cos(angle) / s;
  const sin = Math.sin(angle) / s;
  const fx = flip ? -1 : 1;
  const a = fx * cos;
  const b = fx * sin;
  const d = -sin;
  const e = cos;
  return { inverse: [a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy], flip };
}

function invertAffine(m: Affine['inverse']): Affine['inverse'] {
  const [a, b, c, d, e, f] = m;
  const det = a * e - b * d;
  return [e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det];
}

/** Warps an HWC RGB image (bilinear, outside filled with `fill`). */
export function warpImage(img: Uint8Array, width: number, height: number, t: Affine, fill = 0): Uint8Array {
  const out = new Uint8Array(img.length).fill(fill);
  const [a, b, c, d, e, f] = t.inverse;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = a * (x + 0.5) + b * (y + 0.5) + c - 0.5;
      const sy = d * (x + 0.5) + e * (y + 0.5) + f - 0.5;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      if (x0 < -1 || y0 < -1 || x0 >= width || y0 >= height) continue;
      const fx = sx - x0;
      const fy = sy - y0;
      for (let ch = 0; ch < 3; ch++) {
        const at = (xx: number, yy: number) =>
          xx < 0 || yy < 0 || xx >= width || yy >= height ? fill : img[3 * (yy * width + xx) + ch]!;
        const v =
          (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) +
          (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy;
        out[3 * (y * width + x) + ch] = Math.round(v);
      }
    }
  }
  return out;
}

/** Warps a label map (nearest; outside is `fill`) and swaps left/right labels when the transform flips. */
export function warpLabels(
  labels: Uint8Array,
  width: number,
  height: number,
  t: Affine,
  swap: readonly [number, number][] = [],
  fill = 0,
): Uint8Array {
  const out = new Uint8Array(labels.length).fill(fill);
  const map = new Map<number, number>();
  if (t.flip) for (const [l, r] of swap) map.set(l, r).set(r, l);
  const [a, b, c, d, e, f] = t.inverse;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = Math.floor(a * (x + 0.5) + b * (y + 0.5) + c);
      const sy = Math.floor(d * (x + 0.5) + e * (y + 0.5) + f);
      if (sx < 0 || sy < 0 || sx >= width || sy >= height) continue;
      const l = labels[sy * width + sx]!;
      out[y * width + x] = map.get(l) ?? l;
    }
  }
  return out;
}

/** COCO-18 left/right pairs (OpenPose order). */
export const COCO18_FLIP: readonly [number, number][] = [
  [2, 5],
  [3, 6],
  [4, 7],
  [8, 11],
  [9, 12],
  [10, 13],
  [14, 15],
  [16, 17],
];

/** Transforms keypoints (pixel coordinates) and swaps left/right parts when the transform flips. */
export function warpKeypoints<K extends { x: number; y: number; visible: boolean }>(
  keypoints: K[],
  width: number,
  height: number,
  t: Affine,
  pairs = COCO18_FLIP,
): K[] {
  const [a, b, c, d, e, f] = invertAffine(t.inverse);
  const moved = keypoints.map((k) => {
    const x = a * k.x + b * k.y + c;
    const y = d * k.x + e * k.y + f;
    return { ...k, x, y, visible: k.visible && x >= 0 && y >= 0 && x < width && y < height };
  });
  if (t.flip) for (const [l, r] of pairs) [moved[l], moved[r]] = [moved[r]!, moved[l]!];
  return moved;
}
