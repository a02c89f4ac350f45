import {
  cachedKernel,
  fields,
  flatKernel,
  type Grid,
  type Kernel,
  makeKernel,
  MAX_WORKGROUPS_PER_DIM,
  readOnly,
  readWrite,
} from './kernel.js';

/**
 * A stride-1, undilated, ungrouped 3x3 convolution computed directly on the image, for CPU adapters with
 * 8-wide subgroups, where it beats both the implicit GEMM and Winograd at few channels:
 *
 * - a workgroup is one 8-lane subgroup owning 8 output channels x 8 strips of 4-24 consecutive output pixels of a
 *   row (one strip per lane, 8 x strip / 4 vec4 accumulators; slidingStripFor picks the strip);
 * - per input channel and kernel row, a lane loads the strip + 2 input values its strip's 3 taps cover, once, and
 *   the weights of one output channel (lane l loads channel m0 + l), which reach every lane by subgroupBroadcast;
 *   so at a strip of 4, 9 loads feed 96 FMAs, against 15 bounds-checked gathers (and their index arithmetic) in the implicit GEMM.
 *   On lavapipe every per-lane load is a loop over the SIMD lanes, so fewer, wider loads pay: with `packed`
 *   weights (slidingWeightKernel) the 3 weights are one vec4, and with `vec` the 6 input values come from
 *   2-3 aligned vec4 chunks; together 3-4 loads instead of 9, same arithmetic.
 *
 * `flip`: the input gradient of a convolution with weight [Cout, Cin, 3, 3] and padding p is this product on dy
 * with the weight flipped and transposed (read in place, or by the packing kernel) and padding 2 - p. Sums run
 * over (channel, ky, kx) in the implicit GEMM's order, so every variant gives the same bits.
 */
export interface SlidingConvSpec {
  /** Read the weight as [C, M, 3, 3] flipped (the input gradient) instead of [M, C, 3, 3]. */
  flip: boolean;
  /** Add bias[m] to the output. */
  bias: boolean;
  padH: number;
  padW: number;
  /** Read the image as vec4 chunks (its width a multiple of 4): a strip's window spans at most 3 of them. */
  vec: boolean;
  /** Read the weights packed by slidingWeightKernel ([C, 3, Mp] vec4 rows) instead of the weight tensor. */
  packed: boolean;
  /** Consecutive output pixels of a row per lane (slidingConvLaunch picks it; default 4). */
  strip?: SlidingStrip;
}

export type SlidingStrip = 4 | 8 | 12 | 16 | 24;
const LANES = 8;

/** The strip's window v[0..strip + 1] = x[row, ix0 .. ix0 + strip + 1], zeros outside the image, one scalar gather each. */
const scalarWindow = (strip: number) => /* wgsl */ `var v: array<f32, ${strip + 2}>;
      for (var t = 0; t < ${strip + 2}; t++) {
        let ix = ix0 + t;
        v[t] = select(0.0, x[rowBase + u32(clamp(ix, 0, i32(params.W) - 1))], rowOk && ix >= 0 && ix < i32(params.W));
      }`;

/**
 * The same window from the aligned vec4 chunks around the strip: column ox0 - padW + t lies in chunk
 * ox0 / 4 + floor((t - padW) / 4); chunks outside the row (or a row outside the image) read as zeros.
 */
function vectorWindow(padW: number, strip: number): string {
  const chunkOf = (t: number) => Math.floor((t - padW) / 4);
  const chunks = [...new Set(Array.from({ length: strip + 2 }, (_, t) => chunkOf(t)))];
  const name = (d: number) => `c${d < 0 ? 'm' : 'p'}${Math.abs(d)}`;
  const loads = chunks.map(
    (d) => `let j${name(d)} = i32(ox0 / 4u) + ${d};
      let ${name(d)} = select(vec4<f32>(), x[rowBase / 4u + u32(clamp(j${name(d)}, 0, w4 - 1))], rowOk && j${name(d)} >= 0 && j${name(d)} < w4);`,
  );
  const values = Array.from({ length: strip + 2 }, (_, t) => `${name(chunkOf(t))}[${(((t - padW) % 4) + 4) % 4}]`);
  return `let w4 = i32(params.W / 4u);
      ${loads.join('\n      ')}
      let v = array<f32, ${strip + 2}>(${values.join(', ')});`;
}

export const slidingConvKernel = cachedKernel((spec: SlidingConvSpec): Kernel => {
  const stripLength = spec.strip ?? 4;
  const rows = [0, 1, 2, 3, 4, 5, 6, 7];
  const quads = Array.from({ length: stripLength / 4 }, (_, q) => q);
  // The weight of lane m's output channel for tap (ky, kx), broadcast from that lane to all.
  const weight = (kx: number) =>
    spec.packed
      ? `wv[${kx}]`
      : spec.flip
        ? `w[(c * params.M + m) * 9u + (2u - ky) * 3u + ${2 - kx}u]`
        : `w[(m * params.C + c) * 9u + ky * 3u + ${kx}u]`;
  const broadcast = (kx: number, i: number) => (spec.packed ? `wb${i}[${kx}]` : `subgroupBroadcast(wv, ${i}u)`);

  return makeKernel({
    key: `conv.sliding:${spec.flip}:${spec.bias}:${spec.padH}:${spec.padW}${spec.vec ? ':vec' : ''}${spec.packed ? ':packed' : ''}${stripLength === 4 ? '' : `:s${stripLength}`}`,
    buffers: [
      readOnly('w', spec.packed ? 'vec4<f32>' : 'f32'),
      readOnly('x', spec.vec ? 'vec4<f32>' : 'f32'),
      ...(spec.bias ? [readOnly('bias')] : []),
      readWrite('out'),
    ],
    uniforms: fields('u32', 'M', 'Mp', 'C', 'H', 'W', 'Ho', 'Wo', 'stripsW', 'strips'),
    workgroupSize: [LANES, 1, 1],
    body: /* wgsl */ `
@compute @workgroup_size(${LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let img = wid.z;
  let m0 = wid.y * 8u;
  let s = wid.x * ${LANES}u + lane;
  // Lanes past the last strip compute a copy of it (every lane must take part in the broadcasts) and store nothing.
  let strip = min(s, params.strips - 1u);
  let oy = strip / params.stripsW;
  let ox0 = (strip % params.stripsW) * ${stripLength}u;
  let m = min(m0 + lane, params.M - 1u);
  let ix0 = i32(ox0) - ${spec.padW};
  ${rows.flatMap((i) => quads.map((q) => `var acc${i}_${q} = vec4<f32>();`)).join('\n  ')}
  let xImg = img * params.C * params.H * params.W;
  for (var c = 0u; c < params.C; c++) {
    let plane = xImg + c * params.H * params.W;
    for (var ky = 0u; ky < 3u; ky++) {
      let iy = i32(oy + ky) - ${spec.padH};
      let rowOk = iy >= 0 && iy < i32(params.H);
      let rowBase = plane + u32(clamp(iy, 0, i32(params.H) - 1)) * params.W;
      ${spec.vec ? vectorWindow(spec.padW, stripLength) : scalarWindow(stripLength)}
      ${
        spec.packed
          ? `let wv = w[(c * 3u + ky) * params.Mp + m0 + lane];
      ${rows.map((i) => `let wb${i} = subgroupBroadcast(wv, ${i}u);`).join('\n      ')}`
          : ''
      }
      ${[0, 1, 2]
        .map(
          (kx) => `{
        ${spec.packed ? '' : `let wv = ${weight(kx)};`}
        ${quads.map((q) => `let win${q} = vec4<f32>(v[${4 * q + kx}], v[${4 * q + kx + 1}], v[${4 * q + kx + 2}], v[${4 * q + kx + 3}]);`).join('\n        ')}
        ${rows
          .map(
            (i) => `{ let wi = vec4<f32>(${broadcast(kx, i)});
        ${quads.map((q) => `acc${i}_${q} = fma(wi, win${q}, acc${i}_${q});`).join(' ')} }`,
          )
          .join('\n        ')}
      }`,
        )
        .join('\n      ')}
    }
  }
  if (s >= params.strips) { return; }
  let plane = params.Ho * params.Wo;
  ${rows
    .map(
      (i) => `if (m0 + ${i}u < params.M) {
    let o = (img * params.M + m0 + ${i}u) * plane + oy * params.Wo + ox0;
    let b = ${spec.bias ? `bias[m0 + ${i}u]` : '0.0'};
    ${quads.map((q) => `for (var j = 0u; j < 4u; j++) { if (ox0 + ${4 * q}u + j < params.Wo) { out[o + ${4 * q}u + j] = acc${i}_${q}[j] + b; } }`).join('\n    ')}
  }`,
    )
    .join('\n  ')}
}`,
  });
});

/**
 * Uniforms and grid of a sliding product writing [n, M, Ho, Wo] from [n, C, H, W], or null where the grid would
 * exceed the per-dimension workgroup limit (then another algorithm must run it).
 */
export function slidingConvLaunch(
  n: number,
  M: number,
  C: number,
  H: number,
  W: number,
  Ho: number,
  Wo: number,
  strip: SlidingStrip = slidingStripFor(Wo),
) {
  const stripsW = Math.ceil(Wo / strip);
  const strips = Ho * stripsW;
  const grid: Grid = [Math.ceil(strips / LANES), Math.ceil(M / 8), n];
  if (grid.some((g) => g > MAX_WORKGROUPS_PER_DIM)) return null;
  return { uniforms: { M, Mp: slidingRows(M), C, H, W, Ho, Wo, stripsW, strips }, grid, strip };
}

/**
 * Time per output pixel of each strip relative to a strip of 4, measured on lavapipe at the tiny VAE's shapes
 * (BENCHMARKS.md): longer strips load each input value and weight for more FMAs; 32 fell back (the accumulators no
 * longer fit the registers).
 */
const STRIP_COST: Record<SlidingStrip, number> = { 4: 1, 8: 0.8, 12: 0.74, 16: 0.61, 24: 0.6 };

/**
 * The strip for output rows `Wo` wide: the one whose padded row (a whole number of strips) costs least by
 * STRIP_COST, the longer of equals.
 */
export function slidingStripFor(Wo: number): SlidingStrip {
  const cost = (s: SlidingStrip) => Math.ceil(Wo / s) * s * STRIP_COST[s];
  return ([24, 16, 12, 8, 4] as const).reduce((best, s) => (cost(s) < cost(best) ? s : best));
}

/** Output channels rounded up to the 8 a workgroup owns: the packed weights' rows (the padding rows are zeros). */
export const slidingRows = (M: number) => Math.ceil(M / 8) * 8;

/**
 * Packs a weight for the sliding kernel: wp[(c * 3 + ky) * Mp + m] = (w(m, c, ky, 0..2), 0) as one vec4, where
 * w(m, c) is weight[m, c] for the forward and, `flip`, weight[c, m] rotated by 180 degrees for the input
 * gradient; rows m >= M are zeros. One invocation per vec4.
 */
export const slidingWeightKernel = cachedKernel(
  (flip: boolean): Kernel =>
    flatKernel({
      key: `conv.sliding.pack:${flip}`,
      buffers: [readOnly('w'), readWrite('wp', 'vec4<f32>')],
      uniforms: fields('u32', 'n', 'M', 'Mp', 'C'),
      workgroupSize: 64,
      body: /* wgsl */ `
  let m = i % params.Mp;
  let ky = (i / params.Mp) % 3u;
  let c = i / (3u * params.Mp);
  if (m >= params.M) {
    wp[i] = vec4<f32>();
    return;
  }
  let src = ${flip ? '(c * params.M + m) * 9u + (2u - ky) * 3u' : '(m * params.C + c) * 9u + ky * 3u'};
  wp[i] = ${flip ? 'vec4<f32>(w[src + 2u], w[src + 1u], w[src], 0.0)' : 'vec4<f32>(w[src], w[src + 1u], w[src + 2u], 0.0)'};`,
    }),
);
