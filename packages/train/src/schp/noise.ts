/**
 * Label noise for the self-correction experiment: the kinds of mistakes human annotators make on LIP, applied
 * to clean synthetic parsing maps so that the benefit of SCHP's label refinement can be measured.
 */
import { regionsOf, Rng } from '@leffa-webgpu/data';

export interface LabelNoiseOptions {
  /** 0 = clean (output equals input), 1 = every region disturbed. */
  level: number;
  seed: number;
  /** Left/right pairs, whose regions are swapped with each other rather than with a random class. */
  pairs?: readonly (readonly [number, number])[];
  numClasses?: number;
  /** Labels never produced or touched (e.g. 255). */
  ignoreIndex?: number;
}

const LIP_PAIRS: readonly (readonly [number, number])[] = [
  [14, 15],
  [16, 17],
  [18, 19],
];

/**
 * Disturbs a row-major label map, deterministically in `seed`. Each foreground region (4-connected component
 * of one non-background label), independently:
 * - with probability `level`, its boundary moves by 1-2 pixels: dilation (the region takes over neighbouring
 *   pixels of other labels) or erosion (its border pixels take the label of a neighbour outside it), chosen
 *   with equal odds, as a sloppy polygon would;
 * - with probability `level / 2`, the region is relabelled: a left/right part becomes its partner (the most
 *   common LIP mistake), any other part a random other foreground class.
 * Background regions are only changed through their neighbours' dilation/erosion.
 */
export function corruptLabels(
  labels: Uint8Array,
  width: number,
  height: number,
  options: LabelNoiseOptions,
): Uint8Array {
  const { level, seed } = options;
  if (!(level >= 0 && level <= 1)) throw new Error(`corruptLabels: level must be in [0, 1], got ${level}`);
  if (labels.length !== width * height)
    throw new Error(`corruptLabels: ${labels.length} labels do not fill ${height}x${width}`);
  const out = labels.slice();
  if (level === 0) return out;
  const numClasses = options.numClasses ?? 20;
  const ignore = options.ignoreIndex ?? 255;
  const partner = new Map<number, number>();
  for (const [a, b] of options.pairs ?? LIP_PAIRS) partner.set(a, b).set(b, a);
  const rng = new Rng(seed ^ 0x6c8e9cf5);
  const { id, value: label } = regionsOf(labels, width, height);
  // Decide every region's fate up front (in region order), so the draws do not depend on the edits.
  const plans = label.map((l) => {
    const active = l !== 0 && l !== ignore;
    const moveDraw = rng.next();
    const kind = rng.chance(0.5) ? ('dilate' as const) : ('erode' as const);
    const radius = rng.int(1, 3);
    const swapDraw = rng.next();
    const other = rng.int(1, numClasses - 1);
    return {
      move: active && moveDraw < level ? kind : null,
      radius,
      // `other` in 1..numClasses-2 skips over l itself so that a relabel always changes the class.
      relabel: active && swapDraw < level / 2 ? (partner.get(l) ?? (other >= l ? other + 1 : other)) : null,
    };
  });
  // Bounding boxes, so that each boundary move only visits its region's neighbourhood.
  const box = label.map(() => [width, height, -1, -1]);
  for (let i = 0; i < id.length; i++) {
    const b = box[id[i]!]!;
    const x = i % width;
    const y = (i - x) / width;
    b[0] = Math.min(b[0]!, x);
    b[1] = Math.min(b[1]!, y);
    b[2] = Math.max(b[2]!, x);
    b[3] = Math.max(b[3]!, y);
  }
  // Boundary moves, each region against the original map (so that edits do not cascade).
  for (let r = 0; r < plans.length; r++) {
    const p = plans[r]!;
    if (!p.move) continue;
    const l = label[r]!;
    const [bx0, by0, bx1, by1] = box[r]!.map((v, k) =>
      k < 2 ? Math.max(0, v - p.radius) : Math.min((k === 2 ? width : height) - 1, v + p.radius),
    ) as [number, number, number, number];
    for (let y = by0; y <= by1; y++) {
      for (let x = bx0; x <= bx1; x++) {
        const i = y * width + x;
        const inside = id[i] === r;
        if (p.move === 'dilate' ? inside || labels[i] === ignore : !inside) continue;
        // Nearest pixel (in window order) on the other side of the region's boundary within the radius.
        let found = -1;
        for (let d = 1; d <= p.radius && found < 0; d++) {
          for (let yy = Math.max(0, y - d); yy <= Math.min(height - 1, y + d) && found < 0; yy++) {
            for (let xx = Math.max(0, x - d); xx <= Math.min(width - 1, x + d); xx++) {
              const j = yy * width + xx;
              const hit = p.move === 'dilate' ? id[j] === r : id[j] !== r && labels[j] !== ignore;
              if (hit) {
                found = j;
                break;
              }
            }
          }
        }
        if (found >= 0) out[i] = p.move === 'dilate' ? l : labels[found]!;
      }
    }
  }
  // Relabels act on the pixels that still carry the region's original label.
  for (let i = 0; i < out.length; i++) {
    const r = id[i]!;
    const to = plans[r]!.relabel;
    if (to !== null && out[i] === label[r]) out[i] = to;
  }
  return out;
}
