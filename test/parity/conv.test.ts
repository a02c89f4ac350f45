import * as T from '@leffa-webgpu/core';
import { slidingStripFor } from '@leffa-webgpu/kernels-wgsl';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type OpAdapter, replayGoldenGroup } from '../helpers/golden.js';

const device = await T.init();

const OPS: Record<string, OpAdapter> = {
  conv2d: ([x, w, b], a) => T.conv2d(x!, w!, b, a),
  conv_transpose2d: ([x, w, b], a) => T.convTranspose2d(x!, w!, b, a),
};

// The automatic choice, then every case with each algorithm forced (Winograd and the sliding kernel where they
// apply: stride-1 undilated ungrouped 3x3 products, the sliding kernel for the forward and input gradient only;
// the other cases stay direct and check that forcing leaves them alone).
replayGoldenGroup('conv', OPS);
for (const algorithm of ['direct', 'winograd', 'winograd4', 'sliding'] as const) {
  describe(`conv algorithm forced to ${algorithm}`, () => {
    beforeAll(() => T.setConvAlgorithm(algorithm));
    afterAll(() => T.setConvAlgorithm(null));
    replayGoldenGroup('conv', OPS);
  });
}
/** scripts/gpu-check.sh may force Winograd for a whole run (see the non-finite cases below). */
const winogradForced = /convAlgorithm=winograd4?\b/.test(process.env.LEFFA_FORCE_KERNELS ?? '');

// The sliding kernel with scalar loads (vector loads are the default; same results bit for bit).
describe('conv algorithm forced to sliding, scalar loads', () => {
  beforeAll(() => {
    T.setConvAlgorithm('sliding');
    T.setConvVectorLoads(false);
  });
  afterAll(() => {
    T.setConvAlgorithm(null);
    T.setConvVectorLoads(true);
  });
  replayGoldenGroup('conv', OPS);
  describe.skipIf(winogradForced)('non-finite values', () => replayGoldenGroup('conv_nonfinite', OPS));
});
// NaN and infinities propagate as in PyTorch on the automatic choice, the implicit GEMM and the sliding kernel.
// (Winograd's transforms mix an infinity with finite values of opposite signs, which can give NaN where the
// direct sum is infinite, so it is not replayed here, nor when gpu-check forces it for the whole run.)
describe.skipIf(winogradForced)('non-finite values', () => {
  replayGoldenGroup('conv_nonfinite', OPS);
  for (const algorithm of ['direct', 'sliding'] as const) {
    describe(`conv algorithm forced to ${algorithm}`, () => {
      beforeAll(() => T.setConvAlgorithm(algorithm));
      afterAll(() => T.setConvAlgorithm(null));
      replayGoldenGroup('conv_nonfinite', OPS);
    });
  }
});
// The implicit-GEMM kernel variants, each forced on this adapter (the register-tiled one is what GPUs get; the
// subgroup-broadcast one needs the subgroups feature), on the direct path so that every product uses it.
for (const variant of ['register', 'broadcast'] as const) {
  describe.runIf(variant !== 'broadcast' || device.hasSubgroups)(`conv kernel variant forced to ${variant}`, () => {
    beforeAll(() => {
      T.setConvVariant(variant);
      T.setConvAlgorithm('direct');
    });
    afterAll(() => {
      T.setConvVariant(null);
      T.setConvAlgorithm(null);
    });
    replayGoldenGroup('conv', OPS);
  });
}

/** scripts/gpu-check.sh forces kernels for whole runs; the automatic choice is then not what runs. */
const kernelsForced = Boolean(process.env.LEFFA_FORCE_KERNELS);

/** Kernel keys one conv2d forward + backward dispatches (needs timestamp queries). */
async function kernelsOf(x: number[], w: number[], options: T.Conv2dOptions): Promise<string[]> {
  const times = await device.profile(async () => {
    const out = T.tidy(() => {
      const xx = T.randn(x);
      const ww = T.randn(w);
      xx.requiresGrad = true;
      ww.requiresGrad = true;
      const y = T.conv2d(xx, ww, undefined, options);
      T.sum(y).backward();
      return T.concat([T.flatten(xx.grad!), T.flatten(ww.grad!)], 0);
    });
    await out.data();
    out.dispose();
  });
  return [...times.keys()];
}

describe('conv algorithm choice', () => {
  afterEach(() => T.setConvAlgorithm(null));

  it('reports Winograd only for stride-1 undilated ungrouped 3x3 products, and forcing switches every product', () => {
    T.setConvAlgorithm('winograd');
    const all = (a: T.ConvAlgorithm) => ({ forward: a, inputGrad: a, weightGrad: a });
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 3, 3], { padding: 1 })).toEqual(all('winograd'));
    // A strided 3x3 input gradient runs as its stride-1 twin's (on Winograd here).
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 3, 3], { padding: 1, stride: 2 })).toEqual({
      ...all('direct'),
      inputGrad: 'winograd',
    });
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 3, 3], { padding: 2, dilation: 2 })).toEqual(all('direct'));
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 2, 3, 3], { padding: 1, groups: 2 })).toEqual(all('direct'));
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 5, 5], { padding: 2 })).toEqual(all('direct'));
    // Padding 3 would make the input gradient's padding negative.
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 3, 3], { padding: 3 })).toEqual(all('direct'));
    // SD1.5's widest up-block conv (2560 -> 1280 at 16x12): the filter transform [16, 1280, 2560] would need 200 MiB,
    // over lavapipe's 128 MiB binding, though the image side is small.
    const limit = device.gpu.limits.maxStorageBufferBindingSize;
    if (16 * 4 * 1280 * 2560 > limit)
      expect(T.conv2dAlgorithms([1, 2560, 16, 12], [1280, 2560, 3, 3], { padding: 1 })).toEqual(all('direct'));
    T.setConvAlgorithm('direct');
    expect(T.conv2dAlgorithms([1, 64, 8, 8], [64, 64, 3, 3], { padding: 1 })).toEqual(all('direct'));
    expect(() => T.setConvAlgorithm('fft' as T.ConvAlgorithm)).toThrow(
      /expected 'direct', 'winograd', 'winograd4', 'sliding' or null, got 'fft'/,
    );
    expect(() => T.setConvVariant('tiled' as T.ConvVariant)).toThrow(
      /setConvVariant: expected 'register', 'broadcast' or null, got 'tiled'/,
    );
  });

  it.skipIf(kernelsForced)(
    'picks Winograd or the sliding kernel automatically on CPU adapters with the subgroup kernel where they were measured to win',
    () => {
      const cpuBroadcast = T.matmulVariantFor(device) === 'broadcast';
      const big = T.conv2dAlgorithms([2, 128, 16, 12], [128, 128, 3, 3], { padding: 1 });
      expect(big).toEqual(
        cpuBroadcast
          ? { forward: 'winograd', inputGrad: 'winograd', weightGrad: 'winograd' }
          : { forward: 'direct', inputGrad: 'direct', weightGrad: 'direct' },
      );
      // Up to 96 channels on either side: the sliding kernel for the forward and input gradient, Winograd's weight
      // gradient from 8.
      expect(T.conv2dAlgorithms([2, 64, 16, 12], [96, 64, 3, 3], { padding: 1 })).toEqual(
        cpuBroadcast
          ? { forward: 'sliding', inputGrad: 'sliding', weightGrad: 'winograd' }
          : { forward: 'direct', inputGrad: 'direct', weightGrad: 'direct' },
      );
      // (The weight gradient over 1536 tiles of 4x4: F(4x4).)
      const small = T.conv2dAlgorithms([8, 16, 64, 48], [16, 16, 3, 3], { padding: 1 });
      expect(small).toEqual(
        cpuBroadcast
          ? { forward: 'sliding', inputGrad: 'sliding', weightGrad: 'winograd4' }
          : { forward: 'direct', inputGrad: 'direct', weightGrad: 'direct' },
      );
      // F(4x4) from 32 tiles of 4x4 (SD1.5's first level at a 32x24 latent), F(2x2) below (640 channels at 16x12).
      const all = (a: T.ConvAlgorithm) => ({ forward: a, inputGrad: a, weightGrad: a });
      expect(T.conv2dAlgorithms([1, 320, 32, 24], [320, 320, 3, 3], { padding: 1 })).toEqual(
        all(cpuBroadcast ? 'winograd4' : 'direct'),
      );
      expect(T.conv2dAlgorithms([1, 640, 16, 12], [640, 640, 3, 3], { padding: 1 })).toEqual(
        all(cpuBroadcast ? 'winograd' : 'direct'),
      );
      expect(T.conv2dAlgorithms([1, 32, 16, 12], [320, 32, 3, 3], { padding: 1 }).forward).toBe(
        cpuBroadcast ? 'sliding' : 'direct',
      );
      expect(T.conv2dAlgorithms([1, 3, 16, 16], [16, 3, 3, 3], { padding: 1 }).weightGrad).toBe('direct');
      // Strided convolutions stay on the implicit GEMM, but for a 3x3 input gradient with a fast stride-1 twin.
      expect(T.conv2dAlgorithms([1, 16, 16, 16], [16, 16, 3, 3], { padding: 1, stride: 2 })).toEqual({
        forward: 'direct',
        inputGrad: cpuBroadcast ? 'sliding' : 'direct',
        weightGrad: 'direct',
      });
      expect(T.conv2dAlgorithms([1, 16, 16, 16], [16, 16, 3, 2], { padding: 1, stride: 2 }).inputGrad).toBe('direct');
    },
  );

  it('forces the sliding kernel for the forward and input gradient of stride-1 3x3 products only', () => {
    T.setConvAlgorithm('sliding');
    const sliding = device.hasSubgroups ? 'sliding' : 'direct';
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 3, 3], { padding: 1 })).toEqual({
      forward: sliding,
      inputGrad: sliding,
      weightGrad: 'direct',
    });
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 3, 3], { padding: 1, stride: 2 }).forward).toBe('direct');
    expect(T.conv2dAlgorithms([1, 4, 8, 8], [4, 4, 3, 3], { padding: 3 }).forward).toBe('direct');
  });

  it.runIf(device.report.features.includes('timestamp-query'))(
    'dispatches the Winograd kernels when forced and none otherwise',
    async () => {
      T.setConvAlgorithm('winograd');
      const wino = await kernelsOf([2, 5, 7, 9], [6, 5, 3, 3], { padding: 1 });
      for (const k of [
        'winograd:filter:false',
        'winograd:filter:true',
        'winograd:input',
        'winograd:grad',
        'winograd:output:false',
        'winograd:filtergrad',
      ]) {
        expect(wino, k).toContain(k);
      }
      expect(wino.filter((k) => k.startsWith('conv:'))).toEqual([]);
      T.setConvAlgorithm('direct');
      const direct = await kernelsOf([2, 5, 7, 9], [6, 5, 3, 3], { padding: 1 });
      expect(direct.filter((k) => k.startsWith('winograd:'))).toEqual([]);
      expect(direct.filter((k) => k.startsWith('conv:')).length).toBe(3);
    },
  );

  it.runIf(device.report.features.includes('timestamp-query') && device.hasSubgroups)(
    'dispatches the sliding kernel when forced: forward, flipped for the input gradient',
    async () => {
      T.setConvAlgorithm('sliding');
      T.setConvVectorLoads(true);
      // Below 16x12 outputs the weights are read in place. Rows 9 wide run in one strip of 12 per lane.
      const keys = await kernelsOf([2, 5, 7, 9], [6, 5, 3, 3], { padding: 1 });
      expect(keys).toContain('conv.sliding:false:false:1:1:s12');
      expect(keys).toContain('conv.sliding:true:false:1:1:s12');
      expect(keys.filter((k) => k.startsWith('conv.sliding.pack'))).toEqual([]);
      expect(keys.filter((k) => k.startsWith('conv:'))).toHaveLength(1);
      // From 16x12 they are packed; rows of a multiple of 4 read the image as vec4 (forward: x 20 wide, padding 0:
      // 12 x 18 outputs; input gradient: dy 18 wide, scalar).
      const vec = await kernelsOf([2, 5, 14, 20], [6, 5, 3, 3], {});
      expect(vec).toContain('conv.sliding:false:false:0:0:vec:packed:s24');
      expect(vec).toContain('conv.sliding:true:false:2:2:packed:s24');
      expect(vec).toContain('conv.sliding.pack:false');
      expect(vec).toContain('conv.sliding.pack:true');
      T.setConvVectorLoads(false);
      try {
        const scalar = await kernelsOf([2, 5, 14, 20], [6, 5, 3, 3], {});
        expect(scalar).toContain('conv.sliding:false:false:0:0:s24');
        expect(scalar).toContain('conv.sliding:true:false:2:2:s24');
        expect(scalar.filter((k) => k.startsWith('conv.sliding.pack'))).toEqual([]);
      } finally {
        T.setConvVectorLoads(true);
      }
      expect(() => T.setConvVectorLoads('yes' as unknown as boolean)).toThrow(
        /setConvVectorLoads: expected true or false/,
      );
      // The strip whose padded row costs least: the tiny VAE's 48, 24 and 12 wide rows, a 64-wide one, a padded 49.
      expect([48, 24, 12, 64, 6, 20, 9, 1, 49].map(slidingStripFor)).toEqual([24, 24, 12, 16, 8, 24, 12, 4, 16]);
      const wide = await kernelsOf([1, 4, 6, 48], [8, 4, 3, 3], { padding: 1 });
      expect(wide).toContain('conv.sliding:false:false:1:1:vec:packed:s24');
    },
  );

  it.runIf(device.report.features.includes('timestamp-query') && device.hasSubgroups)(
    "a strided 3x3 input gradient runs as its stride-1 twin's on dy spread with zeros, the implicit GEMM's within 1e-6",
    async () => {
      T.setConvAlgorithm('sliding');
      const keys = await kernelsOf([2, 5, 13, 11], [6, 5, 3, 3], { padding: 1, stride: 2 });
      expect(keys).toContain('conv.spread');
      expect(keys.filter((k) => k.startsWith('conv.sliding:true'))).toHaveLength(1);
      const g = new T.Generator(5);
      const x = T.randn([2, 5, 13, 11], { generator: g });
      const w = T.randn([6, 5, 3, 3], { generator: g });
      const dx = async (algorithm: 'sliding' | 'direct') => {
        T.setConvAlgorithm(algorithm);
        const xv = T.clone(x);
        xv.requiresGrad = true;
        const y = T.conv2d(xv, w, undefined, { padding: 1, stride: 2 });
        const dy = T.cos(y);
        y.backward(dy);
        const out = await xv.grad!.data();
        T.dispose([xv.grad!, xv, y, dy]);
        return out;
      };
      const spread = await dx('sliding');
      const direct = await dx('direct');
      const scale = direct.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(spread.reduce((m, v, i) => Math.max(m, Math.abs(v - direct[i]!)), 0) / scale).toBeLessThan(1e-6);
      T.dispose([x, w]);
    },
  );

  it.runIf(device.hasSubgroups)(
    "the sliding kernel at every strip: the implicit GEMM's bits forward, its input gradient within 1e-6",
    async () => {
      const g = new T.Generator(4);
      // Output widths 48, 64, 12, 6 and 9: strips of 24, 16, 12, 8 and 12.
      for (const width of [48, 64, 12, 6, 9]) {
        const x = T.randn([2, 9, 5, width], { generator: g });
        const w = T.randn([11, 9, 3, 3], { generator: g });
        const run = async (algorithm: 'sliding' | 'direct') => {
          T.setConvAlgorithm(algorithm);
          const xv = T.clone(x);
          xv.requiresGrad = true;
          const y = T.conv2d(xv, w, undefined, { padding: 1 });
          const dy = T.cos(y);
          y.backward(dy);
          const out = [await y.data(), await xv.grad!.data()] as const;
          T.dispose([xv.grad!, xv, y, dy]);
          return out;
        };
        const [slidingY, slidingDx] = await run('sliding');
        const [directY, directDx] = await run('direct');
        expect(Array.from(slidingY), `forward, width ${width}`).toEqual(Array.from(directY));
        // The implicit GEMM's input gradient sums in another order.
        const scale = directDx.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const err = slidingDx.reduce((m, v, i) => Math.max(m, Math.abs(v - directDx[i]!)), 0);
        expect(err / scale, `input gradient, width ${width}`).toBeLessThan(1e-6);
        T.dispose([x, w]);
      }
    },
  );

  it.runIf(device.report.features.includes('timestamp-query'))(
    'dispatches the F(4x4) Winograd kernels when forced, none of F(2x2)',
    async () => {
      T.setConvAlgorithm('winograd4');
      const keys = await kernelsOf([2, 5, 7, 9], [6, 5, 3, 3], { padding: 1 });
      for (const k of ['filter:false', 'filter:true', 'input', 'grad', 'output:false', 'filtergrad'])
        expect(keys, k).toContain(`winograd4:${k}`);
      expect(keys.filter((k) => k.startsWith('winograd:') || k.startsWith('conv'))).toEqual([]);
    },
  );

  it.each(['winograd', 'winograd4'] as const)(
    'passes a finite-difference gradient check on the %s path (odd sizes, bias, padding 1 and 2)',
    async (algorithm) => {
      T.setConvAlgorithm(algorithm);
      const leaf = (shape: number[], seed: number, scale = 1) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const t = T.tensor(
          Array.from({ length: n }, (_, i) => Math.sin(i * 1.913 + seed) * scale),
          shape,
        );
        t.requiresGrad = true;
        return t;
      };
      for (const padding of [1, 2]) {
        const inputs = [leaf([2, 3, 5, 3], 11), leaf([4, 3, 3, 3], 12, 0.5), leaf([4], 13)];
        const r = await T.gradcheck((x, w, b) => T.conv2d(x!, w!, b, { padding }), inputs);
        expect(r.ok, `padding ${padding}: ${JSON.stringify(r)}`).toBe(true);
        T.dispose(inputs);
      }
    },
  );
});
