import { MAX_RANK, elementwiseGrid, elementwiseKernel } from '@leffa-webgpu/kernels-wgsl';
import { broadcastShapes, broadcastStrides, coalesceDims, formatShape, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, floatResult, launch } from './launch.js';

/**
 * Fused elementwise kernel with broadcasting: out = expr(a, b, ...) where the WGSL expression names its
 * inputs a, b, c, d and the scalars alpha, beta. Not recorded by autograd: ops and backward rules use it
 * to fuse their arithmetic into one dispatch.
 */
export function map(op: string, expr: string, inputs: readonly Tensor[], alpha = 0, beta = 0): Tensor {
  const dtype = floatResult(op, inputs);
  const shape = broadcastShapes(op, ...inputs.map((t) => t.shape));
  const out = emptyTensor(shape, dtype, op);
  if (out.size === 0) return out;
  const sameShape = inputs.every((t) => t.size === out.size);
  if (sameShape && out.size % 4 === 0) {
    const n = out.size / 4;
    launch(
      elementwiseKernel({ expr, arity: inputs.length, rank: 0, vec4: true }),
      inputs,
      [out],
      { n, alpha, beta },
      elementwiseGrid(n),
    );
    return out;
  }
  const v = vec4BroadcastLayout(shape, inputs);
  if (v) {
    const n = out.size / 4;
    const kernel = elementwiseKernel({ expr, arity: inputs.length, rank: v.shape.length, vec4: true, lanes: v.lanes });
    const uniforms: Record<string, number | number[]> = { n, alpha, beta, shape: v.shape };
    v.strides.forEach((st, k) => (uniforms[`stride_${'abcd'[k]}`] = st));
    launch(kernel, inputs, [out], uniforms, elementwiseGrid(n));
    return out;
  }
  const uniforms: Record<string, number | number[]> = { n: out.size, alpha, beta };
  const rank = broadcastLayout(op, shape, inputs, uniforms);
  launch(elementwiseKernel({ expr, arity: inputs.length, rank }), inputs, [out], uniforms, elementwiseGrid(out.size));
  return out;
}

/**
 * The broadcast in vec4 units when the output's innermost (coalesced) run is a multiple of 4 and each input
 * either runs along it with unit stride and its other strides in fours ('v') or is constant along it ('s'):
 * the shape with its innermost size divided by 4, and the strides in each input's units. Null otherwise.
 */
function vec4BroadcastLayout(shape: readonly number[], inputs: readonly Tensor[]) {
  const c = coalesceDims(
    shape,
    inputs.map((t) => broadcastStrides(t.shape, shape)),
  );
  const last = c.shape.length - 1;
  if (last < 0 || last >= MAX_RANK || c.shape[last]! % 4 !== 0) return null;
  let lanes = '';
  for (const st of c.strides) {
    if (st[last] === 0) lanes += 's';
    else if (st[last] === 1 && st.every((s, d) => d === last || s % 4 === 0)) lanes += 'v';
    else return null;
  }
  return {
    lanes,
    shape: c.shape.map((s, d) => (d === last ? s / 4 : s)),
    strides: c.strides.map((st, k) => (lanes[k] === 'v' ? st.map((s, d) => (d === last ? 1 : s / 4)) : st)),
  };
}

/**
 * How an elementwise kernel reads its inputs for an output of `shape`: rank 0 when every input has the output's
 * size (each is read at the flat index), else the coalesced output shape and each input's strides (0 where it
 * broadcasts), written into `uniforms` as `shape` and `stride_a`, `stride_b`, ...; returns the rank.
 */
export function broadcastLayout(
  op: string,
  shape: readonly number[],
  inputs: readonly Tensor[],
  uniforms: Record<string, number | number[]>,
): number {
  const size = sizeOf(shape);
  if (inputs.every((t) => t.size === size)) return 0;
  const c = coalesceDims(
    shape,
    inputs.map((t) => broadcastStrides(t.shape, shape)),
  );
  if (c.shape.length > MAX_RANK) {
    throw new Error(
      `${op}: broadcasting ${inputs.map((t) => formatShape(t.shape)).join(', ')} needs more than ${MAX_RANK} dims`,
    );
  }
  uniforms.shape = c.shape.length ? c.shape : [1];
  c.strides.forEach((s, k) => (uniforms[`stride_${'abcd'[k]}`] = s.length ? s : [0]));
  return Math.max(1, c.shape.length);
}
