import * as T from '@leffa-webgpu/core';

/**
 * `x` [B, C, h, w] on an attention layer's `height` x `width` token grid: itself on its own grid, else adaptive
 * average pooling (the plain average over each cell where the grid divides the latent, as in the UNet's coarser
 * levels; the nearest equivalent where a level's size was rounded up for odd latent sizes).
 */
export const poolToGrid = (x: T.Tensor, height: number, width: number): T.Tensor =>
  x.shape[2] === height && x.shape[3] === width ? x : T.adaptiveAvgPool2d(x, [height, width]);

/** `make` for each distinct grid once, shared by the attention layers that work on it. */
export function onGrids<V>(make: (height: number, width: number) => V): (height: number, width: number) => V {
  const made = new Map<string, V>();
  return (height, width) => {
    const key = `${height}x${width}`;
    if (!made.has(key)) made.set(key, make(height, width));
    return made.get(key)!;
  };
}
