// Finite-difference gradcheck of every registered differentiable op of core, each through its public function.
import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { OP_CASES, OP_CASES_EXCLUDED } from './op-cases.js';

beforeAll(async () => {
  await T.init();
});

const differentiable = [...T.opRegistry].filter(([, def]) => def.backward).map(([name]) => name);

/** Names of the ops recorded in the graph that produced `t`. */
function recordedOps(t: T.Tensor): Set<string> {
  const seen = new Set<T.GradNode>();
  const stack = t.gradFn ? [t.gradFn] : [];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    for (const input of node.inputs) if (input.gradFn) stack.push(input.gradFn);
  }
  return new Set([...seen].map((n) => n.op));
}

describe('gradcheck sweep over opRegistry', () => {
  it('has a case or a stated reason for every differentiable op, and nothing else', () => {
    expect(differentiable.filter((name) => !OP_CASES[name] && !OP_CASES_EXCLUDED[name])).toEqual([]);
    expect(Object.keys({ ...OP_CASES, ...OP_CASES_EXCLUDED }).filter((name) => !differentiable.includes(name))).toEqual(
      [],
    );
  });

  it.each(Object.keys(OP_CASES))('%s', async (name) => {
    const c = OP_CASES[name]!;
    const inputs = c.inputs();
    // The case must reach the registered op it is named after, not only a neighbour.
    const probe = c.run(...inputs);
    expect([...recordedOps(probe)]).toContain(name);
    probe.dispose();
    const r = await T.gradcheck(c.run, inputs, c.options);
    expect(r.ok, `${name} via ${c.api}: ${JSON.stringify(r.worst)} (max error ${r.maxAbsError})`).toBe(true);
    T.dispose(inputs);
  });
});
