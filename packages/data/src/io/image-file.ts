/**
 * Image files in Node: PNG or JPEG decoding by signature (JPEG through jpeg-js, or sharp when it is installed for
 * the async readers), and the file readers/writers.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@leffa-webgpu/core';
import * as jpeg from 'jpeg-js';
import { checkDeclaredSize, declaredSize, getDefaultMaxPixels } from './image-limits.js';
import { type LabelMap, type RgbImage, decodeLabelPng, decodePng, encodePng, isPng } from './png.js';
import { fitWithin, resizeRgb } from './resize.js';
import { decodeJpegWithSharp, loadSharp } from './sharp.js';

const isJpeg = (b: Uint8Array) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

export interface DecodeOptions {
  /**
   * Apply a JPEG's EXIF orientation tag (phone photos are stored sideways with a tag saying how to turn
   * them). Off by default: dataset files are annotated on the stored pixels, as PIL reads them.
   */
  exifOrientation?: boolean;
  /**
   * Most pixels an image may declare (default `DEFAULT_MAX_PIXELS`, 50 megapixels, or what `setDefaultMaxPixels`
   * set): a larger declaration is refused from the header, before decoding (decompression bombs).
   */
  maxPixels?: number;
}

/** Decodes PNG or JPEG bytes (told apart by their signature, not the file name) to RGB. */
export function decodeImage(bytes: Uint8Array, source = 'image', options: DecodeOptions = {}): RgbImage {
  const maxPixels = options.maxPixels ?? getDefaultMaxPixels();
  if (isPng(bytes)) return decodePng(bytes, source, maxPixels);
  if (isJpeg(bytes)) {
    checkDeclaredSize(bytes, source, maxPixels);
    let img: { width: number; height: number; data: Uint8Array };
    try {
      // jpeg-js's own limits as a second guard (a frame header after the first one, progressive scans).
      img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: false,
        maxResolutionInMP: maxPixels / 1e6,
        maxMemoryUsageInMB: Math.max(512, Math.ceil((maxPixels * 16) / 2 ** 20)),
      });
    } catch (e) {
      throw new Error(`${source}: not a readable JPEG (${(e as Error).message})`);
    }
    const rgb = { width: img.width, height: img.height, data: img.data };
    // jpeg-js leaves the EXIF orientation to the caller.
    return options.exifOrientation ? applyOrientation(rgb, jpegOrientation(bytes)) : rgb;
  }
  throw new Error(
    `${source}: neither PNG nor JPEG (first bytes ${Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ')})`,
  );
}

export function readImage(path: string, options: DecodeOptions = {}): RgbImage {
  return decodeImage(new Uint8Array(readFileSync(path)), path, options);
}

export interface DecodeAsyncOptions extends DecodeOptions {
  /**
   * Shrink the (upright) image to fit inside this size keeping its aspect ratio (`fitWithin`, the content of
   * a letterbox to the same size); an image already inside it is left as it is.
   */
  fit?: { height: number; width: number };
  /** Decode (and shrink) JPEG with sharp when it is installed (default true); false always uses jpeg-js. */
  sharp?: boolean;
}

/**
 * `decodeImage`, plus an optional shrink to fit, through sharp when it is installed and the bytes are JPEG (about
 * ten times faster; pixels within a few levels of the pure-JS path, see the package README), through jpeg-js or
 * fast-png and `resizeRgb` otherwise. The declared size is checked against the pixel limit first either way.
 */
export async function decodeImageAsync(
  bytes: Uint8Array,
  source = 'image',
  options: DecodeAsyncOptions = {},
): Promise<RgbImage> {
  const maxPixels = options.maxPixels ?? getDefaultMaxPixels();
  const shrinkTo = (h: number, w: number) => {
    const size = options.fit ? fitWithin(h, w, options.fit.height, options.fit.width) : null;
    return size && size.height <= h && size.width <= w && size.height * size.width < h * w ? size : null;
  };
  const sharp = isJpeg(bytes) && options.sharp !== false ? await loadSharp() : null;
  if (sharp?.available) {
    checkDeclaredSize(bytes, source, maxPixels);
    const declared = declaredSize(bytes);
    if (declared) {
      const exifOrientation = options.exifOrientation === true;
      const turned = exifOrientation && jpegOrientation(bytes) >= 5;
      const [h, w] = turned ? [declared.width, declared.height] : [declared.height, declared.width];
      const size = shrinkTo(h, w);
      return decodeJpegWithSharp(sharp.sharp, bytes, source, { maxPixels, exifOrientation, ...(size ? { size } : {}) });
    }
  }
  const image = decodeImage(bytes, source, options);
  const size = shrinkTo(image.height, image.width);
  return size ? resizeRgb(image, size.height, size.width) : image;
}

export async function readImageAsync(path: string, options: DecodeAsyncOptions = {}): Promise<RgbImage> {
  return decodeImageAsync(new Uint8Array(await readFile(path)), path, options);
}

/**
 * The EXIF orientation (1..8) of JPEG bytes: the 0x0112 tag of IFD0 in the APP1 'Exif' segment; 1 when there
 * is none or the segment is malformed (an unreadable tag should not stop decoding).
 */
export function jpegOrientation(bytes: Uint8Array): number {
  let p = 2;
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) return 1;
    const marker = bytes[p + 1]!;
    if (marker === 0xff) {
      p++; // fill byte
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return 1; // image data: no headers follow
    const len = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    if (len < 2) return 1;
    const start = p + 4;
    if (
      marker === 0xe1 &&
      len >= 8 &&
      String.fromCharCode(...bytes.subarray(start, start + 4)) === 'Exif' &&
      bytes[start + 4] === 0 &&
      bytes[start + 5] === 0
    ) {
      return tiffOrientation(bytes.subarray(start + 6, Math.min(bytes.length, p + 2 + len)));
    }
    p += 2 + len;
  }
  return 1;
}

function tiffOrientation(t: Uint8Array): number {
  if (t.length < 8) return 1;
  const little = t[0] === 0x49 && t[1] === 0x49;
  if (!little && !(t[0] === 0x4d && t[1] === 0x4d)) return 1;
  const view = new DataView(t.buffer, t.byteOffset, t.byteLength);
  if (view.getUint16(2, little) !== 42) return 1;
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > t.length) return 1;
  const count = view.getUint16(ifd, little);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + 12 * i;
    if (e + 12 > t.length) break;
    // A SHORT value sits in the first two bytes of the entry's value field.
    if (view.getUint16(e, little) === 0x0112) {
      const v = view.getUint16(e + 8, little);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/** Turns stored pixels upright for an EXIF orientation (2, 4: mirrored; 3, 6, 8: rotated; 5, 7: transposed). */
export function applyOrientation(image: RgbImage, orientation: number): RgbImage {
  if (orientation <= 1 || orientation > 8) return image;
  const { width: w, height: h, data } = image;
  const swap = orientation >= 5;
  const [W, H] = swap ? [h, w] : [w, h];
  // Output pixel (x, y) reads the stored pixel at (sx, sy).
  type Lookup = (x: number, y: number) => [number, number];
  const maps: Lookup[] = [
    (x, y) => [x, y],
    (x, y) => [x, y],
    (x, y) => [w - 1 - x, y],
    (x, y) => [w - 1 - x, h - 1 - y],
    (x, y) => [x, h - 1 - y],
    (x, y) => [y, x],
    (x, y) => [y, h - 1 - x],
    (x, y) => [w - 1 - y, h - 1 - x],
    (x, y) => [w - 1 - y, x],
  ];
  const at = maps[orientation]!;
  const out = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const [sx, sy] = at(x, y);
      const s = 3 * (sy * w + sx);
      out.set(data.subarray(s, s + 3), 3 * (y * W + x));
    }
  }
  return { width: W, height: H, data: out };
}

/** Encodes RGB pixels as a baseline JPEG (for fixtures and previews). */
export function encodeJpeg(image: RgbImage, quality = 95): Uint8Array {
  const { width, height, data } = image;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba.set(data.subarray(3 * i, 3 * i + 3), 4 * i);
    rgba[4 * i + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ width, height, data: rgba }, quality).data);
}

export function readLabelMap(path: string): LabelMap {
  return decodeLabelPng(new Uint8Array(readFileSync(path)), path);
}

export async function writePng(path: string, image: RgbImage): Promise<void> {
  await writeFileAtomic(path, encodePng(image));
}

export async function readPng(path: string): Promise<RgbImage> {
  return decodePng(new Uint8Array(await readFile(path)), path);
}
