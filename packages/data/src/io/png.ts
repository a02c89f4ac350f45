import { readFile } from 'node:fs/promises';
import { PNG } from 'pngjs';
import { writeFileAtomic } from '@leffa-webgpu/core';
import { checkDeclaredSize } from './image-limits.js';

/** An 8-bit RGB image, row-major HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Encodes RGB (or single-channel grey) pixels as PNG bytes. */
export function encodePng(image: RgbImage): Uint8Array {
  const { width, height, data } = image;
  const channels = data.length / (width * height);
  if (channels !== 3 && channels !== 1) throw new Error(`encodePng: ${data.length} bytes is neither RGB nor grey for ${width}x${height}`);
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data[4 * i] = data[channels * i]!;
    png.data[4 * i + 1] = data[channels * i + (channels === 3 ? 1 : 0)]!;
    png.data[4 * i + 2] = data[channels * i + (channels === 3 ? 2 : 0)]!;
    png.data[4 * i + 3] = 255;
  }
  return new Uint8Array(PNG.sync.write(png));
}

/**
 * Decodes a PNG to RGB (alpha composited on white). Refuses, before decoding, an image whose header declares
 * more than `maxPixels` (default: see image-limits.ts, 50 megapixels).
 */
export function decodePng(bytes: Uint8Array, source = 'png', maxPixels?: number): RgbImage {
  checkDeclaredSize(bytes, source, maxPixels);
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes));
  } catch (e) {
    throw new Error(`${source}: not a readable PNG (${(e as Error).message})`);
  }
  const data = new Uint8Array(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i++) {
    const a = png.data[4 * i + 3]! / 255;
    for (let c = 0; c < 3; c++) data[3 * i + c] = Math.round(png.data[4 * i + c]! * a + 255 * (1 - a));
  }
  return { width: png.width, height: png.height, data };
}

export async function writePng(path: string, image: RgbImage): Promise<void> {
  await writeFileAtomic(path, encodePng(image));
}

export async function readPng(path: string): Promise<RgbImage> {
  return decodePng(new Uint8Array(await readFile(path)), path);
}
