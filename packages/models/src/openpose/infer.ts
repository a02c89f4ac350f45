import * as T from '@leffa-webgpu/core';
import { type Assembly, type Peak, type Person, assemblePeople, toPeople } from './assemble.js';
import type { OpenPoseBody } from './network.js';

export interface PoseOptions {
  /** Person height as a fraction of 368 px per scale (the common port uses [0.5]; [0.5, 1, 1.5, 2] for accuracy). */
  scales?: number[];
  boxsize?: number;
  /** Peak threshold on the smoothed heatmap (0.1). */
  thre1?: number;
  /** PAF sample threshold (0.05). */
  thre2?: number;
}

/** An RGB image, HWC uint8. */
export interface ImageRGB {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Gaussian taps (scipy's gaussian_filter: radius 4 sigma). */
function gaussianTaps(sigma: number): number[] {
  const r = Math.round(4 * sigma);
  const w = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / s);
}

/**
 * Heatmaps and PAFs averaged over scales at the image's resolution, channels first ([19|38, H, W]):
 * per scale, resize (bicubic) so that the image is boxsize*scale tall, pad right/bottom to a multiple of 8
 * with 128, BGR / 256 - 0.5, run the network, upsample x8 (bicubic), crop the padding, resize back.
 * Scales are averaged once each (the port double-counts heatmaps with several scales; this does not).
 */
export function poseMaps(model: OpenPoseBody, image: ImageRGB, options: PoseOptions = {}): { heatmap: T.Tensor; paf: T.Tensor } {
  const scales = options.scales ?? [0.5];
  const box = options.boxsize ?? 368;
  return T.noGrad(() =>
    T.tidy(() => {
      const { width: W, height: H } = image;
      const nchw = new Float32Array(3 * H * W);
      for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) nchw[c * H * W + i] = image.data[3 * i + c]!;
      const rgb = T.tensor(nchw, [1, 3, H, W]);
      let heat: T.Tensor | null = null;
      let paf: T.Tensor | null = null;
      for (const s of scales) {
        const m = (s * box) / H;
        const h = Math.max(8, Math.round(H * m));
        const w = Math.max(8, Math.round(W * m));
        const resized = T.interpolate(rgb, { size: [h, w], mode: 'bicubic' });
        const padH = (8 - (h % 8)) % 8;
        const padW = (8 - (w % 8)) % 8;
        const padded = T.pad(resized, [0, padW, 0, padH], 128);
        const input = T.sub(T.div(T.flip(padded, [1]), 256), 0.5);
        const last = model.forward(input).stages.at(-1)!;
        const back = (t: T.Tensor) => {
          const up = T.interpolate(t, { scaleFactor: 8, mode: 'bicubic' });
          const cropped = T.slice(up, [null, null, { end: h }, { end: w }]);
          return T.interpolate(cropped, { size: [H, W], mode: 'bicubic' });
        };
        const hs = T.mul(back(last.heatmap), 1 / scales.length);
        const ps = T.mul(back(last.paf), 1 / scales.length);
        heat = heat ? T.add(heat, hs) : hs;
        paf = paf ? T.add(paf, ps) : ps;
      }
      return { heatmap: T.squeeze(heat!, 0), paf: T.squeeze(paf!, 0) };
    }),
  );
}

/**
 * Peaks of each part's heatmap on the GPU: Gaussian smoothing (sigma 3, separable, zero padding at the
 * border where scipy reflects), then 4-neighbour local maxima above thre1. Returns the peak mask and the
 * unsmoothed heatmap values, for the CPU to list.
 */
export function peakMask(heatmap: T.Tensor, thre1 = 0.1): T.Tensor {
  return T.noGrad(() =>
    T.tidy(() => {
      const [C, H, W] = heatmap.shape as [number, number, number];
      const taps = gaussianTaps(3);
      const k = taps.length;
      const x = T.reshape(heatmap, [C, 1, H, W]);
      const kx = T.reshape(T.tensor(taps), [1, 1, 1, k]);
      const ky = T.reshape(T.tensor(taps), [1, 1, k, 1]);
      const r = (k - 1) / 2;
      const smooth = T.conv2d(T.conv2d(x, kx, undefined, { padding: [0, r] }), ky, undefined, { padding: [r, 0] });
      const s = T.reshape(smooth, [C, H, W]);
      // Neighbours with -inf outside the image, so border pixels can be peaks.
      const shifted = (dy: number, dx: number) => T.slice(T.pad(s, [1, 1, 1, 1], -3.4e38), [null, { start: 1 + dy, end: 1 + dy + H }, { start: 1 + dx, end: 1 + dx + W }]);
      const isPeak = T.map('peaks', 'select(0.0, 1.0, a >= b && a >= c && a >= d)', [s, shifted(0, -1), shifted(0, 1), shifted(-1, 0)]);
      return T.map('peaks', 'select(0.0, 1.0, a > 0.5 && b >= c && d > alpha)', [isPeak, s, shifted(1, 0), s], thre1);
    }),
  );
}

export interface PoseResult extends Assembly {
  people: Person[];
}

/** Full body-pose estimation on one image: maps, peaks (GPU), limbs and people (CPU). */
export async function estimatePose(model: OpenPoseBody, image: ImageRGB, options: PoseOptions = {}): Promise<PoseResult> {
  const { heatmap, paf } = poseMaps(model, image, options);
  const mask = peakMask(heatmap, options.thre1 ?? 0.1);
  const [maskData, heatData, pafData] = await Promise.all([mask.data(), heatmap.data(), paf.data()]);
  T.dispose([heatmap, paf, mask]);
  const { width: W, height: H } = image;
  const peaks: Peak[][] = [];
  let id = 0;
  for (let part = 0; part < 18; part++) {
    const list: Peak[] = [];
    // Row-major scan (y outer), the order np.nonzero gives.
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = part * H * W + y * W + x;
        if (maskData[i]! > 0.5) list.push({ x, y, score: heatData[i]!, id: id++ });
      }
    }
    peaks.push(list);
  }
  const field = {
    width: W,
    height: H,
    value: (x: number, y: number, c: number) => pafData[c * H * W + Math.min(H - 1, Math.max(0, y)) * W + Math.min(W - 1, Math.max(0, x))]!,
  };
  const assembly = assemblePeople(peaks, field, { imageHeight: H, thre2: options.thre2 ?? 0.05 });
  return { ...assembly, people: toPeople(assembly) };
}
