import type * as T from '@leffa-webgpu/core';
import { makeKernel } from '@leffa-webgpu/kernels-wgsl';
import { median } from './timing.js';

/**
 * The adapter's arithmetic ceiling: invocations running `chains` independent fma chains held in registers,
 * no memory traffic. The best of a few chain counts (enough independent work to hide latency without
 * spilling) is the FMA ceiling that matmul efficiency is quoted against. On lavapipe fma is a multiply
 * and an add, so this is the ceiling of what a shader can issue, not the CPU's datasheet peak.
 */
export async function measureFmaCeiling(device: T.Device, reps = 5): Promise<{ gflops: number; chains: number }> {
  const iterations = 2048;
  const workgroup = 64;
  const groups = 256;
  let best = { gflops: 0, chains: 0 };
  for (const chains of [8, 16, 24]) {
    const ids = Array.from({ length: chains }, (_, i) => i);
    const kernel = makeKernel({
      key: `bench:fma-ceiling:${chains}`,
      buffers: [{ name: 'out', access: 'read_write', type: 'f32' }],
      uniforms: [{ name: 'iterations', type: 'u32' }],
      workgroupSize: [workgroup, 1, 1],
      body: /* wgsl */ `
@compute @workgroup_size(${workgroup})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let seed = f32(gid.x) * 1e-7;
  let m = 0.9999 + seed;
  let q = 1e-4 + seed;
  ${ids.map((i) => `var a${i} = seed + ${i}.0;`).join(' ')}
  for (var i = 0u; i < params.iterations; i++) {
    ${ids.map((i) => `a${i} = fma(a${i}, m, q);`).join(' ')}
  }
  out[gid.x] = ${ids.map((i) => `a${i}`).join(' + ')};
}`,
    });
    const out = device.pool.acquire(groups * workgroup * 4);
    const launch = () =>
      device.dispatch(kernel, [{ entry: out, bytes: groups * workgroup * 4 }], { iterations }, [groups, 1, 1]);
    launch();
    await device.sync();
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      launch();
      await device.sync();
      times.push(performance.now() - t0);
    }
    device.pool.release(out);
    const gflops = (2 * chains * iterations * groups * workgroup) / median(times) / 1e6;
    if (gflops > best.gflops) best = { gflops, chains };
  }
  return best;
}
