/**
 * The three DensePose renders Leffa's pipelines take, from predicted (or true) IUV maps, through the same
 * renderers the synthetic data uses, so predictions and ground truth look alike:
 * - parula: the part index coloured by parula(I / 24) on black (the VITON-HD condition);
 * - raw: the part index 0..24 repeated over three channels (DressCode's layout);
 * - iuv: (I, U * 255, V * 255) per pixel, black background (pose transfer).
 */
import { renderIuv, renderPartsParula, renderPartsRaw, type RgbImage } from '@leffa-webgpu/data/web';

export interface IuvMaps {
  width: number;
  height: number;
  parts: ArrayLike<number>;
  u: ArrayLike<number>;
  v: ArrayLike<number>;
}

export interface DensePoseRenders {
  parula: RgbImage;
  raw: RgbImage;
  iuv: RgbImage;
}

export function renderDensePose(maps: IuvMaps): DensePoseRenders {
  const { width, height } = maps;
  const n = width * height;
  if (maps.parts.length !== n || maps.u.length !== n || maps.v.length !== n) {
    throw new Error(
      `renderDensePose: ${width}x${height} needs ${n} values per map, got parts ${maps.parts.length}, u ${maps.u.length}, v ${maps.v.length}`,
    );
  }
  const parts = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = maps.parts[i]!;
    if (!(Number.isInteger(p) && p >= 0 && p <= 24))
      throw new Error(`renderDensePose: part index ${p} at pixel ${i} is outside 0..24`);
    parts[i] = p;
  }
  // U/V are clamped: the IUV render stores them as bytes.
  const clamp01 = (a: ArrayLike<number>) => Float32Array.from({ length: n }, (_, i) => Math.min(1, Math.max(0, a[i]!)));
  const img = (data: Uint8Array): RgbImage => ({ width, height, data });
  return {
    parula: img(renderPartsParula(parts)),
    raw: img(renderPartsRaw(parts)),
    iuv: img(renderIuv(parts, clamp01(maps.u), clamp01(maps.v))),
  };
}
