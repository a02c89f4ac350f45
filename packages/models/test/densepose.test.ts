import * as T from '@leffa-webgpu/core';
import { DENSEPOSE_SMALL, DensePoseHead, iuvFromOutput, personCrop, predictIuv } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';

let model: DensePoseHead;

beforeAll(async () => {
  await T.init();
  T.manualSeed(3);
  model = new DensePoseHead(DENSEPOSE_SMALL);
});

const minMax = (d: Float32Array) =>
  d.reduce(([lo, hi], x) => [Math.min(lo, x), Math.max(hi, x)], [Infinity, -Infinity]);

describe('DensePoseHead', () => {
  it('gives stride-4 maps on odd sizes (ceil at each stride) and input-size maps on request, U/V in [0, 1]', async () => {
    model.eval();
    const x = T.rand([2, 3, 67, 45]);
    const out = model.forward(x);
    // 67 -> 34 (stem) -> 17 (max pool); 45 -> 23 -> 12.
    expect(out.I.shape).toEqual([2, 25, 17, 12]);
    expect(out.U.shape).toEqual([2, 24, 17, 12]);
    expect(out.V.shape).toEqual([2, 24, 17, 12]);
    const up = model.forward(x, { upsample: true });
    expect(up.I.shape).toEqual([2, 25, 67, 45]);
    expect(up.U.shape).toEqual([2, 24, 67, 45]);
    for (const t of [out.U, out.V, up.U, up.V]) {
      const [lo, hi] = minMax(await t.data());
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
    }
    expect((await up.I.data()).every(Number.isFinite)).toBe(true);
    T.dispose([x, out.I, out.U, out.V, up.I, up.U, up.V]);
  });

  it('rejects bad inputs with the shape and the expectation', () => {
    expect(() => model.forward(T.zeros([1, 1, 64, 48]))).toThrow(
      /DensePoseHead: expected images \[N, 3, H, W\] in \[0, 1\], got \[1, 1, 64, 48\]/,
    );
    expect(() => model.forward(T.zeros([3, 64, 48]))).toThrow(/expected images \[N, 3, H, W\]/);
    expect(() => model.forward(T.zeros([1, 3, 20, 48]))).toThrow(
      /\[1, 3, 20, 48\] is too small; H and W must be at least 32/,
    );
  });

  it('state dict: SCHP bottleneck keys, strict round trip gives the same outputs, strict load rejects strays', async () => {
    model.eval();
    const dict = model.stateDict();
    for (const key of [
      'conv1.weight',
      'bn1.running_var',
      'layer1.0.conv2.weight',
      'layer4.0.downsample.0.weight',
      'layer2.0.bn3.bias',
      'lateral.3.weight',
      'smooth.bias',
      'head.1.weight',
      'index_uv.weight',
      'u.bias',
      'v.weight',
    ]) {
      expect(dict.has(key), key).toBe(true);
    }
    expect(dict.get('index_uv.weight')!.shape).toEqual([25, DENSEPOSE_SMALL.headWidth, 1, 1]);
    expect(dict.get('u.weight')!.shape).toEqual([24, DENSEPOSE_SMALL.headWidth, 1, 1]);
    const copy = T.nn.withoutInit(() => new DensePoseHead(DENSEPOSE_SMALL));
    const report = copy.loadStateDict(dict, { strict: true });
    expect(report.missing).toEqual([]);
    expect(report.unexpected).toEqual([]);
    copy.eval();
    const x = T.rand([1, 3, 48, 40]);
    const a = model.forward(x);
    const b = copy.forward(x);
    expect([...(await b.I.data())]).toEqual([...(await a.I.data())]);
    expect([...(await b.V.data())]).toEqual([...(await a.V.data())]);
    const stray = new Map(dict);
    stray.set('extra.weight', T.zeros([1]));
    expect(() => copy.loadStateDict(stray, { strict: true })).toThrow(/extra\.weight/);
  });

  it("iuvFromOutput: argmax part, U/V read from that part's channel, zero on background", async () => {
    // Two pixels: the first predicts part 3, the second background.
    const I = new Float32Array(25 * 2);
    I[3 * 2 + 0] = 5;
    I[0 * 2 + 1] = 5;
    const U = new Float32Array(24 * 2).fill(0.9);
    const V = new Float32Array(24 * 2).fill(0.1);
    U[2 * 2 + 0] = 0.25; // channel 2 = part 3
    V[2 * 2 + 0] = 0.75;
    const r = iuvFromOutput({
      I: T.tensor(I, [1, 25, 1, 2]),
      U: T.tensor(U, [1, 24, 1, 2]),
      V: T.tensor(V, [1, 24, 1, 2]),
    });
    expect([...(await r.parts.intData())]).toEqual([3, 0]);
    expect([...(await r.u.data())]).toEqual([0.25, 0]);
    expect([...(await r.v.data())]).toEqual([0.75, 0]);
    expect(() =>
      iuvFromOutput({ I: T.zeros([1, 24, 1, 2]), U: T.zeros([1, 24, 1, 2]), V: T.zeros([1, 24, 1, 2]) }),
    ).toThrow(/iuvFromOutput: expected I \[N, 25, H, W\]/);
  });

  it('predictIuv: maps at the image size, parts 0..24, U/V in [0, 1]; a box predicts only inside it', async () => {
    model.eval();
    const image = T.rand([3, 50, 37]);
    const whole = await predictIuv(model, image, { inputSize: [64, 48] });
    expect([whole.width, whole.height, whole.parts.length, whole.u.length]).toEqual([37, 50, 50 * 37, 50 * 37]);
    expect(whole.parts.every((p) => p >= 0 && p <= 24)).toBe(true);
    whole.parts.forEach((p, i) => {
      expect(whole.u[i]).toBeGreaterThanOrEqual(0);
      expect(whole.u[i]).toBeLessThanOrEqual(1);
      if (p === 0) expect([whole.u[i], whole.v[i]]).toEqual([0, 0]);
    });
    // A box reaching past the left and bottom edges, with a network that says "part 5" everywhere: part 5
    // exactly inside the box (clipped to the image), background outside.
    const biased = T.nn.withoutInit(() => new DensePoseHead(DENSEPOSE_SMALL));
    biased.loadStateDict(model.stateDict());
    biased.index_uv.bias!.assign(T.tensor(Float32Array.from({ length: 25 }, (_, c) => (c === 5 ? 1e3 : 0))));
    biased.eval();
    const box = { x: -5, y: 20, width: 24, height: 32 };
    const boxed = await predictIuv(biased, image, { box, inputSize: [32, 32] });
    boxed.parts.forEach((p, i) => {
      const x = i % 37;
      const y = Math.floor(i / 37);
      expect(p).toBe(x < box.x + box.width && y >= box.y ? 5 : 0);
      if (p === 5) expect(boxed.u[i]).toBeGreaterThan(0);
    });
    await expect(predictIuv(model, T.zeros([1, 50, 37]))).rejects.toThrow(
      /predictIuv: expected an RGB image \[3, H, W\]/,
    );
    model.train();
    await expect(predictIuv(model, image)).rejects.toThrow(/training mode/);
    model.eval();
    await expect(predictIuv(model, image, { inputSize: [16, 16] })).rejects.toThrow(/too small/);
  });

  it('personCrop: padded keypoint box at the aspect, missing keypoints left out', () => {
    // Keypoints span x 40..60, y 10..90 (the (0, 0, 0) one is missing).
    const kp: [number, number, number][] = [
      [50, 10, 0.9],
      [40, 50, 0.8],
      [60, 50, 0.7],
      [50, 90, 0.9],
      [0, 0, 0],
    ];
    // 20 x 80 padded by 0.25 each side -> 30 x 120; aspect 4/3 widens to 90 x 120 about the centre (50, 50).
    expect(personCrop(kp, { margin: 0.25 })).toEqual({ x: 5, y: -10, width: 90, height: 120 });
    // A wide box gets taller instead: 80 x 10 -> 120 x 15 -> 120 x 160.
    const wide = [
      { x: 10, y: 30 },
      { x: 90, y: 40 },
      { x: 500, y: 500, visible: false },
    ];
    expect(personCrop(wide, { margin: 0.25 })).toEqual({ x: -10, y: -45, width: 120, height: 160 });
    expect(() => personCrop([[1, 2, 0]])).toThrow(/none of the 1 keypoints is visible/);
  });
});
