import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { type OpAdapter, loadGoldenGroup, replayGoldenGroup } from '../helpers/golden.js';

await T.init();

/** Runs `op` on the inputs rounded to float16 and checks that the result is float16. */
const onHalf =
  (op: (xs: T.Tensor[], a: Record<string, any>) => T.Tensor): OpAdapter =>
  (inputs, attrs) => {
    const out = op(
      inputs.map((x) => x.half()),
      attrs,
    );
    if (out.dtype !== 'float16') throw new Error(`result is ${out.dtype}, expected float16`);
    return out;
  };

const OPS: Record<string, OpAdapter> = {
  half: onHalf(([x]) => x!.alias()),
  add: onHalf(([a, b]) => T.add(a!, b!)),
  silu: onHalf(([x]) => T.silu(x!)),
  gelu: onHalf(([x]) => T.gelu(x!)),
  geglu: onHalf(([x]) => T.geglu(x!)),
  matmul: onHalf(([a, b]) => T.matmul(a!, b!)),
  linear: onHalf(([x, w, b]) => T.linear(x!, w!, b)),
  conv2d: onHalf(([x, w, b], a) => T.conv2d(x!, w!, b, { padding: a.padding, stride: a.stride })),
  group_norm: onHalf(([x, w, b], a) => T.groupNorm(x!, a.groups, w, b, a.eps)),
  layer_norm: onHalf(([x, w, b], a) => T.layerNorm(x!, a.shape, w, b)),
  softmax: onHalf(([x]) => T.softmax(x!, -1)),
  attention: onHalf(([q, k, v]) => T.attention(q!, k!, v!)),
  sum: onHalf(([x]) => T.sum(x!, -1)),
  upsample: onHalf(([x]) => T.interpolate(x!, { scaleFactor: 2, mode: 'nearest' })),
};

replayGoldenGroup('half', OPS);

describe('float16 tensors', () => {
  const special = () => loadGoldenGroup('half').tensors.get('cast_random.in0')!;

  it('store 2 bytes per element; host rounding matches the device and PyTorch bit for bit', async () => {
    const golden = loadGoldenGroup('half');
    for (const name of ['cast_special', 'cast_random']) {
      const x = golden.tensors.get(`${name}.in0`)!;
      const want = golden.tensors.get(`${name}.out0`)!.data;
      const host = T.halfToFloat(T.floatToHalf(x.data));
      expectClose(host, want, 0, `${name}: host floatToHalf`);
      const fromHost = T.tensor(x.data, x.shape, 'float16');
      expect(fromHost.byteLength).toBe(2 * x.data.length);
      expect([...(await fromHost.halfBits())]).toEqual([...(await T.tensor(x.data, x.shape).half().halfBits())]);
    }
  });

  it('gradients flow through casts and come back in each input dtype; mixed operands promote to float32', async () => {
    const h = special();
    const w = T.tensor(h.data.slice(0, 12), [3, 4]).half();
    w.requiresGrad = true;
    const x = T.tensor(h.data.slice(12, 24), [3, 4]);
    x.requiresGrad = true;
    const y = T.mul(w, x);
    expect(y.dtype).toBe('float32');
    T.sum(T.mul(y.half(), 2)).backward();
    expect(w.grad!.dtype).toBe('float16');
    expect(x.grad!.dtype).toBe('float32');
    const [wv, xv, gw, gx] = await Promise.all([w.data(), x.data(), w.grad!.data(), x.grad!.data()]);
    expectClose(gw, T.halfToFloat(T.floatToHalf(xv.map((v) => 2 * v))), 0, 'd/dw');
    expectClose(
      gx,
      wv.map((v) => 2 * v),
      0,
      'd/dx',
    );
  });

  it('modules convert with half() (unallocated parameters stay unallocated) and optimizers refuse float16 parameters', async () => {
    const lin = new T.nn.Linear(5, 3);
    const before = await lin.weight.data();
    lin.half();
    expect(lin.weight.dtype).toBe('float16');
    expectClose(await lin.weight.data(), T.halfToFloat(T.floatToHalf(before)), 0, 'weight');
    const y = lin.forward(T.ones([2, 5]).half());
    expect(y.dtype).toBe('float16');
    expect(() => new T.AdamW(lin.parameters(), { lr: 1e-3 })).toThrow(
      /parameter 0 is float16; optimizers update float32 parameters only/,
    );
    lin.float();
    expect(lin.weight.dtype).toBe('float32');
    const deferred = T.nn.withoutInit(() => new T.nn.Linear(64, 64));
    const live = T.memoryStats().liveBytes;
    deferred.half();
    expect(deferred.weight.dtype).toBe('float16');
    expect(T.memoryStats().liveBytes).toBe(live);
  });
});

describe('float16 convolution algorithms', () => {
  it('take the direct product automatically (no float32 intermediates) and match PyTorch with Winograd forced too', async () => {
    const all = (a: T.ConvAlgorithm) => ({ forward: a, inputGrad: a, weightGrad: a });
    // (Unless scripts/gpu-check.sh forces an algorithm for the whole run.)
    if (!/convAlgorithm=/.test(process.env.LEFFA_FORCE_KERNELS ?? ''))
      expect(T.conv2dAlgorithms([2, 64, 16, 12], [64, 64, 3, 3], { padding: 1 }, 'float16')).toEqual(all('direct'));
    const g = loadGoldenGroup('half');
    const [x, w, b] = [0, 1, 2].map((i) => g.tensors.get(`conv3x3_wide.in${i}`)!);
    const want = g.tensors.get('conv3x3_wide.out0')!.data;
    const xh = T.tensor(x!.data, x!.shape, 'float16');
    const wh = T.tensor(w!.data, w!.shape, 'float16');
    const bh = T.tensor(b!.data, b!.shape, 'float16');
    try {
      for (const algorithm of ['winograd', 'winograd4', 'direct'] as const) {
        T.setConvAlgorithm(algorithm);
        expect(T.conv2dAlgorithms(x!.shape, w!.shape, { padding: 1 }, 'float16').forward).toBe(algorithm);
        const y = T.conv2d(xh, wh, bh, { padding: 1 });
        expect(y.dtype).toBe('float16');
        expectClose(await y.data(), want, 1e-3, `conv3x3_wide, ${algorithm}`);
      }
    } finally {
      T.setConvAlgorithm(null);
    }
  });
});

describe('float16 weights in files PyTorch wrote', () => {
  const out = (f: string) => new URL(`../golden/out/${f}`, import.meta.url).pathname;
  const expected = (f: string) => T.readSafetensors(new Uint8Array(readFileSync(out(f)))).tensors;
  const rounded = (v: Float32Array) => T.halfToFloat(T.floatToHalf(v));

  it('safetensors F16 stays float16 (its bits uploaded), BF16 as chosen, F32 by the dtype asked', async () => {
    const want = expected('st_expected.safetensors');
    const kept = await T.loadSafetensors(out('st_dtypes.safetensors'), { dtype: 'keep', bf16: 'float32' });
    expect([kept.get('f16')!.dtype, kept.get('bf16')!.dtype, kept.get('f32')!.dtype, kept.get('i64')!.dtype]).toEqual([
      'float16',
      'float32',
      'float32',
      'int32',
    ]);
    expectClose(await kept.get('f16')!.data(), want.get('f16')!.data, 0, 'F16 kept');
    expectClose(await kept.get('bf16')!.data(), want.get('bf16')!.data, 0, 'BF16 as float32');
    const halves = await T.loadSafetensors(out('st_dtypes.safetensors'), { dtype: 'float16', bf16: 'float16' });
    expect(halves.get('f32')!.dtype).toBe('float16');
    expectClose(await halves.get('f32')!.data(), rounded(want.get('f32')!.data as Float32Array), 0, 'F32 rounded');
    expectClose(await halves.get('bf16')!.data(), rounded(want.get('bf16')!.data as Float32Array), 0, 'BF16 rounded');
    await expect(T.loadSafetensors(out('st_dtypes.safetensors'), { dtype: 'keep' })).rejects.toThrow(
      /tensor 'bf16' is BF16: choose what it becomes with bf16/,
    );
  });

  it('.pth HalfStorage (also a transposed view) stays float16; saving a float16 tensor writes its F16 bits', async () => {
    const want = expected('pth_expected.safetensors');
    const sd = await T.loadPth(out('pth_state_dict.pth'), { dtype: 'keep', bf16: 'float16' });
    for (const k of ['extra.half', 'extra.half_t', 'extra.bf16']) {
      expect(sd.get(k)!.dtype, k).toBe('float16');
      expectClose(await sd.get(k)!.data(), want.get(k)!.data, 0, k);
    }
    expect(sd.get('extra.double')!.dtype).toBe('float32');
    const dir = mkdtempSync(join(tmpdir(), 'half-'));
    try {
      const path = join(dir, 'h.safetensors');
      await T.saveSafetensors(path, { h: sd.get('extra.half_t')! });
      const file = T.readSafetensors(new Uint8Array(readFileSync(path)), path, { dtype: 'keep' });
      expect([...file.tensors.get('h')!.half!]).toEqual([...(await sd.get('extra.half_t')!.halfBits())]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
