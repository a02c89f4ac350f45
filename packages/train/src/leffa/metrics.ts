/**
 * Image and flow metrics on CPU arrays: L1, PSNR and SSIM between HWC uint8 images, and the end-point error
 * of a predicted flow field against the generator's exact ground truth.
 */

/**
 * Sums f(a[k], b[k]) over the channels of the RGB pixels where `region` (one value per pixel) is non-zero, or of
 * every pixel without one; with the number of values summed.
 */
function regionSum(a: Uint8Array, b: Uint8Array, f: (x: number, y: number) => number, region?: Uint8Array) {
  if (region && region.length * 3 !== a.length)
    throw new Error(`image metrics: a region of ${region.length} pixels for an RGB image of ${a.length / 3}`);
  let s = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (region && region[(i / 3) | 0] === 0) continue;
    s += f(a[i]!, b[i]!);
    n++;
  }
  return { s, n };
}

/** Mean absolute error in [0, 1] units (inside `region`, one value per pixel, when given; NaN if it is empty). */
export function l1(a: Uint8Array, b: Uint8Array, region?: Uint8Array): number {
  const { s, n } = regionSum(a, b, (x, y) => Math.abs(x - y), region);
  return n ? s / n / 255 : NaN;
}

/** PSNR in dB (inside `region`, one value per pixel, when given; NaN if it is empty). */
export function psnr(a: Uint8Array, b: Uint8Array, region?: Uint8Array): number {
  const { s, n } = regionSum(a, b, (x, y) => (x - y) ** 2, region);
  if (!n) return NaN;
  const mse = s / n;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** Mean distance of each channel from the pixel's grey level, in [0, 1] units: how colourful an HWC image is. */
export function colourfulness(img: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < img.length; i += 3) {
    const grey = (img[i]! + img[i + 1]! + img[i + 2]!) / 3;
    s += Math.abs(img[i]! - grey) + Math.abs(img[i + 1]! - grey) + Math.abs(img[i + 2]! - grey);
  }
  return s / img.length / 255;
}

export interface ReconstructionScores {
  /** PSNR per image: mean and standard deviation. */
  psnr: { mean: number; std: number };
  /** Colourfulness of the reconstructions over that of the inputs (1: colours kept). */
  colourKept: number;
}

/** How well reconstructions keep their inputs: PSNR per image and the colourfulness kept. */
export function reconstructionScores(inputs: Uint8Array[], outputs: Uint8Array[]): ReconstructionScores {
  const values = inputs.map((x, i) => psnr(x, outputs[i]!));
  const mean = values.reduce((a, v) => a + v, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
  const colour = (imgs: Uint8Array[]) => imgs.reduce((a, im) => a + colourfulness(im), 0);
  return { psnr: { mean, std }, colourKept: colour(outputs) / colour(inputs) };
}

/**
 * SSIM (Wang et al. 2004) on the luma of RGB images with an 11x11 Gaussian window (sigma 1.5),
 * K1 = 0.01, K2 = 0.03, averaged over valid windows; with `region` (one value per pixel), over the valid windows
 * centred on its non-zero pixels (NaN if there are none).
 */
export function ssim(a: Uint8Array, b: Uint8Array, width: number, height: number, region?: Uint8Array): number {
  if (region && region.length !== width * height)
    throw new Error(`ssim: a region of ${region.length} pixels for a ${width}x${height} image`);
  const luma = (img: Uint8Array) =>
    Float64Array.from(
      { length: width * height },
      (_, i) => 0.299 * img[3 * i]! + 0.587 * img[3 * i + 1]! + 0.114 * img[3 * i + 2]!,
    );
  const x = luma(a);
  const y = luma(b);
  const r = 5;
  const g = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * 1.5 * 1.5)));
  const gs = g.reduce((p, v) => p + v, 0);
  const w = g.map((v) => v / gs);
  // Separable Gaussian blur of a map.
  const blur = (m: Float64Array) => {
    const tmp = new Float64Array(m.length);
    const out = new Float64Array(m.length);
    for (let yy = 0; yy < height; yy++)
      for (let xx = r; xx < width - r; xx++) {
        let s = 0;
        for (let k = -r; k <= r; k++) s += w[k + r]! * m[yy * width + xx + k]!;
        tmp[yy * width + xx] = s;
      }
    for (let yy = r; yy < height - r; yy++)
      for (let xx = r; xx < width - r; xx++) {
        let s = 0;
        for (let k = -r; k <= r; k++) s += w[k + r]! * tmp[(yy + k) * width + xx]!;
        out[yy * width + xx] = s;
      }
    return out;
  };
  const mx = blur(x);
  const my = blur(y);
  const sxx = blur(x.map((v) => v * v));
  const syy = blur(y.map((v) => v * v));
  const sxy = blur(x.map((v, i) => v * y[i]!));
  const c1 = (0.01 * 255) ** 2;
  const c2 = (0.03 * 255) ** 2;
  let total = 0;
  let n = 0;
  for (let yy = r; yy < height - r; yy++)
    for (let xx = r; xx < width - r; xx++) {
      const i = yy * width + xx;
      if (region && region[i] === 0) continue;
      const vx = sxx[i]! - mx[i]! ** 2;
      const vy = syy[i]! - my[i]! ** 2;
      const cxy = sxy[i]! - mx[i]! * my[i]!;
      total += ((2 * mx[i]! * my[i]! + c1) * (2 * cxy + c2)) / ((mx[i]! ** 2 + my[i]! ** 2 + c1) * (vx + vy + c2));
      n++;
    }
  return n ? total / n : region ? NaN : 1;
}

/**
 * Mean end-point error (in reference-image pixels) of a flow predicted on an h x w grid (normalised
 * coordinates, [h*w, 2], as the attention flow field) against the exact per-pixel ground truth (pixel
 * coordinates, [H*W, 2]) over the pixels where the ground truth is valid. The prediction is upsampled by
 * bilinear interpolation (align_corners=false), as the Leffa loss does.
 */
export function flowEndPointError(
  predicted: Float32Array,
  h: number,
  w: number,
  truth: Float32Array,
  valid: Uint8Array,
  H: number,
  W: number,
): number {
  let sum = 0;
  let n = 0;
  const at = (yy: number, xx: number, c: number) =>
    predicted[2 * (Math.min(h - 1, Math.max(0, yy)) * w + Math.min(w - 1, Math.max(0, xx))) + c]!;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (!valid[i]) continue;
      const sy = Math.max(0, ((y + 0.5) * h) / H - 0.5);
      const sx = Math.max(0, ((x + 0.5) * w) / W - 0.5);
      const y0 = Math.floor(sy);
      const x0 = Math.floor(sx);
      const fy = sy - y0;
      const fx = sx - x0;
      const val = (c: number) =>
        (at(y0, x0, c) * (1 - fx) + at(y0, x0 + 1, c) * fx) * (1 - fy) +
        (at(y0 + 1, x0, c) * (1 - fx) + at(y0 + 1, x0 + 1, c) * fx) * fy;
      // Normalised (align_corners=false) to pixel coordinates of the reference image.
      const px = ((Math.max(-1, Math.min(1, val(0))) + 1) * W - 1) / 2;
      const py = ((Math.max(-1, Math.min(1, val(1))) + 1) * H - 1) / 2;
      sum += Math.hypot(px - truth[2 * i]!, py - truth[2 * i + 1]!);
      n++;
    }
  }
  return n ? sum / n : NaN;
}
