/**
 * OpenCV's binary morphology as Leffa calls it on 0/1 masks: cv2.dilate / cv2.erode with an all-ones k x k kernel
 * (anchor at k / 2) repeated `iterations` times, and Leffa's hole_fill (cv2.floodFill from the corner, 4-connected).
 * OpenCV turns n iterations of a full rectangular kernel into one kernel of k + (n - 1)(k - 1) with the anchor
 * scaled by n; outside the image is ignored (the default border value). Masks are 0 / non-zero bytes.
 */

/** Window offsets [lo, hi] (inclusive) that cv2 reads for a k x k all-ones kernel applied `iterations` times. */
function reach(k: number, iterations: number): [number, number] {
  const anchor = Math.floor(k / 2) * iterations;
  const size = k + (iterations - 1) * (k - 1);
  return [-anchor, size - 1 - anchor];
}

/** Separable max (dilate) or min (erode) over the rectangular window, both axes clipped to the image. */
function morph(
  mask: Uint8Array,
  width: number,
  height: number,
  k: number,
  iterations: number,
  dilate: boolean,
): Uint8Array {
  if (mask.length !== width * height)
    throw new Error(`morphology: mask of ${mask.length} values for ${width}x${height}`);
  const [lo, hi] = reach(k, iterations);
  // Along each axis: out[i] = any / all of in[i + lo .. i + hi] within the image, via prefix counts.
  const pass = (src: Uint8Array, len: number, count: number, stride: number, step: number): Uint8Array => {
    const dst = new Uint8Array(src.length);
    const prefix = new Int32Array(len + 1);
    for (let line = 0; line < count; line++) {
      const base = line * stride;
      for (let i = 0; i < len; i++) prefix[i + 1] = prefix[i]! + (src[base + i * step] ? 1 : 0);
      for (let i = 0; i < len; i++) {
        const a = Math.max(0, i + lo);
        const b = Math.min(len - 1, i + hi);
        const on = b >= a ? prefix[b + 1]! - prefix[a]! : 0;
        dst[base + i * step] = (dilate ? on > 0 : on === b - a + 1 && b >= a) ? 1 : 0;
      }
    }
    return dst;
  };
  const rows = pass(mask, width, height, width, 1);
  return pass(rows, height, width, 1, width);
}

export const dilateRect = (mask: Uint8Array, width: number, height: number, k: number, iterations = 1) =>
  morph(mask, width, height, k, iterations, true);

export const erodeRect = (mask: Uint8Array, width: number, height: number, k: number, iterations = 1) =>
  morph(mask, width, height, k, iterations, false);

/**
 * Leffa's hole_fill: the one-pixel border is cleared, then every 0 pixel that the 0 region touching the top-left
 * corner does not reach (4-connected) is set. Input and output are 0 / 255.
 */
export function holeFill(img: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let y = 1; y < height - 1; y++)
    for (let x = 1; x < width - 1; x++) out[y * width + x] = img[y * width + x] ? 255 : 0;
  const reached = new Uint8Array(img.length);
  const stack = [0];
  reached[0] = 1;
  while (stack.length) {
    const i = stack.pop()!;
    const x = i % width;
    const y = (i - x) / width;
    const visit = (j: number) => {
      if (!reached[j] && out[j] === 0) {
        reached[j] = 1;
        stack.push(j);
      }
    };
    if (x > 0) visit(i - 1);
    if (x + 1 < width) visit(i + 1);
    if (y > 0) visit(i - width);
    if (y + 1 < height) visit(i + width);
  }
  for (let i = 0; i < out.length; i++) if (!reached[i]) out[i] = 255;
  return out;
}
