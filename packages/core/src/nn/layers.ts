import { activeDevice } from '../device/device.js';
import { mul } from '../ops/elementwise.js';
import { linear } from '../ops/matmul.js';
import { type Generator, bernoulli, rand } from '../ops/random.js';
import { sizeOf } from '../tensor/shape.js';
import { Storage } from '../tensor/storage.js';
import { BYTES_PER_ELEMENT, Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

/** A module mapping one tensor to one tensor (what Sequential chains). */
export interface TensorModule extends Module {
  forward(x: Tensor): Tensor;
}

let skipInit = false;

/**
 * Builds modules without drawing their initial weights, like PyTorch's skip_init / meta-device construction:
 * for models whose weights are about to be loaded, or whose parameter names and shapes are all that is needed
 * (`Module.checkStateDict` of a full-size model). Linear and convolution weights get no GPU buffer until first
 * used (contents undefined until written; `loadStateDict` hands them the loaded storage instead), so building
 * even a multi-billion-parameter model this way allocates only its small normalisation parameters.
 */
export function withoutInit<M>(build: () => M): M {
  const previous = skipInit;
  skipInit = true;
  try {
    return build();
  } finally {
    skipInit = previous;
  }
}

/** Kaiming-uniform-like default init scale, as PyTorch's Linear/Conv use: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
export function uniformInit(shape: number[], fanIn: number, generator?: Generator): Tensor {
  if (skipInit)
    return new Tensor(
      new Storage(activeDevice(), null, sizeOf(shape) * BYTES_PER_ELEMENT.float32),
      [...shape],
      'float32',
    );
  const bound = 1 / Math.sqrt(Math.max(fanIn, 1));
  return randUniform(shape, -bound, bound, generator);
}

const randUniform = (shape: number[], low: number, high: number, generator?: Generator) =>
  rand(shape, { low, high, ...(generator ? { generator } : {}) });

export interface LinearOptions {
  bias?: boolean;
  generator?: Generator;
}

/** y = x W^T + b, weight [out, in] as in PyTorch. */
export class Linear extends Module implements TensorModule {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    this.weight = this.addParameter('weight', uniformInit([outFeatures, inFeatures], inFeatures, options.generator));
    this.bias = this.addParameter(
      'bias',
      options.bias === false ? null : uniformInit([outFeatures], inFeatures, options.generator),
    );
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias ?? undefined);
  }
}

/** Passes its input through. */
export class Identity extends Module implements TensorModule {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Zeroes elements with probability p in training (scaling the rest by 1/(1-p)); identity in eval. */
export function dropout(x: Tensor, p: number, training: boolean, generator?: Generator): Tensor {
  if (p < 0 || p >= 1) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const mask = bernoulli([...x.shape], 1 - p, { scale: 1 / (1 - p), ...(generator ? { generator } : {}) });
  return mul(x, mask);
}

export class Dropout extends Module implements TensorModule {
  constructor(
    readonly p = 0.5,
    private readonly generator?: Generator,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
}

/** Submodules named '0', '1', ... (PyTorch's ModuleList key layout). */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): this {
    this.items.push(this.addModule(String(this.items.length), m));
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new Error(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** Applies its modules in order. */
export class Sequential extends ModuleList<TensorModule> implements TensorModule {
  constructor(...items: TensorModule[]) {
    super(items);
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}
