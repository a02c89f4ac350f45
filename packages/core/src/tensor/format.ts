/**
 * PyTorch-style text of a tensor's values (torch/_tensor_str.py with the default print options: 4 decimals,
 * 80 columns, tensors over 1000 elements summarised to 3 items at each end of every dimension).
 */

const PRECISION = 4;
const LINE_WIDTH = 80;
const THRESHOLD = 1000;
const EDGE_ITEMS = 3;

/** Python's '{:.4e}': at least two exponent digits. */
function expo(v: number): string {
  return v.toExponential(PRECISION).replace(/e([+-])(\d)$/, 'e$10$2');
}

function nonFinite(v: number): string {
  return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
}

/** One formatter for all the (shown) values, as torch's _Formatter: shared mode and width. */
function formatter(values: number[], integer: boolean): { width: number; fmt: (v: number) => string } {
  let fmt: (v: number) => string;
  if (integer) {
    fmt = (v) => String(v);
  } else {
    const finite = values.filter((v) => Number.isFinite(v) && v !== 0).map(Math.abs);
    const max = finite.length ? Math.max(...finite) : 0;
    const min = finite.length ? Math.min(...finite) : 0;
    const intMode = values.every((v) => !Number.isFinite(v) || Math.ceil(v) === v);
    const sci = finite.length > 0 && (max / min > 1000 || max > 1e8 || (!intMode && min < 1e-4));
    const fixed = (v: number) => (intMode ? `${Object.is(v, -0) ? '-0' : v.toFixed(0)}.` : v.toFixed(PRECISION));
    fmt = (v) => (!Number.isFinite(v) ? nonFinite(v) : sci ? expo(v) : fixed(v));
  }
  const width = Math.max(1, ...values.map((v) => fmt(v).length));
  return { width, fmt: (v) => fmt(v).padStart(width) };
}

/** `null` stands for the '...' of a summarised dimension. */
type Nested = number | null | Nested[];

function summarise(
  flat: ArrayLike<number>,
  shape: readonly number[],
  summarize: boolean,
): { tree: Nested; shown: number[] } {
  const shown: number[] = [];
  const walk = (dim: number, offset: number, stride: number): Nested => {
    if (dim === shape.length) {
      shown.push(flat[offset]!);
      return flat[offset]!;
    }
    const n = shape[dim]!;
    const inner = stride / n;
    const pick = (i: number) => walk(dim + 1, offset + i * inner, inner);
    if (summarize && n > 2 * EDGE_ITEMS) {
      const head = Array.from({ length: EDGE_ITEMS }, (_, i) => pick(i));
      const tail = Array.from({ length: EDGE_ITEMS }, (_, i) => pick(n - EDGE_ITEMS + i));
      return [...head, null, ...tail];
    }
    return Array.from({ length: n }, (_, i) => pick(i));
  };
  const size = shape.reduce((a, b) => a * b, 1);
  return { tree: walk(0, 0, size), shown };
}

/** The text inside `tensor(...)`, laid out from column `indent`. */
export function formatValues(
  flat: ArrayLike<number>,
  shape: readonly number[],
  integer: boolean,
  indent: number,
): string {
  const size = shape.reduce((a, b) => a * b, 1);
  if (size === 0) return '[]';
  const { tree, shown } = summarise(flat, shape, size > THRESHOLD);
  const { width, fmt } = formatter(shown, integer);
  const render = (node: Nested, depth: number, col: number): string => {
    if (typeof node === 'number') return fmt(node);
    const items = node as Nested[];
    if (depth === shape.length - 1) {
      const texts = items.map((v) => (v === null ? ' ...' : fmt(v as number)));
      const perLine = Math.max(1, Math.floor((LINE_WIDTH - col) / (width + 2)));
      const lines: string[] = [];
      for (let i = 0; i < texts.length; i += perLine) lines.push(texts.slice(i, i + perLine).join(', '));
      return `[${lines.join(`,\n${' '.repeat(col + 1)}`)}]`;
    }
    const remaining = shape.length - depth - 1;
    const parts = items.map((v) => (v === null ? '...' : render(v, depth + 1, col + 1)));
    return `[${parts.join(`,${'\n'.repeat(remaining)}${' '.repeat(col + 1)}`)}]`;
  };
  return render(tree, 0, indent);
}
