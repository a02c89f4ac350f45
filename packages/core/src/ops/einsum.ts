import { formatShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { eye } from '../forward/creation.js';
import { mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';
import { expand, permute, reshape } from './shape.js';

/*
 * einsum as a composite: repeated labels of an operand take the diagonal (multiply by an identity mask and
 * sum), labels no other operand or the output uses are summed away at once, and operands are contracted left
 * to right as one batched matmul each ([batch, left-only, contracted] x [batch, contracted, right-only]).
 * Everything is built from differentiable ops, so gradients come for free.
 */

interface Term {
  t: Tensor;
  labels: string[];
}

const ELLIPSIS_BASE = 0x100; // labels for '...' dims, outside the letters an equation may use

function parseTerm(equation: string, term: string, rank: number, ellipsisDims: number, what: string): string[] {
  const parts = term.split('...');
  if (parts.length > 2) throw new Error(`einsum: '${equation}': ${what} has more than one '...'`);
  for (const p of parts) {
    if (!/^[a-zA-Z]*$/.test(p))
      throw new Error(`einsum: '${equation}': ${what} '${term}' may only hold letters and one '...'`);
  }
  const letters = parts.join('').length;
  if (parts.length === 1) {
    if (rank >= 0 && letters !== rank)
      throw new Error(`einsum: '${equation}': ${what} '${term}' names ${letters} dims, the operand has ${rank}`);
    return [...parts[0]!];
  }
  const e = rank >= 0 ? rank - letters : ellipsisDims;
  if (e < 0)
    throw new Error(`einsum: '${equation}': ${what} '${term}' names ${letters} dims, the operand has only ${rank}`);
  // '...' dims are right-aligned across operands, as broadcasting aligns them.
  const dots = Array.from({ length: e }, (_, i) => String.fromCharCode(ELLIPSIS_BASE + ellipsisDims - e + i));
  return [...parts[0]!, ...dots, ...parts[1]!];
}

/** Sums the given labels away. */
function sumLabels(term: Term, drop: (l: string) => boolean): Term {
  const axes = term.labels.map((l, i) => (drop(l) ? i : -1)).filter((i) => i >= 0);
  if (axes.length === 0) return term;
  return { t: sum(term.t, axes), labels: term.labels.filter((l) => !drop(l)) };
}

/** Replaces a label that occurs twice by the diagonal over the two dims, until labels are distinct. */
function takeDiagonals(equation: string, term: Term): Term {
  let { t, labels } = term;
  for (;;) {
    const j = labels.findIndex((l, k) => labels.indexOf(l) !== k);
    if (j < 0) return { t, labels };
    const i = labels.indexOf(labels[j]!);
    const n = t.shape[i]!;
    if (t.shape[j] !== n) {
      throw new Error(
        `einsum: '${equation}': label '${labels[i]}' repeats in one operand with sizes ${n} and ${t.shape[j]} (operand ${formatShape(t.shape)})`,
      );
    }
    const maskShape = t.shape.map((_, k) => (k === i || k === j ? n : 1));
    t = sum(mul(t, reshape(eye(n), maskShape)), j);
    labels = labels.filter((_, k) => k !== j);
  }
}

/** Size of every label over the terms, checking that sizes agree or are 1 (broadcast). */
function labelSizes(equation: string, terms: Term[]): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const { t, labels } of terms) {
    labels.forEach((l, k) => {
      const s = t.shape[k]!;
      const prev = sizes.get(l);
      if (prev === undefined || prev === 1) sizes.set(l, s);
      else if (s !== 1 && s !== prev) {
        const name = l.charCodeAt(0) >= ELLIPSIS_BASE ? "a '...' dim" : `label '${l}'`;
        throw new Error(`einsum: '${equation}': ${name} has size ${prev} in one operand and ${s} in another`);
      }
    });
  }
  return sizes;
}

/** Permutes (and broadcasts size-1 dims of) a term to the given label order. */
function arrange(term: Term, order: readonly string[], sizes: Map<string, number>): Tensor {
  const perm = order.map((l) => term.labels.indexOf(l));
  let t = perm.every((p, k) => p === k) ? term.t : permute(term.t, perm);
  const full = order.map((l) => sizes.get(l)!);
  if (t.shape.some((d, k) => d !== full[k])) t = expand(t, full);
  return t;
}

const product = (labels: readonly string[], sizes: Map<string, number>) =>
  labels.reduce((p, l) => p * sizes.get(l)!, 1);

/**
 * Einstein summation (torch.einsum): `einsum('bij,bjk->bik', a, b)`. Letters label dims; '...' stands for
 * broadcast leading dims; without '->' the output is the '...' dims then the letters used once, in
 * alphabetical order. Repeated labels in an operand take its diagonal; sizes of a label must agree or be 1.
 */
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  const eq = equation.replace(/\s+/g, '');
  const [lhs, rhs, extra] = eq.split('->');
  if (extra !== undefined) throw new Error(`einsum: '${equation}' has more than one '->'`);
  const inputs = lhs!.split(',');
  if (inputs.length !== operands.length) {
    throw new Error(`einsum: '${equation}' names ${inputs.length} operands, ${operands.length} given`);
  }
  const ellipsisDims = Math.max(
    0,
    ...inputs.map((term, k) => (term.includes('...') ? operands[k]!.rank - term.replace('...', '').length : 0)),
  );
  let terms: Term[] = inputs.map((term, k) => ({
    t: operands[k]!,
    labels: parseTerm(equation, term, operands[k]!.rank, ellipsisDims, `operand ${k}`),
  }));
  let output: string[];
  if (rhs !== undefined) {
    output = parseTerm(equation, rhs, -1, ellipsisDims, 'the output');
    if (new Set(output).size !== output.length) throw new Error(`einsum: '${equation}': the output repeats a label`);
    const known = new Set(terms.flatMap((t) => t.labels));
    for (const l of output) {
      if (!known.has(l)) throw new Error(`einsum: '${equation}': output label '${l}' does not occur in the operands`);
    }
  } else {
    const counts = new Map<string, number>();
    for (const { labels } of terms) for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
    const dots = [...counts.keys()].filter((l) => l.charCodeAt(0) >= ELLIPSIS_BASE).sort();
    const once = [...counts.keys()].filter((l) => l.charCodeAt(0) < ELLIPSIS_BASE && counts.get(l) === 1).sort();
    output = [...dots, ...once];
  }
  const sizes = labelSizes(equation, terms);
  terms = terms.map((term) => takeDiagonals(equation, term));

  // Labels each step must keep: those of the output and of the operands still to come.
  const neededAfter = (k: number) => new Set([...output, ...terms.slice(k + 1).flatMap((t) => t.labels)]);
  let cur = sumLabels(terms[0]!, (l) => !neededAfter(0).has(l));
  for (let k = 1; k < terms.length; k++) {
    const keep = neededAfter(k);
    const next = sumLabels(terms[k]!, (l) => !keep.has(l) && !cur.labels.includes(l));
    cur = sumLabels(cur, (l) => !keep.has(l) && !next.labels.includes(l));
    const batch = cur.labels.filter((l) => next.labels.includes(l) && keep.has(l));
    const contracted = cur.labels.filter((l) => next.labels.includes(l) && !keep.has(l));
    const left = cur.labels.filter((l) => !next.labels.includes(l));
    const right = next.labels.filter((l) => !cur.labels.includes(l));
    const a = reshape(arrange(cur, [...batch, ...left, ...contracted], sizes), [
      product(batch, sizes),
      product(left, sizes),
      product(contracted, sizes),
    ]);
    const b = reshape(arrange(next, [...batch, ...contracted, ...right], sizes), [
      product(batch, sizes),
      product(contracted, sizes),
      product(right, sizes),
    ]);
    const labels = [...batch, ...left, ...right];
    cur = {
      t: reshape(
        matmul(a, b),
        labels.map((l) => sizes.get(l)!),
      ),
      labels,
    };
  }
  cur = sumLabels(cur, (l) => !output.includes(l));
  return arrange(cur, output, sizes);
}
