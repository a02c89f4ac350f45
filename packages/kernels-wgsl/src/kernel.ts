/**
 * What a compute kernel is, independent of any WebGPU runtime: WGSL source, the storage buffers it binds,
 * the uniform parameters it reads and how many workgroups to launch. The core package turns a `Kernel`
 * into a pipeline (cached by `key`) and a dispatch.
 *
 * Binding convention: `@group(0) @binding(0)` is the uniform struct `params` (when the kernel has any uniform
 * fields), followed by the storage buffers in the order of `buffers`.
 */

export type ScalarType = 'u32' | 'i32' | 'f32';
/** A uniform field: a scalar, or a fixed-length array of u32/i32/f32 packed as vec4s (for shapes and strides). */
export type UniformType = ScalarType | { array: ScalarType; length: number };

export interface UniformField {
  name: string;
  type: UniformType;
}

export interface BufferBinding {
  name: string;
  /** 'read' binds as `var<storage, read>`, 'read_write' as `var<storage, read_write>`. */
  access: 'read' | 'read_write';
  /** WGSL element type of the array, e.g. 'f32', 'u32', 'vec4<f32>'. */
  type: string;
}

export interface Kernel {
  /** Unique per distinct WGSL source: the pipeline cache key. */
  key: string;
  code: string;
  buffers: readonly BufferBinding[];
  uniforms: readonly UniformField[];
  workgroupSize: readonly [number, number, number];
}

export type Grid = readonly [number, number, number];

/** The largest workgroup count per dimension that every WebGPU implementation accepts. */
export const MAX_WORKGROUPS_PER_DIM = 65535;

const fieldAlign = (t: UniformType) => (typeof t === 'string' ? 4 : 16);
const fieldSize = (t: UniformType) => (typeof t === 'string' ? 4 : 16 * Math.ceil(t.length / 4));
const wgslVecType = (s: ScalarType) => `vec4<${s}>`;

export interface UniformLayout {
  /** Byte offset of each field, in declaration order. */
  offsets: number[];
  /** Struct size rounded up to 16 bytes, as WGSL requires for uniform structs. */
  size: number;
}

/** Byte layout of the uniform struct under WGSL's alignment rules (scalars 4, vec4 arrays 16). */
export function uniformLayout(fields: readonly UniformField[]): UniformLayout {
  let offset = 0;
  const offsets: number[] = [];
  for (const f of fields) {
    const a = fieldAlign(f.type);
    offset = Math.ceil(offset / a) * a;
    offsets.push(offset);
    offset += fieldSize(f.type);
  }
  return { offsets, size: Math.max(16, Math.ceil(offset / 16) * 16) };
}

/**
 * The WGSL declarations for a kernel's bindings: the `Params` struct (arrays become `array<vec4<T>, n>`,
 * element i read as `params.name[i / 4u][i % 4u]`) and one storage array per buffer.
 */
export function bindingDeclarations(buffers: readonly BufferBinding[], uniforms: readonly UniformField[]): string {
  const lines: string[] = [];
  let binding = 0;
  if (uniforms.length > 0) {
    const members = uniforms.map((u) =>
      typeof u.type === 'string'
        ? `  ${u.name}: ${u.type},`
        : `  ${u.name}: array<${wgslVecType(u.type.array)}, ${Math.ceil(u.type.length / 4)}>,`,
    );
    lines.push(`struct Params {\n${members.join('\n')}\n};`);
    lines.push(`@group(0) @binding(${binding++}) var<uniform> params: Params;`);
  }
  for (const b of buffers) {
    lines.push(`@group(0) @binding(${binding++}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`);
  }
  return lines.join('\n');
}

/** Builds a Kernel whose WGSL gets the binding declarations prepended. */
export function makeKernel(spec: Omit<Kernel, 'code'> & { body: string }): Kernel {
  const { body, ...rest } = spec;
  return { ...rest, code: `${bindingDeclarations(spec.buffers, spec.uniforms)}\n${body}` };
}

/** A storage buffer the kernel only reads (`var<storage, read>`), of f32 unless `type` says otherwise. */
export const readOnly = (name: string, type = 'f32'): BufferBinding => ({ name, access: 'read', type });
/** A storage buffer the kernel writes (`var<storage, read_write>`), of f32 unless `type` says otherwise. */
export const readWrite = (name: string, type = 'f32'): BufferBinding => ({ name, access: 'read_write', type });
/** Uniform fields of one type, in order: `fields('u32', 'n', 'H', 'W')`. */
export const fields = (type: UniformType, ...names: string[]): UniformField[] => names.map((name) => ({ name, type }));

/** The entry point of a kernel launched over a 1-D grid (`grid1d` or `gridGroups`). */
export interface FlatEntry {
  workgroupSize: number;
  /** 'invocation' (default): the index counts invocations; 'workgroup': it counts workgroups (`gridGroups`). */
  per?: 'invocation' | 'workgroup';
  /** Per invocation: the index of the first invocation of workgroup w is w * stride (default workgroupSize). */
  stride?: number;
  /** The index's WGSL name (default `i`). */
  index?: string;
  /** Indices at or past this WGSL expression return at once (default `params.n`); null: no guard. */
  bound?: string | null;
}

/**
 * A kernel that declares only what is its own: buffers, uniforms, module-scope WGSL (`helpers`) and the body of
 * `main`, which starts with the flat index (`i`, or `entry.index`) already computed and bounds-checked; the
 * builtins `wid`, `lid` (local invocation index) and `nwg` are in scope.
 */
export function flatKernel(
  spec: Omit<Kernel, 'code' | 'workgroupSize'> & FlatEntry & { helpers?: string; body: string },
): Kernel {
  const {
    workgroupSize: size,
    per = 'invocation',
    stride = size,
    index = 'i',
    bound = 'params.n',
    helpers = '',
    body,
    ...rest
  } = spec;
  const first = per === 'invocation' ? `flatGroup(wid, nwg) * ${stride}u + lid` : 'flatGroup(wid, nwg)';
  return makeKernel({
    ...rest,
    workgroupSize: [size, 1, 1],
    body: /* wgsl */ `${helpers}
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let ${index} = ${first};${bound === null ? '' : `\n  if (${index} >= ${bound}) { return; }`}${body}
}`,
  });
}

/**
 * Invocations of a workgroup that owns a row of a reduction or normalisation: 64 by default; 8 on CPU adapters,
 * where 8 is one SIMD vector and a wider workgroup pays for every barrier of its tree sums by switching between its
 * vectors (GroupNorm on the tiny VAE's 8x6 maps: 1.05 ms per dispatch at 64, 0.27 at 8).
 */
export type RowLanes = 8 | 64;
/** The kernel-key suffix of a row kernel's width: none for the default 64. */
export const lanesKey = (lanes: RowLanes) => (lanes === 64 ? '' : `:l${lanes}`);

/**
 * A 1-D launch of `n` invocations, folded into two dimensions when it exceeds the per-dimension limit.
 * Shaders recover the flat index with `flatIndex(wid, lid, nwg)` from `FLAT_INDEX_WGSL`.
 */
export function grid1d(n: number, workgroupSize: number): Grid {
  const groups = Math.max(1, Math.ceil(n / workgroupSize));
  if (groups <= MAX_WORKGROUPS_PER_DIM) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_WORKGROUPS_PER_DIM);
  return [Math.ceil(groups / y), y, 1];
}

/** Spreads `groups` workgroups over x and y (for kernels indexed by workgroup id, not invocation id). */
export function gridGroups(groups: number): Grid {
  return grid1d(groups, 1);
}

export const FLAT_INDEX_WGSL = /* wgsl */ `
fn flatGroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x; }
`;

/**
 * Memoises a kernel factory on its arguments: generating WGSL text on every call would cost more than the
 * dispatch itself on the hot path (ops build their kernel each time they run).
 */
export function cachedKernel<A extends unknown[]>(build: (...args: A) => Kernel): (...args: A) => Kernel {
  const cache = new Map<string, Kernel>();
  return (...args: A) => {
    const key = args.length === 1 && typeof args[0] !== 'object' ? String(args[0]) : JSON.stringify(args);
    let k = cache.get(key);
    if (!k) cache.set(key, (k = build(...args)));
    return k;
  };
}
