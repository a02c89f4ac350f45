import { readFileSync } from 'node:fs';
import { crc32, deflateSync } from 'node:zlib';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { type RgbImage, decodePng } from './png.js';

const isPng = (b: Uint8Array) => b.length > 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
const isJpeg = (b: Uint8Array) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Decodes PNG or JPEG bytes (told apart by their signature, not the file name) to RGB. */
export function decodeImage(bytes: Uint8Array, source = 'image'): RgbImage {
  if (isPng(bytes)) return decodePng(bytes, source);
  if (isJpeg(bytes)) {
    let img: { width: number; height: number; data: Uint8Array };
    try {
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 2048 });
    } catch (e) {
      throw new Error(`${source}: not a readable JPEG (${(e as Error).message})`);
    }
    return { width: img.width, height: img.height, data: img.data };
  }
  throw new Error(`${source}: neither PNG nor JPEG (first bytes ${Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ')})`);
}

export function readImage(path: string): RgbImage {
  return decodeImage(new Uint8Array(readFileSync(path)), path);
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

/** A label map: one byte per pixel. */
export interface LabelMap {
  width: number;
  height: number;
  labels: Uint8Array;
}

/**
 * Reads a label map stored as PNG: a palette image yields its palette indices (the usual LIP/CIHP parsing
 * files), a grey or RGB image its first channel (grey-level label files).
 */
export function decodeLabelPng(bytes: Uint8Array, source = 'labels'): LabelMap {
  if (!isPng(bytes)) throw new Error(`${source}: label maps must be PNG (lossless); got another format`);
  let png: { width: number; height: number; data: Uint8Array; palette?: number[][] | boolean; colorType?: number };
  try {
    png = PNG.sync.read(Buffer.from(bytes)) as unknown as typeof png;
  } catch (e) {
    throw new Error(`${source}: not a readable PNG (${(e as Error).message})`);
  }
  const { width, height, data } = png;
  const labels = new Uint8Array(width * height);
  if (png.colorType === 3 && Array.isArray(png.palette)) {
    // pngjs expands palettes to RGBA; map each colour back to its first palette index.
    const index = new Map<number, number>();
    png.palette.forEach((c, i) => {
      const key = (c[0]! << 16) | (c[1]! << 8) | c[2]!;
      if (!index.has(key)) index.set(key, i);
    });
    for (let i = 0; i < width * height; i++) labels[i] = index.get((data[4 * i]! << 16) | (data[4 * i + 1]! << 8) | data[4 * i + 2]!) ?? 0;
  } else {
    for (let i = 0; i < width * height; i++) labels[i] = data[4 * i]!;
  }
  return { width, height, labels };
}

export function readLabelMap(path: string): LabelMap {
  return decodeLabelPng(new Uint8Array(readFileSync(path)), path);
}

/**
 * Encodes a label map as an 8-bit palette PNG whose pixel index is the label (the layout of LIP/CIHP parsing
 * files). pngjs writes no palette images, so the few chunks are assembled here.
 */
export function encodeLabelPng(map: LabelMap, palette: readonly (readonly [number, number, number])[]): Uint8Array {
  const { width, height, labels } = map;
  if (palette.length === 0 || palette.length > 256) throw new Error(`encodeLabelPng: ${palette.length} palette entries, expected 1..256`);
  const rows = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const l = labels[y * width + x]!;
      if (l >= palette.length) throw new Error(`encodeLabelPng: label ${l} has no palette colour (${palette.length} entries)`);
      rows[y * (width + 1) + 1 + x] = l; // each row starts with filter type 0
    }
  }
  const chunk = (type: string, body: Uint8Array) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 3, 0, 0, 0], 8); // bit depth 8, colour type 3 (palette), deflate, adaptive filters, no interlace
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Uint8Array(
    Buffer.concat([signature, chunk('IHDR', ihdr), chunk('PLTE', Buffer.from(palette.flat())), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]),
  );
}
