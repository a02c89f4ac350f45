import { cachedKernel, type Kernel, makeKernel, readOnly, readWrite } from './kernel.js';
import {
  WINOGRAD_ENTRY,
  WINOGRAD_FILTER_GRAD_PROLOGUE,
  WINOGRAD_FILTER_UNIFORMS,
  WINOGRAD_PLANE_UNIFORMS,
  WINOGRAD_TILE_PROLOGUE,
  WINOGRAD_WG,
  winogradFilterPrologue,
} from './winograd.js';

/**
 * Winograd F(4x4, 3x3) transforms (Lavin and Gray's points 0, +-1, +-2), the same scheme as winograd.ts's
 * F(2x2, 3x3) with 4x4 output tiles read from 6x6 input patches (top-left corner (4 ty - padH, 4 tx - padW)):
 *
 *   U[xi] = (G w G^T)[xi], V[xi] = (B^T d B)[xi], M[xi] = U[xi] @ V[xi], y = A^T M A   for the 36 positions xi
 *
 * which takes 36 multiplies per 4x4 outputs and input channel instead of F(2x2)'s 64 (and the direct product's
 * 144), and writes 36 transformed values per 16 outputs instead of 16 per 4. The weight gradient is
 * dM = A dy A^T, dU[xi] = dM[xi] @ V[xi]^T over tiles, dw = G^T dU G. G has entries 1/6, 1/12 and 1/24, so the
 * rounding error is larger than F(2x2)'s (whose transforms are exact); the parity tests bound it.
 *
 * Layouts as in winograd.ts with 36 planes: U [36, rows, colsP], V [36, Cp, Tp], M and dM [36, rows, Tp]. The
 * transforms are generated from the matrices below as unrolled scalar code (zeros skipped).
 */
const BT = [
  [4, 0, -5, 0, 1, 0],
  [0, -4, -4, 1, 1, 0],
  [0, 4, -4, -1, 1, 0],
  [0, -2, -1, 2, 1, 0],
  [0, 2, -1, -2, 1, 0],
  [0, 4, 0, -5, 0, 1],
];
const G = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];
const AT = [
  [1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, 0],
  [0, 1, 1, 4, 4, 0],
  [0, 1, -1, 8, -8, 1],
];
const transpose = (m: number[][]) => m[0]!.map((_, j) => m.map((row) => row[j]!));

/** Positions of the transformed tile (6 x 6). */
export const WINOGRAD_F4_POSITIONS = 36;

/** sum_k c[k] * terms[k] as WGSL, zero coefficients skipped, +-1 without a multiply. */
function combination(coeffs: readonly number[], terms: readonly string[]): string {
  const parts: string[] = [];
  coeffs.forEach((c, k) => {
    if (c === 0) return;
    const mag = Math.abs(c);
    const term = mag === 1 ? terms[k]! : `${Number.isInteger(mag) ? `${mag}.0` : mag.toPrecision(9)} * ${terms[k]}`;
    parts.push(parts.length === 0 ? (c < 0 ? `-${term}` : term) : `${c < 0 ? '-' : '+'} ${term}`);
  });
  return parts.length === 0 ? '0.0' : parts.join(' ');
}

/**
 * WGSL computing Y = L X R^T for scalar expressions X [a][b], L [p][a], R [q][b]: rows first (T = L X), then
 * columns. Returns the statements and Y's names ([p][q]).
 */
function sandwich(L: number[][], R: number[][], X: string[][], name: string): { code: string; y: string[][] } {
  const lines: string[] = [];
  const t = L.map((row, i) =>
    X[0]!.map((_, j) => {
      const v = `${name}t${i}_${j}`;
      lines.push(
        `let ${v} = ${combination(
          row,
          X.map((r) => r[j]!),
        )};`,
      );
      return v;
    }),
  );
  const y = t.map((row, i) =>
    R.map((rrow, j) => {
      const v = `${name}${i}_${j}`;
      lines.push(`let ${v} = ${combination(rrow, row)};`);
      return v;
    }),
  );
  return { code: lines.join('\n  '), y };
}

const grid = (rows: number, cols: number, f: (i: number, j: number) => string) =>
  Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => f(i, j)));

/** Stores the 36 values y[i][j] at plane 6 i + j of an output whose (row, tile) offset is `out`. */
const storePlanes = (buffer: string, y: string[][]) =>
  y.flatMap((row, i) => row.map((v, j) => `${buffer}[out + ${6 * i + j}u * plane] = ${v};`)).join('\n  ');

/** V = B^T d B of every 6x6 input patch: x [N, C, H, W] -> v [36, Cp, Tp]. */
export const winogradF4InputKernel = cachedKernel((): Kernel => {
  const d = grid(6, 6, (i, j) => `d${i}_${j}`);
  const { code, y } = sandwich(BT, BT, d, 'v');
  return makeKernel({
    key: 'winograd4:input',
    buffers: [readOnly('x'), readWrite('v')],
    uniforms: WINOGRAD_PLANE_UNIFORMS,
    workgroupSize: [WINOGRAD_WG, 1, 1],
    body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_TILE_PROLOGUE}
  let y0 = i32(ty * 4u) - params.padH;
  let x0 = i32(tx * 4u) - params.padW;
  let base = (img * params.C + min(c, params.C - 1u)) * params.H * params.W;
  ${[0, 1, 2, 3, 4, 5]
    .map(
      (i) => `let iy${i} = y0 + ${i};
  let row${i} = base + u32(clamp(iy${i}, 0, i32(params.H) - 1)) * params.W;
  let rowOk${i} = valid && iy${i} >= 0 && iy${i} < i32(params.H);`,
    )
    .join('\n  ')}
  ${[0, 1, 2, 3, 4, 5].map((j) => `let ix${j} = x0 + ${j};\n  let colOk${j} = ix${j} >= 0 && ix${j} < i32(params.W);\n  let col${j} = u32(clamp(ix${j}, 0, i32(params.W) - 1));`).join('\n  ')}
  ${d.flatMap((row, i) => row.map((v, j) => `let ${v} = select(0.0, x[row${i} + col${j}], rowOk${i} && colOk${j});`)).join('\n  ')}
  ${code}
  let out = c * params.Tp + t;
  ${storePlanes('v', y)}
}`,
  });
});

/** dM = A g A^T of every 4x4 tile of the output gradient: dy [N, C, H, W] -> dm [36, Cp, Tp] (zeros outside). */
export const winogradF4GradKernel = cachedKernel((): Kernel => {
  const g = grid(4, 4, (i, j) => `g${i}_${j}`);
  const A = transpose(AT);
  const { code, y } = sandwich(A, A, g, 'm');
  return makeKernel({
    key: 'winograd4:grad',
    buffers: [readOnly('dy'), readWrite('dm')],
    uniforms: WINOGRAD_PLANE_UNIFORMS,
    workgroupSize: [WINOGRAD_WG, 1, 1],
    body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_TILE_PROLOGUE}
  let oy = ty * 4u;
  let ox = tx * 4u;
  let base = (img * params.C + min(c, params.C - 1u)) * params.H * params.W;
  ${[0, 1, 2, 3].map((i) => `let rowOk${i} = valid && oy + ${i}u < params.H;\n  let row${i} = base + min(oy + ${i}u, params.H - 1u) * params.W;`).join('\n  ')}
  ${[0, 1, 2, 3].map((j) => `let colOk${j} = ox + ${j}u < params.W;\n  let col${j} = min(ox + ${j}u, params.W - 1u);`).join('\n  ')}
  ${g.flatMap((row, i) => row.map((v, j) => `let ${v} = select(0.0, dy[row${i} + col${j}], rowOk${i} && colOk${j});`)).join('\n  ')}
  ${code}
  let out = c * params.Tp + t;
  ${storePlanes('dm', y)}
}`,
  });
});

/** y = A^T M A (+ bias[c]) of every tile: m [36, Cp, Tp] -> y [N, C, H, W] (H, W: the output size). */
export const winogradF4OutputKernel = cachedKernel((bias: boolean): Kernel => {
  const m = grid(6, 6, (i, j) => `m${i}_${j}`);
  const { code, y } = sandwich(AT, AT, m, 'y');
  return makeKernel({
    key: `winograd4:output:${bias}`,
    buffers: [readOnly('m'), ...(bias ? [readOnly('bias')] : []), readWrite('y')],
    uniforms: WINOGRAD_PLANE_UNIFORMS,
    workgroupSize: [WINOGRAD_WG, 1, 1],
    body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_TILE_PROLOGUE}
  if (!valid) { return; }
  let src = c * params.Tp + t;
  ${m.flatMap((row, i) => row.map((v, j) => `let ${v} = m[src + ${6 * i + j}u * plane];`)).join('\n  ')}
  ${code}
  let b = ${bias ? 'bias[c]' : '0.0'};
  let oy = ty * 4u;
  let ox = tx * 4u;
  let base = ((img * params.C + c) * params.H + oy) * params.W + ox;
  ${y
    .map(
      (row, i) =>
        `if (oy + ${i}u < params.H) {\n    ${row.map((v, j) => `if (ox + ${j}u < params.W) { y[base + ${i}u * params.W + ${j}u] = ${v} + b; }`).join('\n    ')}\n  }`,
    )
    .join('\n  ')}
}`,
  });
});

/**
 * U = G w G^T: w [Cout, Cin, 3, 3] -> u [36, rows, colsP], as winogradFilterKernel (flip: rows = Cin, cols =
 * Cout, each filter rotated by 180 degrees, for the input gradient as a forward product on dy).
 */
export const winogradF4FilterKernel = cachedKernel((flip: boolean): Kernel => {
  const g = grid(3, 3, (i, j) => `g${i}_${j}`);
  const { code, y } = sandwich(G, G, g, 'u');
  return makeKernel({
    key: `winograd4:filter:${flip}`,
    buffers: [readOnly('w'), readWrite('u')],
    uniforms: WINOGRAD_FILTER_UNIFORMS,
    workgroupSize: [WINOGRAD_WG, 1, 1],
    body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${winogradFilterPrologue(flip)}
  ${g.flatMap((row, i) => row.map((v, j) => `let ${v} = select(0.0, w[src + ${flip ? 8 - 3 * i - j : 3 * i + j}u], ok);`)).join('\n  ')}
  ${code}
  let out = r * params.colsP + s;
  ${storePlanes('u', y)}
}`,
  });
});

/** dw = G^T dU G: du [36, rows, colsP] -> dw [rows, cols, 3, 3] (rows = Cout, cols = Cin). */
export const winogradF4FilterGradKernel = cachedKernel((): Kernel => {
  const du = grid(6, 6, (i, j) => `m${i}_${j}`);
  const GT = transpose(G);
  const { code, y } = sandwich(GT, GT, du, 'w');
  return makeKernel({
    key: 'winograd4:filtergrad',
    buffers: [readOnly('du'), readWrite('dw')],
    uniforms: WINOGRAD_FILTER_UNIFORMS,
    workgroupSize: [WINOGRAD_WG, 1, 1],
    body: /* wgsl */ `${WINOGRAD_ENTRY}
  ${WINOGRAD_FILTER_GRAD_PROLOGUE}
  ${du.flatMap((row, i) => row.map((v, j) => `let ${v} = du[src + ${6 * i + j}u * plane];`)).join('\n  ')}
  ${code}
  let out = id * 9u;
  ${y.flatMap((row, i) => row.map((v, j) => `dw[out + ${3 * i + j}u] = ${v};`)).join('\n  ')}
}`,
  });
});
