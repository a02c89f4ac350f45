/**
 * The optional native fast path for JPEG in Node: sharp (libvips with libjpeg-turbo), an optional peer dependency.
 * It decodes a 12-megapixel JPEG about ten times faster than jpeg-js and shrinks it while decoding. Nothing needs
 * it: without it (not installed, no binary for the platform) every caller falls back to the pure-JS decoders.
 */
import type { RgbImage } from './png.js';

/** The part of sharp's API used here (its own types stay out of this package's declarations). */
interface SharpPipeline {
  rotate(): SharpPipeline;
  resize(
    width: number,
    height: number,
    options: { fit: 'fill'; kernel: string; fastShrinkOnLoad: boolean },
  ): SharpPipeline;
  toColourspace(space: string): SharpPipeline;
  removeAlpha(): SharpPipeline;
  raw(): SharpPipeline;
  toBuffer(options: {
    resolveWithObject: true;
  }): Promise<{ data: Uint8Array; info: { width: number; height: number; channels: number } }>;
}
type SharpFactory = (input: Uint8Array, options: { limitInputPixels: number }) => SharpPipeline;

/** sharp's factory, or why it cannot be used. */
export type SharpStatus = { available: true; sharp: SharpFactory } | { available: false; reason: string };

let status: Promise<SharpStatus> | undefined;

/** Imports sharp once per process; resolves to why not (the import's error) when it is missing or cannot load. */
export function loadSharp(): Promise<SharpStatus> {
  // The specifier is a variable so that bundlers for browsers do not try to resolve the native package.
  const name = 'sharp';
  status ??= import(name).then(
    (m: { default: SharpFactory }) => ({ available: true as const, sharp: m.default }),
    (e: Error) => ({ available: false as const, reason: e.message.split('\n')[0]! }),
  );
  return status;
}

/**
 * How sharp shrinks: the cubic (Catmull-Rom) kernel on the fully decoded image (no DCT shrink-on-load), which of
 * libvips' kernels came closest to the pure-JS area averaging (mean difference under one level on photos).
 */
const SHRINK = { fit: 'fill', kernel: 'cubic', fastShrinkOnLoad: false } as const;

/**
 * Decodes JPEG bytes with sharp to RGB, turned upright first when `exifOrientation` is set, then shrunk to
 * `size` (its upright height x width) when given. The caller has checked the declared size; sharp's own pixel
 * limit is set to the same `maxPixels` as a second guard.
 */
export async function decodeJpegWithSharp(
  sharp: SharpFactory,
  bytes: Uint8Array,
  source: string,
  options: { maxPixels: number; exifOrientation: boolean; size?: { height: number; width: number } },
): Promise<RgbImage> {
  let pipeline = sharp(bytes, { limitInputPixels: options.maxPixels });
  if (options.exifOrientation) pipeline = pipeline.rotate(); // no angle: from the EXIF orientation tag
  if (options.size) pipeline = pipeline.resize(options.size.width, options.size.height, SHRINK);
  let out: Awaited<ReturnType<SharpPipeline['toBuffer']>>;
  try {
    out = await pipeline.toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new Error(`${source}: not a readable JPEG (sharp: ${(e as Error).message})`);
  }
  const { data, info } = out;
  if (info.channels !== 3) throw new Error(`${source}: sharp returned ${info.channels} channels, expected RGB`);
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}
