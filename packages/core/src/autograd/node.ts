import type { Tensor } from '../tensor/tensor.js';

/** What a backward rule sees: the op's arguments, its outputs, what forward saved, which inputs need grads. */
export interface BackwardContext<Args extends unknown[] = unknown[], Saved = unknown> {
  readonly args: Args;
  readonly outputs: readonly Tensor[];
  readonly saved: Saved;
  /** Per tensor input (in argument order, arrays flattened): whether its gradient is wanted. */
  readonly needsGrad: readonly boolean[];
}

/**
 * A recorded op application: one node of the graph. Backward returns one gradient per tensor input
 * (null/undefined for inputs that need none); it may return fresh tensors or its incoming gradients.
 */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly outputShapes: readonly (readonly number[])[];
  ctx: BackwardContext | null;
  readonly backward: (ctx: BackwardContext, ...grads: Tensor[]) => readonly (Tensor | null | undefined)[];
}

export interface BackwardOptions {
  /** Keep the graph's saved state so backward can run through it again. */
  retainGraph?: boolean;
}
