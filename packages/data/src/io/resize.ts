import type { RgbImage } from './png.js';

/**
 * Resizes an RGB image. Shrinking averages every source pixel that overlaps an output pixel (area
 * resampling, no aliasing of garment textures); enlarging interpolates bilinearly between pixel centres.
 */
export function resizeRgb(image: RgbImage, height: number, width: number): RgbImage {
  const { width: w0, height: h0, data } = image;
  if (w0 === width && h0 === height) return image;
  const out = new Uint8Array(width * height * 3);
  const sx = w0 / width;
  const sy = h0 / height;
  for (let y = 0; y < height; y++) {
    const [ya, yb] = sy >= 1 ? [y * sy, (y + 1) * sy] : [0, 0];
    for (let x = 0; x < width; x++) {
      const acc = [0, 0, 0];
      if (sx >= 1 && sy >= 1) {
        const [xa, xb] = [x * sx, (x + 1) * sx];
        let total = 0;
        for (let v = Math.floor(ya); v < Math.min(h0, Math.ceil(yb)); v++) {
          const wy = Math.min(v + 1, yb) - Math.max(v, ya);
          for (let u = Math.floor(xa); u < Math.min(w0, Math.ceil(xb)); u++) {
            const wgt = wy * (Math.min(u + 1, xb) - Math.max(u, xa));
            total += wgt;
            for (let c = 0; c < 3; c++) acc[c]! += wgt * data[3 * (v * w0 + u) + c]!;
          }
        }
        for (let c = 0; c < 3; c++) out[3 * (y * width + x) + c] = Math.round(acc[c]! / total);
      } else {
        const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w0 - 1);
        const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h0 - 1);
        const [x0, y0] = [Math.floor(fx), Math.floor(fy)];
        const [x1, y1] = [Math.min(x0 + 1, w0 - 1), Math.min(y0 + 1, h0 - 1)];
        const [ax, ay] = [fx - x0, fy - y0];
        for (let c = 0; c < 3; c++) {
          const p = (xx: number, yy: number) => data[3 * (yy * w0 + xx) + c]!;
          const top = p(x0, y0) * (1 - ax) + p(x1, y0) * ax;
          const bottom = p(x0, y1) * (1 - ax) + p(x1, y1) * ax;
          out[3 * (y * width + x) + c] = Math.round(top * (1 - ay) + bottom * ay);
        }
      }
    }
  }
  return { width, height, data: out };
}

/** Resizes a one-byte-per-pixel map (labels, masks) by nearest neighbour at pixel centres. */
export function resizeNearest(values: Uint8Array, w0: number, h0: number, height: number, width: number): Uint8Array {
  if (w0 === width && h0 === height) return values;
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const v = Math.min(h0 - 1, Math.floor(((y + 0.5) * h0) / height));
    for (let x = 0; x < width; x++)
      out[y * width + x] = values[v * w0 + Math.min(w0 - 1, Math.floor(((x + 0.5) * w0) / width))]!;
  }
  return out;
}

/**
 * The size an h0 x w0 image takes when fitted inside `height` x `width` keeping its aspect ratio (a letterbox's
 * content): the scale is the smaller of the two ratios, each side rounded and kept within 1..the bound.
 */
export function fitWithin(h0: number, w0: number, height: number, width: number): { height: number; width: number } {
  const s = Math.min(height / h0, width / w0);
  return {
    height: Math.min(height, Math.max(1, Math.round(h0 * s))),
    width: Math.min(width, Math.max(1, Math.round(w0 * s))),
  };
}
