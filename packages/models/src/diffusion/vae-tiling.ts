/**
 * Tiled VAE encoding and decoding with the semantics of diffusers' `AutoencoderKL.enable_tiling()`
 * (`tiled_encode`, `tiled_decode`, `blend_v`, `blend_h`): the input is cut into overlapping square tiles, each
 * tile runs through the encoder or decoder alone, and each output tile is blended into its upper and left
 * neighbours over a quarter of its size before the tiles are cropped and joined. Memory then depends on the
 * tile size instead of the image size, at the price of a slightly different result (GroupNorm statistics and
 * convolution borders are per tile).
 */
import * as T from '@leffa-webgpu/core';
import { CONV_TILES, type ConvVariant, MAX_WORKGROUPS_PER_DIM } from '@leffa-webgpu/kernels-wgsl';

/** What tiling reads of a VAE config (VaeConfig has it; declared here so that vae.ts can import this file). */
export interface VaeLevels {
  /** Channels per resolution level, finest first (diffusers' block_out_channels). */
  blockOutChannels: readonly number[];
  /** The decoder's, when wider or narrower than the encoder's (VaeConfig.decoderBlockOutChannels). */
  decoderBlockOutChannels?: readonly number[];
}

export interface VaeTilingOptions {
  /** Side of an image tile (diffusers' tile_sample_min_size: the VAE config's sample_size, 512 for SD). */
  tileSampleSize?: number;
  /** Side of a latent tile (diffusers' tile_latent_min_size); default the image tile over the downsampling. */
  tileLatentSize?: number;
  /** Fraction of a tile shared with its neighbour (diffusers' tile_overlap_factor, 0.25). */
  overlapFactor?: number;
}

/** Resolved tiling settings of an AutoencoderKL. */
export interface VaeTiling {
  tileSampleSize: number;
  tileLatentSize: number;
  overlapFactor: number;
}

/** diffusers' defaults: 512-pixel tiles (the SD VAEs' sample_size), latent tiles 8x smaller, 25% overlap. */
export function resolveVaeTiling(config: VaeLevels, options: VaeTilingOptions = {}): VaeTiling {
  const tileSampleSize = options.tileSampleSize ?? 512;
  const factor = 2 ** (config.blockOutChannels.length - 1);
  const tileLatentSize = options.tileLatentSize ?? Math.trunc(tileSampleSize / factor);
  const overlapFactor = options.overlapFactor ?? 0.25;
  for (const [name, v] of [
    ['tileSampleSize', tileSampleSize],
    ['tileLatentSize', tileLatentSize],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 1))
      throw new Error(`AutoencoderKL tiling: ${name} must be a positive integer, got ${v}`);
  }
  if (!(overlapFactor >= 0 && overlapFactor < 1))
    throw new Error(`AutoencoderKL tiling: overlapFactor must be in [0, 1), got ${overlapFactor}`);
  // diffusers steps by int(tile * (1 - overlap)); a step of 0 would never advance.
  if (Math.trunc(Math.min(tileSampleSize, tileLatentSize) * (1 - overlapFactor)) < 1)
    throw new Error(
      `AutoencoderKL tiling: tiles of ${tileSampleSize} (image) / ${tileLatentSize} (latent) with overlap ${overlapFactor} never advance`,
    );
  return { tileSampleSize, tileLatentSize, overlapFactor };
}

/**
 * The weights y/e and 1 - y/e (y < e) along `axis` (2: rows, 3: columns) of a rank-4 tensor, each computed in
 * double and rounded to float32 once, as PyTorch rounds the Python scalars it multiplies by.
 */
function ramps(extent: number, axis: 2 | 3): [T.Tensor, T.Tensor] {
  const shape = axis === 2 ? [1, 1, extent, 1] : [1, 1, 1, extent];
  const ramp = (f: (y: number) => number) =>
    T.tensor(
      Float32Array.from({ length: extent }, (_, y) => f(y)),
      shape,
    );
  return [ramp((y) => 1 - y / extent), ramp((y) => y / extent)];
}

/**
 * diffusers' blend_v (axis 2) and blend_h (axis 3): the first e = min(extent, both sizes) rows (columns) of `b`
 * become a's last e ones x (1 - y/e) + b's x y/e. Returns the blended copy of `b` (diffusers writes into b).
 * Computed in float32 and cast back to b's dtype.
 */
export function vaeBlend(a: T.Tensor, b: T.Tensor, extent: number, axis: 2 | 3): T.Tensor {
  const e = Math.min(a.shape[axis]!, b.shape[axis]!, extent);
  if (e <= 0) return b.alias();
  return T.tidy(() => {
    const [keepA, keepB] = ramps(e, axis);
    const fromA = T.cast(T.narrow(a, axis, a.shape[axis]! - e, e), 'float32');
    const fromB = T.cast(T.narrow(b, axis, 0, e), 'float32');
    const head = T.cast(T.add(T.mul(fromA, keepA), T.mul(fromB, keepB)), b.dtype);
    const rest = b.shape[axis]! - e;
    return rest > 0 ? T.concat([head, T.narrow(b, axis, e, rest)], axis) : head;
  });
}

/**
 * The tile loop shared by tiled_encode and tiled_decode (an input within one tile runs whole): input tiles of `inTile` at a stride of
 * int(inTile x (1 - overlap)), `run` on each (in its own scope, so only its output stays), output tiles blended
 * with the already blended tile above and to the left over int(outTile x overlap), cropped to
 * outTile - that, and joined.
 */
function tiled(
  x: T.Tensor,
  inTile: number,
  outTile: number,
  overlap: number,
  run: (t: T.Tensor) => T.Tensor,
): T.Tensor {
  const [H, W] = [x.shape[2]!, x.shape[3]!];
  // As diffusers: an input no larger than one tile runs whole.
  if (H <= inTile && W <= inTile) return run(x);
  const stride = Math.trunc(inTile * (1 - overlap));
  const blendExtent = Math.trunc(outTile * overlap);
  const rowLimit = outTile - blendExtent;
  const rows: T.Tensor[][] = [];
  const joined: T.Tensor[] = [];
  try {
    for (let i = 0; i < H; i += stride) {
      const row: T.Tensor[] = [];
      rows.push(row);
      for (let j = 0; j < W; j += stride) {
        let tile = T.tidy(() =>
          run(T.slice(x, [null, null, { start: i, end: i + inTile }, { start: j, end: j + inTile }])),
        );
        // diffusers blends in place, in raster order: the neighbours used are already blended.
        const above = rows.length > 1 ? rows[rows.length - 2]![row.length] : undefined;
        if (above) {
          const next = vaeBlend(above, tile, blendExtent, 2);
          tile.dispose();
          tile = next;
        }
        const left = row[row.length - 1];
        if (left) {
          const next = vaeBlend(left, tile, blendExtent, 3);
          tile.dispose();
          tile = next;
        }
        row.push(tile);
      }
      joined.push(
        T.tidy(() =>
          T.concat(
            row.map((t) => T.slice(t, [null, null, { end: rowLimit }, { end: rowLimit }])),
            3,
          ),
        ),
      );
      // The row above is no longer needed once this one is blended.
      if (rows.length > 1) T.dispose(rows[rows.length - 2]);
    }
    return T.concat(joined, 2);
  } finally {
    T.dispose(rows);
    T.dispose(joined);
  }
}

/** tiled_encode: images [B, C, H, W] to the encoder's moments (after quant_conv), tile by tile. */
export function tiledEncode(x: T.Tensor, tiling: VaeTiling, encodeTile: (tile: T.Tensor) => T.Tensor): T.Tensor {
  return tiled(x, tiling.tileSampleSize, tiling.tileLatentSize, tiling.overlapFactor, encodeTile);
}

/** tiled_decode: latents [B, c, h, w] (after scaling) to images, tile by tile (post_quant_conv per tile). */
export function tiledDecode(z: T.Tensor, tiling: VaeTiling, decodeTile: (tile: T.Tensor) => T.Tensor): T.Tensor {
  return tiled(z, tiling.tileLatentSize, tiling.tileSampleSize, tiling.overlapFactor, decodeTile);
}

/** What decides whether a VAE of some size runs in one piece on an adapter. */
export interface VaeDeviceLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  /** The implicit-GEMM convolution variant the adapter runs (its output tile sets the dispatch size). */
  convVariant: ConvVariant;
}

/** The active device's limits and convolution variant. */
export function vaeDeviceLimits(device: T.Device = T.activeDevice()): VaeDeviceLimits {
  const { maxStorageBufferBindingSize, maxBufferSize } = device.gpu.limits;
  return { maxStorageBufferBindingSize, maxBufferSize, convVariant: T.convVariantFor(device) };
}

/** (channels, pixels) of the largest convolution outputs at each resolution of the decoder (the larger side). */
function convOutputs(config: VaeLevels, h: number, w: number): [number, number][] {
  const enc = config.blockOutChannels;
  const dec = config.decoderBlockOutChannels ?? enc;
  // The wider of the two at each level bounds both (a decoder may be wider than its encoder).
  const boc = enc.map((c, k) => Math.max(c, dec[k]!));
  const n = boc.length;
  const out: [number, number][] = [];
  // Encoder: block i's channels at resolution 2^-i; decoder: up block i ends at boc[n-1-i] channels and (but the
  // last) upsamples them to the next resolution, so boc[k] also appears one level finer than in the encoder.
  for (let k = 0; k < n; k++) {
    const px = Math.ceil(h / 2 ** k) * Math.ceil(w / 2 ** k);
    out.push([boc[k]!, px]);
    if (k + 1 < n) out.push([boc[k + 1]!, px]);
  }
  return out;
}

/**
 * Whether every activation of the VAE on an [h, w] image (batch 1) fits one storage binding and every
 * convolution's output tiles fit one dispatch dimension of the adapter's implicit-GEMM kernel.
 */
export function vaeFitsDevice(
  config: VaeLevels,
  h: number,
  w: number,
  bytesPerElement: number,
  limits: VaeDeviceLimits,
): boolean {
  const binding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const tile = CONV_TILES[limits.convVariant];
  return convOutputs(config, h, w).every(
    ([c, px]) =>
      c * px * bytesPerElement <= binding && Math.ceil(c / tile.m) * Math.ceil(px / tile.n) <= MAX_WORKGROUPS_PER_DIM,
  );
}

/**
 * The image tile for a device: diffusers' 512 where it fits, else the largest multiple of 32 below it that does
 * (multiples of 32 keep the tile stride, 3/4 of the tile, on the latent grid). Throws if even 32 does not fit.
 */
export function vaeTileSizeFor(config: VaeLevels, bytesPerElement: number, limits: VaeDeviceLimits): number {
  for (let s = 512; s >= 32; s -= 32) if (vaeFitsDevice(config, s, s, bytesPerElement, limits)) return s;
  throw new Error('AutoencoderKL tiling: no tile size from 32 to 512 fits this adapter');
}
