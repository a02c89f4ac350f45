import * as T from '@leffa-webgpu/core';

/** Position i of n on the normalised axis: -1 at the first, 1 at the last (0 when n is 1). */
export const normalisedCoordinate = (i: number, n: number) => (n === 1 ? 0 : -1 + (2 * i) / (n - 1));

/** The normalised coordinates of a height x width key grid, row-major, (x, y) from (-1, -1) to (1, 1). */
export function keyGridCoordinates(height: number, width: number): T.Tensor {
  const c = new Float32Array(height * width * 2);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      c[2 * (y * width + x)] = normalisedCoordinate(x, width);
      c[2 * (y * width + x) + 1] = normalisedCoordinate(y, height);
    }
  }
  return T.tensor(c, [1, 1, height * width, 2]);
}

export interface FlowFieldOptions {
  scale?: number;
  /** Softmax temperature (the Leffa paper uses 2.0). */
  tau?: number;
}

/**
 * Leffa's flow field: F = mean over heads of softmax(q k^T * scale / tau) @ C, where C holds the normalised
 * (x, y) of each key on its height x width grid. Computed by the flash kernel with C as a 2-wide value shared
 * by every batch entry and head, so the N x M map never exists. Returns [B, N, 2], differentiable in q and k.
 */
export function flowField(
  q: T.Tensor,
  k: T.Tensor,
  grid: { height: number; width: number },
  options: FlowFieldOptions = {},
): T.Tensor {
  const M = k.shape[2];
  if (grid.height * grid.width !== M) {
    throw new Error(
      `flowField: key grid ${grid.height}x${grid.width} has ${grid.height * grid.width} positions, k ${T.formatShape(k.shape)} has ${M} keys`,
    );
  }
  const coords = keyGridCoordinates(grid.height, grid.width);
  const scale = (options.scale ?? 1 / Math.sqrt(q.shape[3]!)) / (options.tau ?? 1);
  return T.mean(T.flashAttention(q, k, coords, { scale }), 1);
}
