/**
 * The PNG codec (fast-png, pure JavaScript, so it runs in browsers too): RGB and grey images, and label maps as
 * 8-bit palette PNGs (the layout of LIP/CIHP parsing files). Every decoder checks the header's declared size first
 * (image-limits.ts) and verifies the chunk CRCs.
 */
import { type DecodedPng, decode, encode } from 'fast-png';
import { checkDeclaredSize } from './image-limits.js';

/** An 8-bit RGB image, row-major HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A label map: one byte per pixel. */
export interface LabelMap {
  width: number;
  height: number;
  labels: Uint8Array;
}

/** Whether the bytes start with PNG's signature (only its first four bytes are looked at). */
export const isPng = (b: Uint8Array) =>
  b.length > 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;

/** Encodes RGB (or single-channel grey) pixels as an 8-bit PNG of the same channels. */
export function encodePng(image: RgbImage): Uint8Array {
  const { width, height, data } = image;
  const channels = data.length / (width * height);
  if (channels !== 3 && channels !== 1)
    throw new Error(`encodePng: ${data.length} bytes is neither RGB nor grey for ${width}x${height}`);
  return encode({ width, height, data, depth: 8, channels });
}

/**
 * Encodes a label map as an 8-bit palette PNG whose pixel index is the label (the layout of LIP/CIHP parsing
 * files, which PIL reads back as mode 'P' with the same indices).
 */
export function encodeLabelPng(map: LabelMap, palette: readonly (readonly [number, number, number])[]): Uint8Array {
  const { width, height, labels } = map;
  if (palette.length === 0 || palette.length > 256)
    throw new Error(`encodeLabelPng: ${palette.length} palette entries, expected 1..256`);
  if (labels.length !== width * height)
    throw new Error(`encodeLabelPng: ${labels.length} labels for ${width}x${height}`);
  for (const l of labels)
    if (l >= palette.length)
      throw new Error(`encodeLabelPng: label ${l} has no palette colour (${palette.length} entries)`);
  return encode({
    width,
    height,
    data: labels,
    depth: 8,
    channels: 1,
    palette: palette.map((c) => [c[0], c[1], c[2]]),
  });
}

/** Scales `depth`-bit samples to 0..255, rounding to nearest. */
const to8bit = (depth: number) => {
  const max = 2 ** depth - 1;
  return depth === 8 ? (v: number) => v : (v: number) => Math.floor((v * 255) / max + 0.5);
};

/** Header check, then fast-png's decode with CRCs verified; errors name the source. */
function decodeChecked(bytes: Uint8Array, source: string, maxPixels?: number): DecodedPng {
  if (!isPng(bytes)) throw new Error(`${source}: not a PNG (no PNG signature)`);
  checkDeclaredSize(bytes, source, maxPixels);
  // fast-png 8 lays out interlaced rows of 1/2/4-bit pixels as if a pixel took a byte: refuse rather than misread.
  if (bytes.length > 28 && bytes[24]! < 8 && bytes[28] === 1) {
    throw new Error(
      `${source}: interlaced (Adam7) PNG with ${bytes[24]}-bit samples is not supported; save it non-interlaced or at 8 bits`,
    );
  }
  try {
    return decode(bytes, { checkCrc: true });
  } catch (e) {
    throw new Error(`${source}: not a readable PNG (${(e as Error).message})`);
  }
}

/**
 * The raw samples of a decoded PNG, one array entry per channel per pixel: rows of 1/2/4-bit samples unpacked
 * (palette indices or grey levels, not yet scaled), 8- and 16-bit samples as they are.
 */
function unpackSamples(png: DecodedPng): Uint8Array | Uint16Array {
  const { width, height, depth, channels, data } = png;
  if (depth >= 8)
    return data instanceof Uint8ClampedArray ? new Uint8Array(data.buffer, data.byteOffset, data.length) : data;
  const perRow = width * channels;
  const stride = Math.ceil((perRow * depth) / 8);
  const mask = (1 << depth) - 1;
  const out = new Uint8Array(perRow * height);
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < perRow; i++) {
      const bit = i * depth;
      out[y * perRow + i] = (data[y * stride + (bit >> 3)]! >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/**
 * The image as 8-bit RGBA: palette colours (with tRNS alphas) looked up, grey expanded, samples of other depths
 * scaled to 0..255 with rounding, and a tRNS colour key (compared on the stored samples) made fully transparent.
 */
function toRgba(png: DecodedPng, source: string): Uint8Array {
  const { width, height, depth, channels } = png;
  const n = width * height;
  const samples = unpackSamples(png);
  const rgba = new Uint8Array(4 * n);
  if (png.palette) {
    const palette = png.palette;
    for (let i = 0; i < n; i++) {
      const c = palette[samples[i]!];
      if (!c)
        throw new Error(
          `${source}: pixel ${i} has palette index ${samples[i]}, the palette has ${palette.length} colours`,
        );
      rgba.set([c[0]!, c[1]!, c[2]!, c[3] ?? 255], 4 * i);
    }
    return rgba;
  }
  const scale = to8bit(depth);
  const key = png.transparency && png.transparency.length === (channels >= 3 ? 3 : 1) ? png.transparency : null;
  const colour = channels >= 3 ? 3 : 1;
  for (let i = 0; i < n; i++) {
    const s = i * channels;
    if (
      key &&
      (colour === 1
        ? samples[s] === key[0]
        : samples[s] === key[0] && samples[s + 1] === key[1] && samples[s + 2] === key[2])
    )
      continue; // stays 0,0,0,0
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = scale(samples[s + (colour === 3 ? c : 0)]!);
    rgba[4 * i + 3] = channels === 2 || channels === 4 ? scale(samples[s + channels - 1]!) : 255;
  }
  return rgba;
}

/**
 * Decodes a PNG of any colour type and bit depth to 8-bit RGB, alpha composited on white. Refuses, before
 * decoding, an image whose header declares more than `maxPixels` (default: see image-limits.ts, 50 megapixels).
 */
export function decodePng(bytes: Uint8Array, source = 'png', maxPixels?: number): RgbImage {
  const png = decodeChecked(bytes, source, maxPixels);
  const rgba = toRgba(png, source);
  const n = png.width * png.height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3]! / 255;
    for (let c = 0; c < 3; c++) data[3 * i + c] = Math.round(rgba[4 * i + c]! * a + 255 * (1 - a));
  }
  return { width: png.width, height: png.height, data };
}

/**
 * Reads a label map stored as PNG: a palette image yields its palette indices (the usual LIP/CIHP parsing
 * files), a grey or RGB image its first channel scaled to 8 bits (grey-level label files).
 */
export function decodeLabelPng(bytes: Uint8Array, source = 'labels', options: { maxPixels?: number } = {}): LabelMap {
  if (!isPng(bytes)) throw new Error(`${source}: label maps must be PNG (lossless); got another format`);
  const png = decodeChecked(bytes, source, options.maxPixels);
  const { width, height, channels, depth } = png;
  const samples = unpackSamples(png);
  const labels = new Uint8Array(width * height);
  if (png.palette) {
    const colours = png.palette.length;
    for (let i = 0; i < labels.length; i++) {
      const l = samples[i]!;
      if (l >= colours)
        throw new Error(`${source}: pixel ${i} has palette index ${l}, the palette has ${colours} colours`);
      labels[i] = l;
    }
  } else {
    const scale = to8bit(depth);
    for (let i = 0; i < labels.length; i++) labels[i] = scale(samples[i * channels]!);
  }
  return { width, height, labels };
}
