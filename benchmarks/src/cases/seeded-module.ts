import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { type HostTensor, randomInput } from '../case.js';

/** A module's parameters by name and shape, in its own order. */
export type ParameterLayout = { name: string; shape: number[] }[];

/**
 * The layout of the module `build` makes, built once (it needs the device, so not at import time) and freed.
 */
export function lazyLayout(build: () => T.Module): () => ParameterLayout {
  let layout: ParameterLayout | null = null;
  return () => {
    if (!layout) {
      const m = build();
      layout = [...m.namedParameters()].map(([name, t]) => ({ name, shape: [...t.shape] }));
      m.dispose();
    }
    return layout;
  };
}

/**
 * Seeded weights for a layout: fan-in scaled kernels, norm scales around 1, small biases, so that every
 * implementation (ours and both PyTorch peers) starts from the same weights.
 */
export function seededParameters(layout: ParameterLayout, seed = 1000): HostTensor[] {
  return layout.map(({ name, shape }, i) => {
    if (shape.length > 1) return randomInput(shape, seed + i, 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1)));
    const x = randomInput(shape, seed + i, 0.1);
    if (/norm[^.]*\.weight$/.test(name)) for (let j = 0; j < x.data.length; j++) x.data[j]! += 1;
    return x;
  });
}

/** Loads copies of `weights` (an optimizer updates them in place) into `module`; returns its parameters. */
export function loadSeeded(module: T.Module, layout: ParameterLayout, weights: T.Tensor[]): T.Tensor[] {
  module.loadStateDict(new Map(layout.map((p, i) => [p.name, T.mul(weights[i]!, 1)])));
  return module.parameters();
}

/**
 * PyTorch setup lines: the reference module (test/golden/torch_diffusion.py) built by `construct` into `m`,
 * loaded from the inputs x<first>, x<first + 1>, ... in layout order, and `params` in that order.
 */
export function torchSeededModule(construct: string, layout: ParameterLayout, first: number): string[] {
  return [
    'import sys',
    `sys.path.insert(0, ${JSON.stringify(fileURLToPath(new URL('../../../test/golden', import.meta.url)))})`,
    'import torch_diffusion as td',
    `m = ${construct}`,
    `names = ${JSON.stringify(layout.map((p) => p.name))}`,
    `m.load_state_dict({n: globals()[f"x{i + ${first}}"] for i, n in enumerate(names)})`,
    'params = [dict(m.named_parameters())[n] for n in names]',
  ];
}
