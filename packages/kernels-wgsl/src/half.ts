import type { Kernel } from './kernel.js';

/**
 * float16 storage for any float32 kernel: the named storage buffers become `array<f16>` (`vec4<f16>`), every
 * read of them converts to f32 and every write rounds the f32 result to f16. Arithmetic therefore stays in
 * f32 registers, so matmul, convolution, attention and norm reductions accumulate in f32 and elementwise ops
 * round once per op, as PyTorch's CPU half kernels do. Needs the `shader-f16` feature.
 *
 * The rewrite works on the kernel's WGSL text: each `name[...]` access of a converted buffer is wrapped
 * (reads as `f32(name[i])`, `name[i] = v` as `name[i] = f16(v)`, `name[i] op= v` expanded). Kernels reach
 * storage only through such index expressions, which is what makes one rewrite serve every kernel. u32
 * (and vec4<u32>) buffers are the bit-copy kernels' view of float32 data (gather, scatter, pad, fill): for them a read yields the f32
 * bits of the half value and a write rounds the f32 those bits encode, so copies stay exact.
 */
export function halfStorageKernel(kernel: Kernel, names: readonly string[]): Kernel {
  if (names.length === 0) return kernel;
  const key = `${kernel.key}|f16:${[...names].sort().join(',')}`;
  const cache = (variants.get(kernel) ?? variants.set(kernel, new Map()).get(kernel))!;
  let out = cache.get(key);
  if (out) return out;
  const types = new Map<string, Conversion>();
  const buffers = kernel.buffers.map((b) => {
    if (!names.includes(b.name)) return b;
    const t = HALF_OF[b.type];
    if (!t)
      throw new Error(
        `halfStorageKernel: ${kernel.key}: buffer '${b.name}' has type ${b.type}, which has no float16 form`,
      );
    types.set(b.name, t);
    return { ...b, type: t.half };
  });
  for (const n of names) if (!types.has(n)) throw new Error(`halfStorageKernel: ${kernel.key} has no buffer '${n}'`);
  let code = kernel.code;
  for (const [name, t] of types) {
    const decl = new RegExp(
      `(var<storage, (?:read|read_write)> ${name}: array<)${escapeAngles(kernel.buffers.find((b) => b.name === name)!.type)}>`,
    );
    code = code.replace(decl, `$1${t.half}>`);
    code = rewriteAccesses(code, name, t);
  }
  out = { ...kernel, key, buffers, code: `enable f16;\n${code}` };
  cache.set(key, out);
  return out;
}

/** How a buffer type is stored in half precision, and the WGSL that converts a read and a written value. */
interface Conversion {
  half: string;
  read: (access: string) => string;
  write: (value: string) => string;
  /** Whether `name[i] op= v` can be expanded (bit views cannot). */
  arithmetic: boolean;
}

const HALF_OF: Record<string, Conversion> = {
  f32: { half: 'f16', read: (a) => `f32(${a})`, write: (v) => `f16(${v})`, arithmetic: true },
  'vec4<f32>': { half: 'vec4<f16>', read: (a) => `vec4<f32>(${a})`, write: (v) => `vec4<f16>(${v})`, arithmetic: true },
  u32: {
    half: 'f16',
    read: (a) => `bitcast<u32>(f32(${a}))`,
    write: (v) => `f16(bitcast<f32>(${v}))`,
    arithmetic: false,
  },
  'vec4<u32>': {
    half: 'vec4<f16>',
    read: (a) => `bitcast<vec4<u32>>(vec4<f32>(${a}))`,
    write: (v) => `vec4<f16>(bitcast<vec4<f32>>(${v}))`,
    arithmetic: false,
  },
};
const variants = new WeakMap<Kernel, Map<string, Kernel>>();
const escapeAngles = (s: string) => s.replace(/[<>]/g, '\\$&');

/** Index of the bracket closing the one at `open` (which must be `[` or `(`). */
function closing(code: string, open: number): number {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    const c = code[i];
    if (c === '[' || c === '(') depth++;
    else if (c === ']' || c === ')') {
      if (--depth === 0) return i;
    }
  }
  throw new Error(`halfStorageKernel: unbalanced brackets after offset ${open}`);
}

/** End (index of the `;`) of the statement whose right-hand side starts at `from`. */
function statementEnd(code: string, from: number): number {
  let depth = 0;
  for (let i = from; i < code.length; i++) {
    const c = code[i];
    if (c === '[' || c === '(') depth++;
    else if (c === ']' || c === ')') depth--;
    else if (c === ';' && depth === 0) return i;
  }
  throw new Error(`halfStorageKernel: statement starting at offset ${from} has no ';'`);
}

function rewriteAccesses(code: string, name: string, t: Conversion): string {
  // A buffer access: the name not preceded by an identifier character or '.', then '['.
  const access = new RegExp(`(?<![\\w.])${name}\\s*\\[`, 'g');
  let out = '';
  let pos = 0;
  for (;;) {
    access.lastIndex = pos;
    const m = access.exec(code);
    if (!m) return out + code.slice(pos);
    out += code.slice(pos, m.index);
    const open = m.index + m[0].length - 1;
    const close = closing(code, open);
    const target = `${name}[${rewriteAccesses(code.slice(open + 1, close), name, t)}]`;
    const rest = code.slice(close + 1);
    const assign = /^\s*([+\-*/]?)=(?!=)/.exec(rest);
    if (assign) {
      const rhsStart = close + 1 + assign[0].length;
      const end = statementEnd(code, rhsStart);
      const rhs = rewriteAccesses(code.slice(rhsStart, end), name, t);
      if (assign[1] && !t.arithmetic)
        throw new Error(`halfStorageKernel: '${name}[...] ${assign[1]}=' on a bit-copy buffer`);
      out += `${target} = ${t.write(assign[1] ? `${t.read(target)} ${assign[1]} (${rhs})` : rhs)}`;
      pos = end;
    } else {
      if (/^\s*\[[^\]]*\]\s*[+\-*/]?=(?!=)/.test(rest)) {
        throw new Error(`halfStorageKernel: component write to '${name}' is not supported`);
      }
      out += t.read(target);
      pos = close + 1;
    }
  }
}
