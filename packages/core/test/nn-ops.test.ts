import * as T from '@leffa-webgpu/core';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await T.init();
});

const values = (n: number, seed: number, scale = 1) =>
  Array.from({ length: n }, (_, i) => Math.sin(i * 1.913 + seed) * scale);
const leaf = (shape: number[], seed: number, scale = 1) => {
  const t = T.tensor(
    values(
      shape.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
    shape,
  );
  t.requiresGrad = true;
  return t;
};

async function check(
  name: string,
  fn: (...xs: T.Tensor[]) => T.Tensor,
  inputs: T.Tensor[],
  options: T.GradcheckOptions = {},
) {
  const r = await T.gradcheck(fn, inputs, options);
  expect(r.ok, `${name}: ${JSON.stringify(r.worst)}`).toBe(true);
}

describe('finite-difference gradients of the NN kernel set', () => {
  it('conv2d and convTranspose2d (stride, padding, dilation, groups, bias)', async () => {
    await check('conv2d', (x, w, b) => T.conv2d(x, w, b, { stride: 2, padding: 1, dilation: 1 }), [
      leaf([1, 2, 5, 4], 1),
      leaf([3, 2, 3, 3], 2, 0.5),
      leaf([3], 3),
    ]);
    await check('conv2d groups', (x, w) => T.conv2d(x, w, undefined, { padding: [1, 0], dilation: 2, groups: 2 }), [
      leaf([1, 4, 5, 5], 4),
      leaf([2, 2, 2, 3], 5, 0.5),
    ]);
    await check(
      'convTranspose2d',
      (x, w, b) => T.convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }),
      [leaf([1, 2, 3, 3], 6), leaf([2, 3, 3, 3], 7, 0.5), leaf([3], 8)],
    );
  });

  it('normalisation', async () => {
    await check(
      'groupNorm',
      (x, w, b) => T.groupNorm(x, 2, w, b),
      [leaf([2, 4, 3, 2], 9, 2), leaf([4], 10), leaf([4], 11)],
      { eps: 1e-2, rtol: 3e-2 },
    );
    await check(
      'groupNormSilu',
      (x, w, b) => T.groupNormSilu(x, 2, w, b),
      [leaf([2, 4, 3, 5], 18, 2), leaf([4], 19), leaf([4], 20)],
      { eps: 1e-2, rtol: 3e-2 },
    );
    await check(
      'groupNormSilu without affine',
      (x) => T.groupNormSilu(x, 3, undefined, undefined),
      [leaf([2, 6, 4], 21, 2)],
      { eps: 1e-2, rtol: 3e-2 },
    );
    await check(
      'layerNorm',
      (x, w, b) => T.layerNorm(x, [5], w, b),
      [leaf([3, 5], 12, 2), leaf([5], 13), leaf([5], 14)],
      { eps: 1e-2, rtol: 3e-2 },
    );
    await check(
      'batchNorm',
      (x, w, b) => T.batchNorm(x, null, null, w, b, { training: true }),
      [leaf([3, 2, 2, 2], 15, 2), leaf([2], 16), leaf([2], 17)],
      { eps: 1e-2, rtol: 3e-2 },
    );
  });

  it('resampling and pooling', async () => {
    await check('bilinear', (x) => T.interpolate(x, { size: [5, 7], mode: 'bilinear' }), [leaf([1, 2, 3, 4], 18)]);
    await check('bicubic', (x) => T.interpolate(x, { scaleFactor: 1.5, mode: 'bicubic', alignCorners: true }), [
      leaf([1, 1, 4, 4], 19),
    ]);
    await check(
      'avgPool',
      (x) => T.avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad: false }),
      [leaf([1, 2, 5, 6], 20)],
    );
    await check('adaptiveAvgPool', (x) => T.adaptiveAvgPool2d(x, [2, 3]), [leaf([1, 2, 5, 7], 21)]);
    await check('maxPool', (x) => T.maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }), [leaf([1, 2, 5, 6], 22)]);
    // Sample points a third of a pixel away from pixel centres, so finite differences never cross a kink of the
    // bilinear weights; two of them fall outside the image (zero padding).
    const points = [
      [0.3, 1.3],
      [2.6, 0.4],
      [4.3, 3.6],
      [1.7, 2.3],
      [-0.7, 1.4],
      [3.4, 4.3],
    ];
    const grid = T.tensor(
      points.flatMap(([ix, iy]) => [(2 * ix! + 1) / 5 - 1, (2 * iy! + 1) / 4 - 1]),
      [1, 3, 2, 2],
    );
    grid.requiresGrad = true;
    await check('gridSample', (x, g) => T.gridSample(x, g), [leaf([1, 2, 4, 5], 23), grid], { eps: 1e-3, atol: 2e-3 });
  });

  it('attention', async () => {
    await check('attention', (q, k, v) => T.attention(q, k, v), [
      leaf([1, 2, 3, 4], 25),
      leaf([1, 2, 5, 4], 26),
      leaf([1, 2, 5, 3], 27),
    ]);
  });

  it('losses', async () => {
    const target = T.tensor(values(12, 30), [3, 4]);
    await check('smoothL1', (x) => T.smoothL1Loss(x, target, { beta: 0.5 }), [leaf([3, 4], 31, 2)]);
    await check('bce', (x) => T.binaryCrossEntropyWithLogits(x, T.sigmoid(target)), [leaf([3, 4], 32, 2)]);
    const labels = T.tensor(new Int32Array([0, 2, 255, 1]), [4]);
    await check('crossEntropy', (x) => T.crossEntropy(x, labels, { ignoreIndex: 255 }), [leaf([4, 3], 33, 2)]);
  });
});

describe('NN kernel set errors', () => {
  it('names the op, the shapes and the expectation', () => {
    expect(() => T.conv2d(T.zeros([1, 3, 5, 5]), T.zeros([4, 2, 3, 3]))).toThrow(
      'conv2d: input [1, 3, 5, 5] has 3 channels, weight [4, 2, 3, 3] expects 2 x groups 1',
    );
    expect(() => T.conv2d(T.zeros([1, 3, 2, 2]), T.zeros([4, 3, 3, 3]))).toThrow(/does not fit input 2x2/);
    expect(() => T.groupNorm(T.zeros([1, 6, 2]), 4)).toThrow(
      'groupNorm: 6 channels of [1, 6, 2] do not split into 4 groups',
    );
    expect(() => T.layerNorm(T.zeros([2, 5]), [4])).toThrow(/normalized shape \[4\] does not match/);
    expect(() => T.attention(T.zeros([1, 2, 3, 4]), T.zeros([1, 2, 5, 8]), T.zeros([1, 2, 5, 4]))).toThrow(
      /attention: expected q \[B, H, N, D\]/,
    );
    expect(() => T.gridSample(T.zeros([1, 1, 4, 4]), T.zeros([1, 2, 2, 3]))).toThrow(/gridSample: expected input/);
    expect(() => T.interpolate(T.zeros([1, 1, 4, 4]), { mode: 'bilinear' })).toThrow(
      /exactly one of size and scaleFactor/,
    );
    expect(() => T.crossEntropy(T.zeros([2, 3]), T.zeros([2]))).toThrow(/target must be int32/);
  });
});

describe('end to end', () => {
  it('a 2-layer conv net with GroupNorm and attention learns a toy task', async () => {
    const gen = new T.Generator(3);
    const { Conv2d, GroupNorm } = T.nn;
    const conv1 = new Conv2d(1, 8, 3, { padding: 1, generator: gen });
    const norm = new GroupNorm(2, 8);
    const conv2 = new Conv2d(8, 1, 3, { padding: 1, generator: gen });
    const params = [...conv1.parameters(), ...norm.parameters(), ...conv2.parameters()];
    const opt = new T.AdamW(params, { lr: 1e-2, weightDecay: 0 });
    // Task: output the input shifted by one pixel to the right (needs spatial context).
    const { x, y } = T.tidy(() => {
      const x = T.randn([4, 1, 6, 6], { generator: gen });
      return { x, y: T.pad(T.slice(x, [null, null, null, { end: 5 }]), [1, 0]) };
    });
    const losses: number[] = [];
    for (let step = 0; step < 60; step++) {
      const loss = T.tidy(() => {
        const h = T.silu(norm.forward(conv1.forward(x)));
        const [b, c, hh, ww] = h.shape as number[];
        const tokens = T.reshape(T.permute(h, [0, 2, 3, 1]), [b!, 1, hh! * ww!, c!]);
        const mixed = T.add(
          h,
          T.permute(T.reshape(T.attention(tokens, tokens, tokens), [b!, hh!, ww!, c!]), [0, 3, 1, 2]),
        );
        const l = T.mseLoss(conv2.forward(mixed), y);
        l.backward();
        opt.step();
        opt.zeroGrad();
        return l.detach();
      });
      if (step % 20 === 0 || step === 59) losses.push(await loss.item());
      loss.dispose();
    }
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! * 0.3);
  });
});
