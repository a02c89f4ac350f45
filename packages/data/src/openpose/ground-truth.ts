import { LIMB_SEQ, MAP_IDX } from '@leffa-webgpu/models';
import { generateSample } from '../synthetic/sample.js';

export interface AnnotatedKeypoint {
  x: number;
  y: number;
  visible: boolean;
}

export interface PoseTargets {
  /** [19, h, w]: 18 part Gaussians (max over people) and the background max(1 - max parts, 0). */
  heatmap: Float32Array;
  /** [38, h, w]: unit limb vectors within the limb width, averaged where limbs overlap. */
  paf: Float32Array;
  height: number;
  width: number;
}

/**
 * OpenPose training targets on the stride-`stride` grid of an image of `height` x `width` pixels: a Gaussian
 * exp(-d^2 / 2 sigma^2) per part (sigma in input pixels, truncated below 1%), and part affinity fields of
 * `limbWidth` grid cells. Grid cell (i, j) stands for the input point (stride j + stride/2 - 0.5, ...).
 */
export function poseTargets(
  people: AnnotatedKeypoint[][],
  height: number,
  width: number,
  options: { stride?: number; sigma?: number; limbWidth?: number } = {},
): PoseTargets {
  const stride = options.stride ?? 8;
  const sigma = options.sigma ?? 7;
  const limbWidth = options.limbWidth ?? 1;
  const h = Math.ceil(height / stride);
  const w = Math.ceil(width / stride);
  const heatmap = new Float32Array(19 * h * w);
  const paf = new Float32Array(38 * h * w);
  const count = new Float32Array(19 * h * w);
  const centre = (i: number) => i * stride + stride / 2 - 0.5;
  for (const kp of people) {
    kp.forEach((k, part) => {
      if (!k.visible || part >= 18) return;
      for (let gy = 0; gy < h; gy++) {
        for (let gx = 0; gx < w; gx++) {
          const d2 = (centre(gx) - k.x) ** 2 + (centre(gy) - k.y) ** 2;
          const v = Math.exp(-d2 / (2 * sigma * sigma));
          if (v < 0.01) continue;
          const i = part * h * w + gy * w + gx;
          heatmap[i] = Math.max(heatmap[i]!, v);
        }
      }
    });
    LIMB_SEQ.forEach(([pa, pb], limb) => {
      const a = kp[pa - 1]!;
      const b = kp[pb - 1]!;
      if (!a.visible || !b.visible) return;
      const ax = a.x / stride;
      const ay = a.y / stride;
      const dx = b.x / stride - ax;
      const dy = b.y / stride - ay;
      const len = Math.hypot(dx, dy);
      if (len < 1e-6) return;
      const ux = dx / len;
      const uy = dy / len;
      const [cx, cy] = MAP_IDX[limb]!.map((c) => c - 19) as [number, number];
      for (let gy = 0; gy < h; gy++) {
        for (let gx = 0; gx < w; gx++) {
          // Grid point in grid units, relative to the limb start.
          const px = centre(gx) / stride - ax;
          const py = centre(gy) / stride - ay;
          const along = px * ux + py * uy;
          const across = Math.abs(-px * uy + py * ux);
          if (along < 0 || along > len || across > limbWidth) continue;
          const i = gy * w + gx;
          paf[cx * h * w + i]! += ux;
          paf[cy * h * w + i]! += uy;
          count[limb * h * w + i]! += 1;
        }
      }
    });
  }
  for (let limb = 0; limb < 19; limb++) {
    const [cx, cy] = MAP_IDX[limb]!.map((c) => c - 19) as [number, number];
    for (let i = 0; i < h * w; i++) {
      const n = count[limb * h * w + i]!;
      if (n > 1) {
        paf[cx * h * w + i]! /= n;
        paf[cy * h * w + i]! /= n;
      }
    }
  }
  for (let i = 0; i < h * w; i++) {
    let m = 0;
    for (let part = 0; part < 18; part++) m = Math.max(m, heatmap[part * h * w + i]!);
    heatmap[18 * h * w + i] = Math.max(1 - m, 0);
  }
  return { heatmap, paf, height: h, width: w };
}

export interface PoseExample {
  width: number;
  height: number;
  image: Uint8Array;
  people: AnnotatedKeypoint[][];
}

/** A synthetic person with its 18 keypoints. */
export function syntheticPoseExample(seed: number, height: number, width: number): PoseExample {
  const s = generateSample({ seed, height, width });
  return { width, height, image: s.person.image, people: [s.person.keypoints] };
}
