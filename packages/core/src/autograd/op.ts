import { Tensor, isFloatDType } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { formatShape } from '../tensor/shape.js';
import { isGradEnabled, setGradEnabled } from './grad-mode.js';
import type { BackwardContext, GradNode } from './node.js';

/** What forward sees besides the arguments: which inputs need gradients, and a place to save state. */
export interface ForwardContext<Saved = unknown> {
  /** Per tensor input: whether backward will be asked for its gradient (false everywhere when not recording). */
  readonly needsGrad: readonly boolean[];
  /**
   * Stashes state for backward (e.g. extra tensors such as indices or statistics). Tensors in it must sit in
   * plain objects or arrays so that the op's scope sees and keeps them.
   */
  save(value: Saved): void;
}

export interface OpDefinition<Args extends unknown[], Out extends Tensor | Tensor[], Saved> {
  forward(ctx: ForwardContext<Saved>, ...args: Args): Out;
  /** Gradients of the tensor inputs given the gradients of the outputs; omit for non-differentiable ops. */
  backward?(ctx: BackwardContext<NoInfer<Args>, Saved>, ...grads: Tensor[]): readonly (Tensor | null | undefined)[];
}

/** Every op by name: the single table of forward kernels and backward rules. */
export const opRegistry = new Map<string, OpDefinition<never, Tensor | Tensor[], unknown>>();

/** Tensor arguments of an op in order (arrays of tensors flattened one level). */
function tensorInputs(args: readonly unknown[]): Tensor[] {
  const out: Tensor[] = [];
  for (const a of args) {
    if (a instanceof Tensor) out.push(a);
    else if (Array.isArray(a)) for (const t of a) if (t instanceof Tensor) out.push(t);
  }
  return out;
}

/**
 * Declares an op once: its forward (built from kernels or other ops, run without recording) and its backward
 * rule (built from differentiable ops). Returns the callable op, which records a graph node when any input
 * requires grad and recording is on.
 */
// Saved state is typed loosely: it is written in forward and read in backward of the same declaration.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function defineOp<Args extends unknown[], Out extends Tensor | Tensor[], Saved = any>(
  name: string,
  def: OpDefinition<Args, Out, Saved>,
): (...args: Args) => Out {
  if (opRegistry.has(name)) throw new Error(`defineOp: '${name}' is defined twice`);
  opRegistry.set(name, def as unknown as OpDefinition<never, Tensor | Tensor[], unknown>);
  return (...args: Args): Out => {
    const inputs = tensorInputs(args);
    for (let i = 0; i < inputs.length; i++) {
      if (inputs[i]!.isDisposed) {
        throw new Error(`${name}: input ${i} (shape ${formatShape(inputs[i]!.shape)}) was disposed`);
      }
    }
    const record = def.backward !== undefined && isGradEnabled() && inputs.some((t) => t.requiresGrad);
    const needsGrad = inputs.map((t) => record && t.requiresGrad);
    let saved: Saved = undefined as Saved;
    const ctx: ForwardContext<Saved> = { needsGrad, save: (v) => (saved = v) };
    const previous = setGradEnabled(false);
    let out: Out;
    try {
      // Intermediates of a composite forward are freed here; outputs and saved state survive.
      out = tidy(() => {
        const result = def.forward(ctx, ...args);
        return { result, saved };
      }).result;
    } finally {
      setGradEnabled(previous);
    }
    if (record) {
      const outputs = Array.isArray(out) ? out : [out as Tensor];
      if (outputs.some((o) => inputs.includes(o)))
        throw new Error(`${name}: forward returned an input object; return a new tensor (alias)`);
      const node: GradNode = {
        op: name,
        inputs,
        outputShapes: outputs.map((o) => o.shape),
        ctx: { args, outputs, saved, needsGrad } as BackwardContext,
        backward: def.backward as GradNode['backward'],
      };
      outputs.forEach((o, i) => {
        if (isFloatDType(o.dtype)) o.attachGrad(node, i);
      });
    }
    return out;
  };
}
