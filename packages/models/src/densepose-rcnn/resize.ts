/**
 * detectron2's test-time resize as DefaultPredictor applies it: ResizeShortestEdge([MIN_SIZE_TEST] * 2,
 * MAX_SIZE_TEST) (800 and 1333 unless a config says otherwise; the DensePose configs keep them) and
 * ResizeTransform, which resizes uint8 images with Pillow's bilinear filter. Pillow's resampling is reproduced
 * exactly here (Resample.c, 8 bits per channel): a triangle (bilinear) or Keys a = -0.5 (bicubic, the default
 * of `Image.resize`) filter whose support widens with the downscale factor (so shrinking averages, enlarging
 * interpolates), coefficients rounded to 22-bit fixed point, a horizontal pass over the rows the vertical pass
 * needs, then the vertical pass, each rounded and clipped to 0..255.
 */

/** cfg.INPUT.MIN_SIZE_TEST and MAX_SIZE_TEST (detectron2's defaults, kept by the DensePose configs). */
export const DETECTRON2_TEST_RESIZE = { shortEdge: 800, maxSize: 1333 } as const;

/** ResizeShortestEdge.get_output_shape: the resized [height, width] (rounded half up). */
export function shortestEdgeSize(h: number, w: number, shortEdge: number, maxSize: number): [number, number] {
  if (!(h >= 1 && w >= 1 && Number.isInteger(h) && Number.isInteger(w)))
    throw new Error(`shortestEdgeSize: image size must be positive integers, got ${h}x${w}`);
  const scale = shortEdge / Math.min(h, w);
  let [newh, neww] = h < w ? [shortEdge, scale * w] : [scale * h, shortEdge];
  if (Math.max(newh, neww) > maxSize) {
    const s = maxSize / Math.max(newh, neww);
    newh *= s;
    neww *= s;
  }
  return [Math.trunc(newh + 0.5), Math.trunc(neww + 0.5)];
}

const PRECISION_BITS = 32 - 8 - 2;

/** Pillow's resampling filters (Resample.c): the kernel and its support at scale 1. */
export type PilFilter = 'bilinear' | 'bicubic';
const PIL_FILTERS: Record<PilFilter, { support: number; kernel: (x: number) => number }> = {
  bilinear: { support: 1, kernel: (x) => (x < 1 ? 1 - x : 0) },
  bicubic: {
    support: 2,
    kernel: (x) => {
      const a = -0.5;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc: per output, first tap, tap count, weights. */
function coefficients(
  inSize: number,
  outSize: number,
  filter: PilFilter,
): { bounds: Int32Array; kk: Int32Array; ksize: number } {
  const { support: base, kernel } = PIL_FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = base * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = kernel(Math.abs((x + xmin - center + 0.5) * ss));
      ww += w[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x]! / ww : w[x]!;
      kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

/** Pillow's clip8: the fixed-point sum back to 0..255. */
const clip8 = (v: number) => (v >= 1 << (PRECISION_BITS + 8) ? 255 : v <= 0 ? 0 : v >> PRECISION_BITS);

/**
 * PIL.Image.resize((width, height), Image.BILINEAR) of an interleaved uint8 image with `channels` channels
 * (row-major [h, w, channels]), bit-exact with Pillow.
 */
export function pilResizeBilinear(
  data: Uint8Array,
  h: number,
  w: number,
  channels: number,
  height: number,
  width: number,
): Uint8Array {
  return pilResize(data, h, w, channels, height, width, 'bilinear', 'pilResizeBilinear');
}

/**
 * PIL.Image.resize((width, height), filter) of an interleaved uint8 image with `channels` channels (row-major
 * [h, w, channels]), bit-exact with Pillow; 'bicubic' is what `Image.resize` uses when no filter is named.
 */
export function pilResize(
  data: Uint8Array,
  h: number,
  w: number,
  channels: number,
  height: number,
  width: number,
  filter: PilFilter,
  op = 'pilResize',
): Uint8Array {
  if (data.length !== h * w * channels)
    throw new Error(`${op}: expected ${h}x${w}x${channels} = ${h * w * channels} bytes, got ${data.length}`);
  if (!(height >= 1 && width >= 1 && Number.isInteger(height) && Number.isInteger(width)))
    throw new Error(`${op}: output size must be positive integers, got ${height}x${width}`);
  if (height === h && width === w) return data.slice();
  const C = channels;
  const half = 1 << (PRECISION_BITS - 1);
  const vert = coefficients(h, height, filter);
  const horiz = coefficients(w, width, filter);
  // The horizontal pass runs over the source rows the vertical pass reads (all of them when only the width changes).
  const needH = width !== w;
  const needV = height !== h;
  const first = needV ? vert.bounds[0]! : 0;
  const last = needV ? vert.bounds[2 * height - 2]! + vert.bounds[2 * height - 1]! : h;
  let src = data;
  let srcW = w;
  let rowOffset = 0;
  if (needH) {
    const rows = last - first;
    const tmp = new Uint8Array(rows * width * C);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + first) * w * C;
      for (let xx = 0; xx < width; xx++) {
        const xmin = horiz.bounds[2 * xx]!;
        const xmax = horiz.bounds[2 * xx + 1]!;
        const k = xx * horiz.ksize;
        for (let c = 0; c < C; c++) {
          let ss = half;
          for (let x = 0; x < xmax; x++) ss += data[inRow + (x + xmin) * C + c]! * horiz.kk[k + x]!;
          tmp[(y * width + xx) * C + c] = clip8(ss);
        }
      }
    }
    src = tmp;
    srcW = width;
    rowOffset = first;
  }
  if (!needV) return src;
  const out = new Uint8Array(height * width * C);
  for (let yy = 0; yy < height; yy++) {
    const ymin = vert.bounds[2 * yy]! - rowOffset;
    const ymax = vert.bounds[2 * yy + 1]!;
    const k = yy * vert.ksize;
    for (let xx = 0; xx < width; xx++) {
      for (let c = 0; c < C; c++) {
        let ss = half;
        for (let y = 0; y < ymax; y++) ss += src[((y + ymin) * srcW + xx) * C + c]! * vert.kk[k + y]!;
        out[(yy * width + xx) * C + c] = clip8(ss);
      }
    }
  }
  return out;
}
