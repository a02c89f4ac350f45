/**
 * The image handling of Leffa's app.py around its models, reproduced on the host (browser-safe):
 *
 * - `resizeAndCenter`: leffa_utils.utils.resize_and_center, cv2.resize(INTER_CUBIC) to fit, centred on white;
 * - `cv2ResizeCubic`: that resize, bit-exact with OpenCV 4.6's uint8 path on x86 (11-bit fixed-point taps,
 *   Keys a = -0.75, clamped borders, the vertical pass in float32 as its SSE code does);
 * - `leffaTransform`: leffa.transform.LeffaTransform on images already at the model size, i.e. the four tensors
 *   the pipeline's VAE and UNets receive (src and ref in [-1, 1], the binarised mask, the densepose condition
 *   normalised per task);
 * - `leffaRepaint`: leffa.pipeline.do_repaint (the mask blurred with Pillow's GaussianBlur, then a blend).
 */
import * as T from '@leffa-webgpu/core';
import type { RgbImage } from '@leffa-webgpu/data/web';

const RESIZE_COEF_BITS = 11;
const RESIZE_COEF_SCALE = 1 << RESIZE_COEF_BITS;
const f32 = Math.fround;

/** cvRound: to nearest, ties to even. */
function cvRound(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** OpenCV's interpolateCubic (A = -0.75) in float (every operation rounded to float32), then saturate_cast<short>(c * 2048) per tap. */
function cubicTaps(fx: number): [number, number, number, number] {
  const A = -0.75;
  const x = f32(fx);
  const x1 = f32(x + 1);
  const c0 = f32(f32(f32(f32(f32(f32(A * x1) - 5 * A) * x1) + 8 * A) * x1) - 4 * A);
  const c1 = f32(f32(f32(f32(f32((A + 2) * x) - (A + 3)) * x) * x) + 1);
  const y = f32(1 - x);
  const c2 = f32(f32(f32(f32(f32((A + 2) * y) - (A + 3)) * y) * y) + 1);
  const c3 = f32(f32(f32(1 - c0) - c1) - c2);
  return [c0, c1, c2, c3].map((c) => cvRound(f32(c * RESIZE_COEF_SCALE))) as [number, number, number, number];
}

/** Per output position: the source index of tap 1 (floor of the sample point) and the four fixed-point taps. */
function axisTaps(inSize: number, outSize: number): { start: Int32Array; taps: Int32Array } {
  // cv::resize: inv_scale = dsize / ssize, scale = 1 / inv_scale (not ssize / dsize, which can round differently).
  const scale = 1 / (outSize / inSize);
  const start = new Int32Array(outSize);
  const taps = new Int32Array(outSize * 4);
  for (let o = 0; o < outSize; o++) {
    const fx = f32((o + 0.5) * scale - 0.5);
    const s = Math.floor(fx);
    start[o] = s;
    taps.set(cubicTaps(f32(fx - s)), 4 * o);
  }
  return { start, taps };
}

/**
 * cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC) of an interleaved uint8 image (row-major
 * [h, w, channels]): horizontal pass to integers, vertical pass back to 0..255.
 */
export function cv2ResizeCubic(
  data: Uint8Array,
  h: number,
  w: number,
  channels: number,
  height: number,
  width: number,
): Uint8Array {
  if (data.length !== h * w * channels)
    throw new Error(`cv2ResizeCubic: expected ${h}x${w}x${channels} = ${h * w * channels} bytes, got ${data.length}`);
  if (!(Number.isInteger(height) && Number.isInteger(width) && height >= 1 && width >= 1))
    throw new Error(`cv2ResizeCubic: output size must be positive integers, got ${height}x${width}`);
  if (height === h && width === w) return data.slice();
  const C = channels;
  const hx = axisTaps(w, width);
  const vy = axisTaps(h, height);
  const clampX = (x: number) => Math.min(w - 1, Math.max(0, x));
  const rows = new Int32Array(h * width * C);
  for (let y = 0; y < h; y++) {
    for (let o = 0; o < width; o++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let k = 0; k < 4; k++) acc += data[(y * w + clampX(hx.start[o]! - 1 + k)) * C + c]! * hx.taps[4 * o + k]!;
        rows[(y * width + o) * C + c] = acc;
      }
    }
  }
  const out = new Uint8Array(height * width * C);
  const shift = 2 ** (2 * RESIZE_COEF_BITS);
  // OpenCV's vertical pass (VResizeCubicVec_32s8u) runs 8 values at a time in float32, S0 b0 + (S1 b1 + (S2 b2 +
  // S3 b3)) rounded to even; the values after the last whole group take the integer path.
  const vectorised = Math.floor((width * C) / 8) * 8;
  for (let o = 0; o < height; o++) {
    const ys = [0, 1, 2, 3].map((k) => Math.min(h - 1, Math.max(0, vy.start[o]! - 1 + k)) * width * C);
    const beta = [0, 1, 2, 3].map((k) => vy.taps[4 * o + k]!);
    const b = beta.map((v) => f32(v / shift));
    for (let i = 0; i < width * C; i++) {
      let v: number;
      if (i < vectorised) {
        const s3 = f32(rows[ys[3]! + i]! * b[3]!);
        const s2 = f32(f32(rows[ys[2]! + i]! * b[2]!) + s3);
        const s1 = f32(f32(rows[ys[1]! + i]! * b[1]!) + s2);
        v = cvRound(f32(f32(rows[ys[0]! + i]! * b[0]!) + s1));
      } else {
        let acc = 0;
        for (let k = 0; k < 4; k++) acc += rows[ys[k]! + i]! * beta[k]!;
        v = Math.floor((acc + shift / 2) / shift);
      }
      out[o * width * C + i] = Math.min(255, Math.max(0, v));
    }
  }
  return out;
}

/**
 * leffa_utils.utils.resize_and_center(image, width, height): scaled by min(height / h, width / w) (sizes
 * truncated as Python's int()), cv2 bicubic, centred on a white canvas of height x width.
 */
export function resizeAndCenter(image: RgbImage, height: number, width: number): RgbImage {
  if (!(Number.isInteger(height) && Number.isInteger(width) && height >= 1 && width >= 1))
    throw new Error(`resizeAndCenter: size must be positive integers, got ${height}x${width}`);
  if (image.width < 1 || image.height < 1 || image.data.length !== image.width * image.height * 3) {
    throw new Error(
      `resizeAndCenter: expected an RGB image, got ${image.width}x${image.height} with ${image.data.length} bytes`,
    );
  }
  const scale = Math.min(height / image.height, width / image.width);
  const h = Math.trunc(image.height * scale);
  const w = Math.trunc(image.width * scale);
  if (h < 1 || w < 1)
    throw new Error(
      `resizeAndCenter: a ${image.width}x${image.height} image shrinks to ${w}x${h} in ${width}x${height}`,
    );
  const resized = cv2ResizeCubic(image.data, image.height, image.width, 3, h, w);
  const data = new Uint8Array(height * width * 3).fill(255);
  const top = Math.floor((height - h) / 2);
  const left = Math.floor((width - w) / 2);
  for (let y = 0; y < h; y++) data.set(resized.subarray(y * w * 3, (y + 1) * w * 3), ((top + y) * width + left) * 3);
  return { width, height, data };
}

/** The LeffaTransform dataset: try-on conditions are images, pose transfer's are DensePose IUV. */
export type LeffaTransformKind = 'virtual_tryon' | 'pose_transfer';

export interface LeffaTransformInputs {
  /** The person (try-on) or target-pose image, at the model size. */
  src: RgbImage;
  /** The garment (try-on) or the source person, at the model size. */
  ref: RgbImage;
  /** Grey mask at the model size (255 = regenerate), as PIL's convert('L') gives it. */
  mask: Uint8Array;
  /** The densepose condition image at the model size (app.py's, see DensePosePredictor.leffaDensePose). */
  densepose: RgbImage;
}

/** The four [1, C, H, W] float32 arrays LeffaTransform makes (channel-planar). */
export interface LeffaTransformArrays {
  height: number;
  width: number;
  src: Float32Array;
  ref: Float32Array;
  mask: Float32Array;
  densepose: Float32Array;
}

/** HWC uint8 -> CHW float32 through per-channel `f` (numpy/torch float32 arithmetic). */
function planar(img: RgbImage, f: (v: number, c: number) => number): Float32Array {
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = f(img.data[3 * i + c]!, c);
  return out;
}

/** VaeImageProcessor: x / 255 in float32, then 2x - 1. */
const vaeNormalize = (v: number) => f32(2 * f32(v / 255) - 1);

/**
 * LeffaTransform on images already at the model size (its resizes are then identities): src, ref and the
 * try-on densepose as VaeImageProcessor normalises them, the mask binarised at 0.5 after / 255, and pose
 * transfer's IUV densepose as prepare_densepose does (channels 0-1 / 255, channel 2 / 24, then 2x - 1).
 */
export function leffaTransform(inputs: LeffaTransformInputs, kind: LeffaTransformKind): LeffaTransformArrays {
  const { height, width } = inputs.src;
  for (const [name, img] of [
    ['src', inputs.src],
    ['ref', inputs.ref],
    ['densepose', inputs.densepose],
  ] as const) {
    if (img.height !== height || img.width !== width || img.data.length !== height * width * 3) {
      throw new Error(
        `leffaTransform: ${name} is ${img.width}x${img.height} (${img.data.length} bytes), expected a ${width}x${height} RGB image like src`,
      );
    }
  }
  if (inputs.mask.length !== height * width)
    throw new Error(
      `leffaTransform: mask has ${inputs.mask.length} values, expected ${height * width} (${width}x${height})`,
    );
  const densepose =
    kind === 'pose_transfer'
      ? planar(inputs.densepose, (v, c) => f32(2 * f32(v / (c < 2 ? 255 : 24)) - 1))
      : planar(inputs.densepose, vaeNormalize);
  return {
    height,
    width,
    src: planar(inputs.src, vaeNormalize),
    ref: planar(inputs.ref, vaeNormalize),
    mask: Float32Array.from(inputs.mask, (v) => (f32(v / 255) >= 0.5 ? 1 : 0)),
    densepose,
  };
}

/** The transform's arrays as device tensors [1, C, H, W]. */
export function leffaTransformTensors(a: LeffaTransformArrays): {
  src: T.Tensor;
  ref: T.Tensor;
  mask: T.Tensor;
  densepose: T.Tensor;
} {
  const img = (d: Float32Array) => T.tensor(d, [1, 3, a.height, a.width]);
  return {
    src: img(a.src),
    ref: img(a.ref),
    mask: T.tensor(a.mask, [1, 1, a.height, a.width]),
    densepose: img(a.densepose),
  };
}

/** Pillow's _gaussian_blur_radius in C float: the box radius whose `passes` box blurs approximate a Gaussian. */
function pilBoxRadius(radius: number, passes: number): number {
  const sigma2 = f32(f32(radius * radius) / passes);
  const L = f32(Math.sqrt(12 * sigma2 + 1));
  const l = f32(Math.floor((L - 1) / 2));
  let a = f32((2 * l + 1) * (l * (l + 1) - 3 * sigma2));
  a = f32(a / (6 * (sigma2 - (l + 1) * (l + 1))));
  return f32(l + a);
}

/**
 * One pass of Pillow's ImagingLineBoxBlur over `n` values at `stride`: each output is the window x - r .. x + r
 * weighted ww plus the two values just outside it weighted fw (borders replicated), in 24-bit fixed point.
 */
function boxBlurLine(
  src: Uint8Array,
  dst: Uint8Array,
  offset: number,
  stride: number,
  n: number,
  floatRadius: number,
): void {
  const r = Math.trunc(floatRadius);
  const ww = Math.trunc(f32(2 ** 24 / f32(floatRadius * 2 + 1)));
  const fw = Math.floor((2 ** 24 - (r * 2 + 1) * ww) / 2);
  const at = (x: number) => src[offset + Math.min(n - 1, Math.max(0, x)) * stride]!;
  const line = Array.from({ length: n }, (_, x) => at(x));
  let acc = 0;
  for (let x = -r; x <= r; x++) acc += line[Math.min(n - 1, Math.max(0, x))]!;
  for (let x = 0; x < n; x++) {
    if (x > 0) acc += line[Math.min(n - 1, x + r)]! - line[Math.max(0, x - r - 1)]!;
    const far = line[Math.max(0, x - r - 1)]! + line[Math.min(n - 1, x + r + 1)]!;
    dst[offset + x * stride] = Math.min(255, Math.floor((acc * ww + far * fw + 2 ** 23) / 2 ** 24));
  }
}

/** PIL's ImageFilter.GaussianBlur(radius) of a one-channel uint8 image: three box passes along x, then three along y. */
export function pilGaussianBlur(data: Uint8Array, height: number, width: number, radius: number): Uint8Array {
  if (data.length !== height * width)
    throw new Error(`pilGaussianBlur: expected ${height}x${width} = ${height * width} values, got ${data.length}`);
  const r = pilBoxRadius(radius, 3);
  let a = data.slice();
  let b = new Uint8Array(a.length);
  if (r === 0) return a;
  for (const horizontal of [true, false]) {
    for (let pass = 0; pass < 3; pass++) {
      if (horizontal) for (let y = 0; y < height; y++) boxBlurLine(a, b, y * width, 1, width, r);
      else for (let x = 0; x < width; x++) boxBlurLine(a, b, x, width, height, r);
      [a, b] = [b, a];
    }
  }
  return a;
}

/**
 * leffa.pipeline.do_repaint: the binary mask (1 = generated) blurred by PIL's GaussianBlur with radius
 * height // 100 (made odd), then person x (1 - m) + generated x m per pixel, truncated to uint8.
 */
export function leffaRepaint(person: RgbImage, generated: RgbImage, mask: ArrayLike<number>): RgbImage {
  const { width, height } = generated;
  if (person.width !== width || person.height !== height)
    throw new Error(
      `leffaRepaint: the person is ${person.width}x${person.height}, the generated image ${width}x${height}`,
    );
  if (mask.length !== width * height)
    throw new Error(`leffaRepaint: mask has ${mask.length} values, expected ${width * height} (${width}x${height})`);
  let k = Math.floor(height / 100);
  if (k % 2 === 0) k += 1;
  const blurred = pilGaussianBlur(
    Uint8Array.from(mask, (v) => (v >= 0.5 ? 255 : 0)),
    height,
    width,
    k,
  );
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const m = blurred[i]! / 255;
    for (let c = 0; c < 3; c++)
      data[3 * i + c] = Math.trunc(person.data[3 * i + c]! * (1 - m) + generated.data[3 * i + c]! * m);
  }
  return { width, height, data };
}
