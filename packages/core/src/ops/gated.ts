import { type GateActivation, gatedGrid, gatedKernel } from '@leffa-webgpu/kernels-wgsl';
import { defineOp } from '../autograd/op.js';
import { formatShape, normalizeAxis, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { emptyTensor, floatResult, launch } from '../forward/launch.js';

/** The split axis's layout: outer blocks, each a run of values then a run of gates. */
function gatedLayout(op: string, x: Tensor, axis: number) {
  floatResult(op, [x]);
  if (x.rank === 0) throw new Error(`${op}: expected a tensor with at least one axis, got a scalar`);
  const a = normalizeAxis(op, axis, x.rank);
  const size = x.shape[a]!;
  if (size % 2 !== 0) {
    throw new Error(`${op}: axis ${axis} of ${formatShape(x.shape)} has odd size ${size}; it must split into halves`);
  }
  const outShape = [...x.shape];
  outShape[a] = size / 2;
  const run = (size / 2) * sizeOf(x.shape.slice(a + 1));
  return { outShape, run };
}

/** One invocation per output element (per gradient element of the output, backward), four when runs allow. */
function launchGated(gate: GateActivation, backward: boolean, inputs: Tensor[], out: Tensor, run: number): void {
  const vec4 = run % 4 === 0;
  const outputs = backward ? out.size / 2 : out.size;
  const n = vec4 ? outputs / 4 : outputs;
  launch(gatedKernel({ gate, backward, vec4 }), inputs, [out], { n, run: vec4 ? run / 4 : run }, gatedGrid(n));
}

function gatedOp(name: string, gate: GateActivation) {
  return defineOp(name, {
    forward: (_ctx, x: Tensor, axis: number = -1) => {
      const { outShape, run } = gatedLayout(name, x, axis);
      const out = emptyTensor(outShape, x.dtype, name);
      if (out.size === 0) return out;
      launchGated(gate, false, [x], out, run);
      return out;
    },
    backward: ({ args: [x, axis] }, g) => {
      const { run } = gatedLayout(name, x, axis ?? -1);
      const dx = emptyTensor(x.shape, floatResult(`${name}.backward`, [g, x]), `${name}.backward`);
      if (dx.size === 0) return [dx];
      launchGated(gate, true, [g, x], dx, run);
      return [dx];
    },
  });
}

/**
 * Gated linear unit (PyTorch's F.glu): x split in halves along `axis` into a and b, a * sigmoid(b). One kernel
 * in each direction, without materialising the halves.
 */
export const glu = gatedOp('glu', 'sigmoid');

const gegluErf = gatedOp('geglu', 'gelu');
const gegluTanh = gatedOp('geglu_tanh', 'gelu_tanh');

/**
 * GEGLU's activation (Shazeer 2020; diffusers' GEGLU after its projection): x split in halves along `axis` into
 * value and gate, value * gelu(gate), with the exact GELU or its tanh approximation. Equal to
 * `mul(a, gelu(b))` of `chunk(x, 2, axis)`, in one dispatch forward and one backward.
 */
export const geglu = (x: Tensor, axis = -1, approximate: 'none' | 'tanh' = 'none'): Tensor =>
  approximate === 'tanh' ? gegluTanh(x, axis) : gegluErf(x, axis);
