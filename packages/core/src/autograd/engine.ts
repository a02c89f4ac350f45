// The engine runs on the forward layer only (plain kernels, never recorded), so no differentiable op is needed here.
import { castCopy } from '../forward/cast.js';
import { fullLike } from '../forward/creation.js';
import { map } from '../forward/map.js';
import { formatShape } from '../tensor/shape.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Storage } from '../tensor/storage.js';
import type { Tensor } from '../tensor/tensor.js';
import { setGradEnabled } from './grad-mode.js';
import type { BackwardOptions, GradNode } from './node.js';

export type { BackwardOptions } from './node.js';

/**
 * Gradients a node's output collects before they are summed: up to this many wait and one kernel adds them
 * (a + b + c + d, left to right, as pairwise accumulation in arrival order would), so an output read by many
 * ops (a time embedding, a tensor projected to q, k and v) costs a third of the dispatches. Bounded, so memory
 * stays within a few gradients per slot.
 */
const HELD_GRADIENTS = 4;
const SUM_EXPR = ['', 'a', 'a + b', 'a + b + c', 'a + b + c + d'];

/** The sum of 1 to HELD_GRADIENTS gradients of one shape and dtype, in order (the tensors are left to the caller). */
const sumHeld = (gs: readonly Tensor[]): Tensor => (gs.length === 1 ? gs[0]! : map('add', SUM_EXPR[gs.length]!, gs));

/** Nodes reachable from `root`, ordered so that every node comes after all nodes that consume its outputs. */
function topologicalOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  // Iterative post-order DFS: deep graphs (hundreds of layers) would overflow recursion.
  const stack: [GradNode, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const next = node.inputs[i]!.gradFn;
      if (next && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(node);
      stack.pop();
    }
  }
  return order.reverse();
}

/**
 * Reverse-mode differentiation from `root`: accumulates d(root)/d(leaf) into `.grad` of every leaf that
 * requires grad. `root` must hold one element unless `grad` (same shape) is given.
 *
 * Ownership: every gradient the engine holds is a distinct tensor object (a second holder gets an alias of
 * the same storage), and each is disposed as soon as its node has consumed it, so backward's memory stays
 * bounded by the live frontier. Leaf gradients are excluded from `tidy` scopes.
 */
export function backward(root: Tensor, grad?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new Error(
      `backward: tensor ${formatShape(root.shape)} does not require grad (no input had requiresGrad set)`,
    );
  }
  if (grad && grad.shape.join() !== root.shape.join()) {
    throw new Error(
      `backward: grad shape ${formatShape(grad.shape)} does not match tensor shape ${formatShape(root.shape)}`,
    );
  }
  if (!grad && root.size !== 1) {
    throw new Error(
      `backward: implicit gradient needs a one-element tensor, got ${formatShape(root.shape)}; pass grad`,
    );
  }
  const previous = setGradEnabled(false);
  try {
    const seed = grad ? grad.alias() : fullLike(root, 1);
    if (root.gradFn) {
      run(root, seed, options);
    } else if (root.grad) {
      const sum = sumHeld([root.grad, seed]);
      root.grad.dispose();
      seed.dispose();
      root.grad = keep(sum);
    } else {
      root.grad = keep(seed);
    }
  } finally {
    setGradEnabled(previous);
  }
}

function run(root: Tensor, seed: Tensor, options: BackwardOptions): void {
  // Gradients waiting for each node, by output index: the contributions not yet summed, in arrival order.
  const pending = new Map<GradNode, (Tensor[] | undefined)[]>();
  // Tensor objects currently owned by a pending slot or handed to a leaf during this pass.
  const claimed = new Set<Tensor>();
  // Leaves given a gradient during this pass.
  const leaves = new Set<Tensor>();

  /** Sums a slot's held gradients into one (claimed) tensor and disposes them. */
  const collapse = (held: Tensor[]): Tensor => {
    const sum = sumHeld(held);
    if (held.length > 1) {
      for (const t of held) {
        claimed.delete(t);
        t.dispose();
      }
      claimed.add(sum);
    }
    return sum;
  };

  /** Adds `g` into a pending slot or a leaf's `.grad`; `g` is unclaimed (fresh, consumed, or an alias). */
  const deposit = (input: Tensor, g: Tensor) => {
    if (!input.gradFn) {
      const prev = input.grad;
      const next = prev ? sumHeld([prev, g]) : g;
      if (prev) {
        claimed.delete(prev);
        prev.dispose();
      }
      claimed.add(next);
      input.grad = keep(next);
      leaves.add(input);
      return;
    }
    claimed.add(g);
    let slots = pending.get(input.gradFn);
    if (!slots) pending.set(input.gradFn, (slots = []));
    const held = (slots[input.gradIndex] ??= []);
    held.push(g);
    if (held.length === HELD_GRADIENTS) slots[input.gradIndex] = [collapse(held)];
  };

  deposit(root, seed);
  for (const node of topologicalOrder(root.gradFn!)) {
    const slots = pending.get(node);
    pending.delete(node);
    if (!slots) continue;
    const ctx = node.ctx;
    if (!ctx)
      throw new Error(`backward: the graph through '${node.op}' was already freed (pass retainGraph to reuse it)`);
    const grads = node.outputShapes.map((shape, i) => {
      const held = slots[i];
      return held ? collapse(held) : fullLike({ shape, dtype: ctx.outputs[i]?.dtype ?? 'float32' }, 0);
    });
    for (const g of grads) claimed.delete(g);
    // The rule's intermediates are freed as soon as it returns.
    const inputGrads = tidy(() => node.backward(ctx, ...grads));
    if (inputGrads.length !== node.inputs.length) {
      throw new Error(
        `backward of '${node.op}' returned ${inputGrads.length} gradients for ${node.inputs.length} inputs`,
      );
    }
    const graphTensors = new Set<Tensor>([...node.inputs, ...ctx.outputs]);
    inputGrads.forEach((g, i) => {
      const input = node.inputs[i]!;
      if (!g || !input.requiresGrad) return;
      if (g.shape.join() !== input.shape.join()) {
        throw new Error(
          `backward of '${node.op}': gradient ${formatShape(g.shape)} for input ${i} of shape ${formatShape(input.shape)}`,
        );
      }
      // A gradient has its input's dtype (a float16 input of a float32 result gets a float16 gradient).
      if (g.dtype !== input.dtype) {
        deposit(input, castCopy(g, input.dtype));
        return;
      }
      // The same object may be returned for several inputs (add); each holder gets its own alias.
      const shared = claimed.has(g) || graphTensors.has(g);
      const owned = shared ? g.alias() : g;
      deposit(input, owned);
      if (shared && !claimed.has(owned)) owned.dispose();
    });
    for (const g of new Set([...grads, ...inputGrads])) {
      if (g && !claimed.has(g) && !graphTensors.has(g)) g.dispose();
    }
    if (!options.retainGraph) node.ctx = null;
  }
  separateLeafGradients(leaves);
}

/**
 * Gives every leaf a gradient storage of its own. Ops hand one gradient to several inputs as aliases (both
 * operands of an add), so two leaves can end up sharing a buffer, and optimizers and clipGradNorm update a leaf's
 * gradient in place: the second and later holders of a storage get a copy. Copying here, where it is needed, and
 * not in every add's backward saves a kernel per residual connection.
 */
function separateLeafGradients(leaves: Iterable<Tensor>): void {
  const seen = new Set<Storage>();
  for (const leaf of leaves) {
    const g = leaf.grad!;
    if (!seen.has(g.storage)) {
      seen.add(g.storage);
      continue;
    }
    leaf.grad = keep(map('backward', 'a', [g]));
    g.dispose();
  }
}
