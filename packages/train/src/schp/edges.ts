/**
 * Edge ground truth for SCHP's edge branch, as the official `generate_edge_tensor` (utils/utils.py) builds it
 * in train.py from the parsing labels: a pixel is marked when its label differs from one of four neighbours
 * (both labels not ignored), then the marks are dilated by a 3x3 square (conv with ones, != 0).
 *
 * The four neighbour relations and which pixel of each pair gets the mark follow the official slicing:
 *   vertical      (y, x) vs (y - 1, x)      marks (y, x)    (its `edge_right` on rows 1..h-1)
 *   horizontal    (y, x) vs (y, x + 1)      marks (y, x)    (`edge_up` on columns 0..w-2)
 *   diagonal      (y, x) vs (y + 1, x + 1)  marks (y, x)    (`edge_upright`)
 *   anti-diagonal (y, x) vs (y + 1, x - 1)  marks (y, x)    (`edge_bottomright`)
 * After the dilation the choice of marked pixel only shifts the band by at most one pixel.
 */

/** The neighbour offsets (dy, dx) of the pixel that gets the mark, in the order above. */
export const EDGE_NEIGHBOURS: readonly (readonly [number, number])[] = [
  [-1, 0],
  [0, 1],
  [1, 1],
  [1, -1],
];

/**
 * Edge map (1 = edge) of one row-major label map of `width` x `height`: label changes towards the four
 * neighbours of EDGE_NEIGHBOURS, pairs with an `ignoreIndex` label skipped, dilated 3x3. The ignored pixels
 * themselves may end up marked by the dilation, as in the official code (the edge loss does not skip them).
 */
export function edgeTargets(labels: ArrayLike<number>, width: number, height: number, ignoreIndex = 255): Uint8Array {
  if (labels.length !== width * height) {
    throw new Error(`edgeTargets: ${labels.length} labels do not fill ${height}x${width} (expected ${width * height})`);
  }
  const raw = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const l = labels[y * width + x]!;
      if (l === ignoreIndex) continue;
      for (const [dy, dx] of EDGE_NEIGHBOURS) {
        const yy = y + dy;
        const xx = x + dx;
        if (yy < 0 || xx < 0 || yy >= height || xx >= width) continue;
        const m = labels[yy * width + xx]!;
        if (m !== ignoreIndex && m !== l) {
          raw[y * width + x] = 1;
          break;
        }
      }
    }
  }
  // 3x3 dilation with zero padding (the official conv2d with a ones kernel, padding 1, then != 0).
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = 0;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(height - 1, y + 1) && !v; yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(width - 1, x + 1) && !v; xx++) v = raw[yy * width + xx]!;
      }
      out[y * width + x] = v;
    }
  }
  return out;
}
