import type * as T from '@leffa-webgpu/core';

/** NCHW float images in [-1, 1] back to HWC uint8, one array per batch entry. */
export async function tensorToImages(t: T.Tensor): Promise<Uint8Array[]> {
  const [n, c, h, w] = t.shape as [number, number, number, number];
  const data = await t.data();
  const plane = h * w;
  return Array.from({ length: n }, (_, b) => {
    const out = new Uint8Array(plane * 3);
    for (let i = 0; i < plane; i++) {
      for (let k = 0; k < 3; k++) {
        const v = data[(b * c + Math.min(k, c - 1)) * plane + i]!;
        out[3 * i + k] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
      }
    }
    return out;
  });
}

/** A {0, 1} mask as a grey image. */
export const maskToImage = (mask: Uint8Array) =>
  Uint8Array.from({ length: mask.length * 3 }, (_, i) => (mask[Math.floor(i / 3)] ? 255 : 0));
