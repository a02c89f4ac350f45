import { cachedKernel, fields, flatKernel, grid1d, type Kernel, readWrite } from './kernel.js';

/**
 * Counter-based random numbers (Philox4x32-10): value i depends only on (seed, counter offset, i), so results
 * are reproducible on any device and independent of launch geometry. Each invocation draws four 32-bit
 * words and writes four outputs.
 */
export type RandomDistribution = 'uniform' | 'normal' | 'bernoulli';

const WG = 128;

const PHILOX_WGSL = /* wgsl */ `
// 32x32 -> 64-bit product as (hi, lo); WGSL has no mulhi.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
  let t = ah * bl + ((al * bl) >> 16u);
  let w = (t & 0xffffu) + al * bh;
  return vec2<u32>(ah * bh + (t >> 16u) + (w >> 16u), a * b);
}
fn philox(counter: vec4<u32>, seed: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = seed;
  for (var r = 0; r < 10; r++) {
    let p0 = mulhilo(0xD2511F53u, c.x);
    let p1 = mulhilo(0xCD9E8D57u, c.z);
    c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}
// [0, 1) with 24 random bits.
fn unit(u: u32) -> f32 { return f32(u >> 8u) * (1.0 / 16777216.0); }
`;

const DRAW: Record<RandomDistribution, string> = {
  uniform: `
  for (var j = 0u; j < 4u; j++) { v[j] = params.a + (params.b - params.a) * unit(bits[j]); }`,
  // Box-Muller on two pairs; u1 in (0, 1] keeps log finite.
  normal: `
  for (var j = 0u; j < 4u; j += 2u) {
    let u1 = unit(bits[j]) + (1.0 / 16777216.0);
    let u2 = unit(bits[j + 1u]);
    let r = sqrt(-2.0 * log(u1)) * params.b;
    v[j] = params.a + r * cos(6.283185307179586 * u2);
    v[j + 1u] = params.a + r * sin(6.283185307179586 * u2);
  }`,
  // 1 with probability a (scaled by b), else 0: dropout masks.
  bernoulli: `
  for (var j = 0u; j < 4u; j++) { v[j] = select(0.0, params.b, unit(bits[j]) < params.a); }`,
};

export const randomKernel = cachedKernel((dist: RandomDistribution): Kernel => {
  return flatKernel({
    key: `random:${dist}`,
    buffers: [readWrite('out')],
    uniforms: [...fields('u32', 'n', 'seedLo', 'seedHi', 'offsetLo', 'offsetHi'), ...fields('f32', 'a', 'b')],
    workgroupSize: WG,
    bound: null,
    helpers: PHILOX_WGSL,
    body: /* wgsl */ `
  if (i * 4u >= params.n) { return; }
  let lo = params.offsetLo + i;
  let carry = select(0u, 1u, lo < i);
  let bits = philox(vec4<u32>(lo, params.offsetHi + carry, 0u, 0u), vec2<u32>(params.seedLo, params.seedHi));
  var v: vec4<f32>;
  ${DRAW[dist]}
  for (var j = 0u; j < 4u; j++) {
    if (i * 4u + j < params.n) { out[i * 4u + j] = v[j]; }
  }`,
  });
});

/** Number of Philox counters (groups of four values) a draw of `n` values consumes. */
export const randomCounters = (n: number) => Math.ceil(n / 4);
export const randomGrid = (n: number) => grid1d(randomCounters(n), WG);
