import * as T from '@leffa-webgpu/core';
import { type Assembly, type Peak, type Person, assemblePeople, toPeople } from './assemble.js';
import type { OpenPoseBody } from './network.js';
import { roundHalfEven } from '../schedulers/noise-schedule.js';

export interface PoseOptions {
  /**
   * body.py's scale_search: at scale s the image is resized to s x boxsize px tall, whatever its own height
   * ([0.5], as body.py; [0.5, 1, 1.5, 2] for accuracy).
   */
  scales?: number[];
  /** body.py's boxsize; defaults to the model's config (368 for the released model). */
  boxsize?: number;
  /** Peak threshold on the smoothed heatmap (0.1). */
  thre1?: number;
  /** PAF sample threshold (0.05). */
  thre2?: number;
  /**
   * Border of the peak smoothing: 'reflect' (scipy's gaussian_filter default, as body.py: d c b a | a b c d)
   * or 'zeros' (this library's earlier behaviour, which pulls peaks near the border inwards).
   */
  smoothBorder?: SmoothBorder;
  /**
   * How heatmaps of several scales combine: 'body.py' as the released code, `heatmap_avg += heatmap_avg +
   * heatmap / n` (each scale doubles the sum so far: with [0.5, 1] the result is h(0.5) + h(1) / 2), or 'mean'
   * (each scale once, this library's earlier behaviour). PAFs are averaged once per scale either way, as body.py
   * does. One scale gives the same maps either way.
   */
  scaleAccumulation?: ScaleAccumulation;
}

export type SmoothBorder = 'reflect' | 'zeros';
export type ScaleAccumulation = 'body.py' | 'mean';

/** An RGB image, HWC uint8. */
export interface ImageRGB {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Gaussian taps as scipy's gaussian_filter1d: radius int(truncate * sigma + 0.5) with truncate 4. */
function gaussianTaps(sigma: number): number[] {
  const r = Math.floor(4 * sigma + 0.5);
  const w = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / s);
}

/**
 * OpenCV's `cv2.resize(x, (0, 0), fx=m, fy=m, interpolation=INTER_CUBIC)` of [N, C, H, W], as body.py scales
 * its input: the output is round(H m) x round(W m) (cvRound, half to even), and output pixel o samples source
 * (o + 0.5) / m - 0.5 with the factor as given (OpenCV does not re-derive it from the rounded size, so this
 * differs from a resize to that size whenever W m is not an integer); bicubic A = -0.75, clamped borders.
 * T.interpolate with a scale factor maps the same way but sizes floor(H m), so the input is first extended
 * right/bottom by replicating its last row/column (which is what the clamped border reads there) and the
 * result cropped.
 */
export function resizeByFactor(x: T.Tensor, m: number): T.Tensor {
  if (x.rank !== 4) throw new Error(`resizeByFactor: expected [N, C, H, W], got ${T.formatShape(x.shape)}`);
  if (!(m > 0) || !Number.isFinite(m)) throw new Error(`resizeByFactor: factor must be a positive number, got ${m}`);
  const [H, W] = x.shape.slice(2) as [number, number];
  const h = roundHalfEven(H * m);
  const w = roundHalfEven(W * m);
  if (h < 1 || w < 1) throw new Error(`resizeByFactor: ${H}x${W} at factor ${m} is empty (${h}x${w})`);
  const extra = Math.ceil(1 / m) + 1;
  const replicate = (t: T.Tensor, dim: 2 | 3) => {
    const n = t.shape[dim]!;
    const last = T.slice(
      t,
      t.shape.map((_, d) => (d === dim ? { start: n - 1, end: n } : null)),
    );
    return T.concat([t, ...Array.from({ length: extra }, () => last)], dim);
  };
  const up = T.interpolate(replicate(replicate(x, 2), 3), { scaleFactor: m, mode: 'bicubic' });
  return T.slice(up, [null, null, { end: h }, { end: w }]);
}

/**
 * Heatmaps and PAFs combined over scales at the image's resolution, channels first ([19|38, H, W]), as body.py:
 * per scale s, multiplier m = s * boxsize / H (the network sees people at the same size whatever the image
 * resolution); the uint8 image resized by m (`resizeByFactor`, then rounded and clamped to uint8 as OpenCV
 * returns it), padded right/bottom to a multiple of 8 with 128, BGR / 256 - 0.5, the network, x8 (bicubic), the
 * padding cropped, bicubic back to the image size. Heatmaps combine as `scaleAccumulation` says (body.py's by
 * default), PAFs as a mean.
 */
export function poseMaps(
  model: OpenPoseBody,
  image: ImageRGB,
  options: PoseOptions = {},
): { heatmap: T.Tensor; paf: T.Tensor } {
  const scales = options.scales ?? [0.5];
  const box = options.boxsize ?? model.config.boxsize;
  const accumulation = options.scaleAccumulation ?? 'body.py';
  if (scales.length === 0 || scales.some((s) => !(s > 0) || !Number.isFinite(s)))
    throw new Error(`poseMaps: scales must be positive numbers, got [${scales.join(', ')}]`);
  if (!(box > 0) || !Number.isFinite(box)) throw new Error(`poseMaps: boxsize must be a positive number, got ${box}`);
  if (accumulation !== 'body.py' && accumulation !== 'mean')
    throw new Error(`poseMaps: scaleAccumulation must be 'body.py' or 'mean', got '${String(accumulation)}'`);
  const { width: W, height: H } = image;
  if (!(W >= 1 && H >= 1) || image.data.length !== W * H * 3)
    throw new Error(`poseMaps: expected a ${W}x${H} RGB image (${W * H * 3} bytes), got ${image.data.length} bytes`);
  return T.noGrad(() =>
    T.tidy(() => {
      const nchw = new Float32Array(3 * H * W);
      for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) nchw[c * H * W + i] = image.data[3 * i + c]!;
      const rgb = T.tensor(nchw, [1, 3, H, W]);
      let heat: T.Tensor | null = null;
      let paf: T.Tensor | null = null;
      for (const s of scales) {
        const m = (s * box) / H;
        // OpenCV resizes the uint8 image into uint8 (rounded half up, saturated).
        const resized = T.clamp(T.floor(T.add(resizeByFactor(rgb, m), 0.5)), 0, 255);
        const [h, w] = resized.shape.slice(2) as [number, number];
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
        heat = heat ? T.add(accumulation === 'body.py' ? T.mul(heat, 2) : heat, hs) : hs;
        paf = paf ? T.add(paf, ps) : ps;
      }
      return { heatmap: T.squeeze(heat!, 0), paf: T.squeeze(paf!, 0) };
    }),
  );
}

/**
 * Pads `x` by r on both sides of `dim` with scipy's 'reflect' extension (half-sample symmetric, period 2n:
 * ... b a | a b c d | d c ...), also when r exceeds the size: contiguous runs of the extension are sliced and
 * flipped, then concatenated.
 */
function reflectPad(x: T.Tensor, dim: number, r: number): T.Tensor {
  const n = x.shape[dim]!;
  const source = (i: number) => {
    const j = ((i % (2 * n)) + 2 * n) % (2 * n);
    return j < n ? j : 2 * n - 1 - j;
  };
  const parts: T.Tensor[] = [];
  let start = -r;
  while (start < n + r) {
    const a = source(start);
    let end = start + 1;
    const step = end < n + r && n > 1 ? source(end) - a : 0;
    if (step === 1 || step === -1) while (end < n + r && source(end) - source(end - 1) === step) end++;
    const lo = step === -1 ? source(end - 1) : a;
    const hi = step === -1 ? a + 1 : source(end - 1) + 1;
    const ranges = x.shape.map((_, d) => (d === dim ? { start: lo, end: hi } : null));
    const piece = T.slice(x, ranges);
    parts.push(step === -1 ? T.flip(piece, [dim]) : piece);
    start = end;
  }
  return parts.length === 1 ? parts[0]! : T.concat(parts, dim);
}

/** scipy.ndimage.gaussian_filter of each plane of [C, H, W] (truncate 4), with 'reflect' or zero borders. */
export function gaussianSmooth(maps: T.Tensor, sigma = 3, border: SmoothBorder = 'reflect'): T.Tensor {
  if (maps.rank !== 3) throw new Error(`gaussianSmooth: expected [C, H, W], got ${T.formatShape(maps.shape)}`);
  if (border !== 'reflect' && border !== 'zeros')
    throw new Error(`gaussianSmooth: border must be 'reflect' or 'zeros', got '${String(border)}'`);
  if (!(sigma > 0)) throw new Error(`gaussianSmooth: sigma must be positive, got ${sigma}`);
  return T.noGrad(() =>
    T.tidy(() => {
      const [C, H, W] = maps.shape as [number, number, number];
      const taps = gaussianTaps(sigma);
      const k = taps.length;
      const r = (k - 1) / 2;
      const x = T.reshape(maps, [C, 1, H, W]);
      const kx = T.reshape(T.tensor(taps), [1, 1, 1, k]);
      const ky = T.reshape(T.tensor(taps), [1, 1, k, 1]);
      // scipy filters axis 0 (rows) first, then axis 1; the order only changes rounding.
      const smooth =
        border === 'zeros'
          ? T.conv2d(T.conv2d(x, ky, undefined, { padding: [r, 0] }), kx, undefined, { padding: [0, r] })
          : T.conv2d(reflectPad(T.conv2d(reflectPad(x, 2, r), ky), 3, r), kx);
      return T.reshape(smooth, [C, H, W]);
    }),
  );
}

/**
 * Peaks of each part's heatmap on the GPU, as body.py: Gaussian smoothing (sigma 3; scipy's 'reflect' border
 * unless `border` says 'zeros'), then 4-neighbour local maxima above thre1. Returns the peak mask, for the
 * CPU to list with the unsmoothed heatmap values.
 */
export function peakMask(heatmap: T.Tensor, thre1 = 0.1, border: SmoothBorder = 'reflect'): T.Tensor {
  return T.noGrad(() =>
    T.tidy(() => {
      const [, H, W] = heatmap.shape as [number, number, number];
      const s = gaussianSmooth(heatmap, 3, border);
      // Neighbours with -inf outside the image, so border pixels can be peaks.
      const shifted = (dy: number, dx: number) =>
        T.slice(T.pad(s, [1, 1, 1, 1], -3.4e38), [
          null,
          { start: 1 + dy, end: 1 + dy + H },
          { start: 1 + dx, end: 1 + dx + W },
        ]);
      const isPeak = T.map('peaks', 'select(0.0, 1.0, a >= b && a >= c && a >= d)', [
        s,
        shifted(0, -1),
        shifted(0, 1),
        shifted(-1, 0),
      ]);
      return T.map('peaks', 'select(0.0, 1.0, a > 0.5 && b >= c && d > alpha)', [isPeak, s, shifted(1, 0), s], thre1);
    }),
  );
}

export interface PoseResult extends Assembly {
  people: Person[];
}

/** Full body-pose estimation on one image: maps, peaks (GPU), limbs and people (CPU). */
export async function estimatePose(
  model: OpenPoseBody,
  image: ImageRGB,
  options: PoseOptions = {},
): Promise<PoseResult> {
  const { heatmap, paf } = poseMaps(model, image, options);
  const mask = peakMask(heatmap, options.thre1 ?? 0.1, options.smoothBorder ?? 'reflect');
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
    value: (x: number, y: number, c: number) =>
      pafData[c * H * W + Math.min(H - 1, Math.max(0, y)) * W + Math.min(W - 1, Math.max(0, x))]!,
  };
  const assembly = assemblePeople(peaks, field, { imageHeight: H, thre2: options.thre2 ?? 0.05 });
  return { ...assembly, people: toPeople(assembly) };
}
