import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHP_CONFIGS } from '@leffa-webgpu/models';
import {
  ConfusionMatrix,
  SchpTrainer,
  aggregateModels,
  balancedEdgeLoss,
  consistencyLoss,
  corruptLabels,
  edgeTargets,
  reestimateBatchNorm,
  softEdgeMap,
  syntheticParsingExample,
} from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'schp-train-'));

beforeAll(async () => {
  await T.init();
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// 7 wide, 5 high: one pixel of class 3 at (y 2, x 3) on background, the last row ignored.
const W7 = 7;
const H5 = 5;
const MAP = Uint8Array.from({ length: W7 * H5 }, (_, i) => (i >= 4 * W7 ? 255 : i === 2 * W7 + 3 ? 3 : 0));
// Raw marks (official neighbour rules): the pixel itself, (3,3) below it, (2,2) left, (1,2) up-left, (1,4)
// up-right; dilated 3x3. No pair with the ignored row counts.
const EDGES = [
  [0, 1, 1, 1, 1, 1, 0],
  [0, 1, 1, 1, 1, 1, 0],
  [0, 1, 1, 1, 1, 1, 0],
  [0, 1, 1, 1, 1, 0, 0],
  [0, 0, 1, 1, 1, 0, 0],
].flat();

describe('SCHP training pieces', () => {
  it('edge ground truth: label changes towards the official four neighbours, 255 skipped, dilated 3x3', async () => {
    expect([...edgeTargets(MAP, W7, H5)]).toEqual(EDGES);
    // A vertical boundary between columns 2 and 3 gives a 4-column band.
    const halves = Uint8Array.from({ length: 36 }, (_, i) => (i % 6 < 3 ? 0 : 5));
    expect([...edgeTargets(halves, 6, 6)]).toEqual(
      Array.from({ length: 36 }, (_, i) => (i % 6 >= 1 && i % 6 <= 4 ? 1 : 0)),
    );
    expect([...edgeTargets(new Uint8Array(12).fill(7), 4, 3)]).toEqual(new Array(12).fill(0));
    // The differentiable edge map equals it on one-hot probabilities.
    const hot = new Float32Array(20 * W7 * H5);
    MAP.forEach((l, i) => {
      if (l !== 255) hot[l * W7 * H5 + i] = 1;
    });
    const valid = T.tensor(
      Float32Array.from(MAP, (l) => (l === 255 ? 0 : 1)),
      [1, H5, W7],
    );
    const soft = softEdgeMap(T.tensor(hot, [1, 20, H5, W7]), valid);
    expect([...(await soft.data())]).toEqual(EDGES);
  });

  it('class-balanced edge cross-entropy matches a hand computation', async () => {
    const logits = [0.3, -1.2, 2.0, 0.5, 1.1, 0.7, -0.4, 0.9]; // [1, 2, 2, 2]: channel 0 then channel 1
    const edges = [0, 1, 0, 0];
    const loss = await balancedEdgeLoss(
      T.tensor(logits, [1, 2, 2, 2]),
      T.tensor(Int32Array.from(edges), [1, 2, 2]),
    ).item();
    // 1 edge pixel, 3 non-edge: w_pos = 3/4, w_neg = 1/4; weighted mean of the NLL.
    const w = [1 / 4, 3 / 4];
    let num = 0;
    let den = 0;
    edges.forEach((y, i) => {
      const z0 = logits[i]!;
      const z1 = logits[4 + i]!;
      const lse = Math.log(Math.exp(z0) + Math.exp(z1));
      num += w[y]! * (lse - (y ? z1 : z0));
      den += w[y]!;
    });
    expect(loss).toBeCloseTo(num / den, 5);
  });

  it('the consistency term has a non-zero gradient with respect to the parsing logits', async () => {
    const H = 12;
    const W = 10;
    const labels = Uint8Array.from({ length: H * W }, (_, i) => (i % W < 4 ? 0 : i < (H * W) / 2 ? 5 : 9));
    const edges = edgeTargets(labels, W, H);
    const gen = new T.Generator(5);
    const parsing = T.randn([1, 20, 6, 5], { generator: gen });
    parsing.requiresGrad = true;
    const edge = T.randn([1, 2, 6, 5], { generator: gen });
    const loss = consistencyLoss(
      parsing,
      edge,
      T.tensor(Int32Array.from(labels), [1, H, W]),
      T.tensor(Int32Array.from(edges), [1, H, W]),
    );
    loss.backward();
    expect(await loss.item()).toBeGreaterThan(0);
    const g = await parsing.grad!.data();
    expect(g.every(Number.isFinite)).toBe(true);
    expect(g.reduce((s, v) => s + Math.abs(v), 0)).toBeGreaterThan(1e-6);
  });

  it('online model aggregation is exactly w = m/(m+1) w + 1/(m+1) w_m (float32), buffers untouched', async () => {
    const avg = new T.nn.Conv2d(2, 3, 1);
    const model = new T.nn.Conv2d(2, 3, 1);
    const f = Math.fround;
    const bias = await model.bias!.data();
    let expected: Float32Array | null = null;
    let expectedBias: Float32Array | null = null;
    for (let m = 0; m < 3; m++) {
      const w = Float32Array.from({ length: 6 }, (_, i) => Math.sin(1.7 * i + m) * (m + 1));
      model.weight.assign(T.tensor(w, [3, 2, 1, 1]));
      const a = 1 / (m + 1);
      aggregateModels(avg, model, a);
      const step = (prev: Float32Array | null, cur: Float32Array) =>
        prev ? prev.map((v, i) => f(f(v * f(1 - a)) + f(cur[i]! * f(a)))) : cur.slice();
      expected = step(expected, w);
      expectedBias = step(expectedBias, bias);
      expect([...(await avg.weight.data())]).toEqual([...expected]);
      expect([...(await avg.bias!.data())]).toEqual([...expectedBias]);
    }
  });

  it('BN re-estimation gives the cumulative average of the batch statistics (dataset mean), restoring the module', async () => {
    const bn = new T.nn.BatchNorm2d(2);
    const net = new T.nn.Sequential(bn);
    // Stale statistics that the re-estimation must discard.
    T.tidy(() => void net.forward(T.full([2, 2, 2, 2], 9)));
    net.eval();
    const batches = [0, 1, 2].map((b) =>
      Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => Math.cos(i * 0.9 + b) * (b + 1) + b),
    );
    reestimateBatchNorm(net, 3, (b) => T.tensor(batches[b]!, [2, 2, 3, 1]));
    const means: number[][] = [];
    const vars: number[][] = [];
    for (const data of batches) {
      const m: number[] = [];
      const v: number[] = [];
      for (let c = 0; c < 2; c++) {
        const xs = [0, 1].flatMap((n) => [0, 1, 2].map((k) => data[(n * 2 + c) * 3 + k]!));
        const mu = xs.reduce((a, b) => a + b, 0) / xs.length;
        m.push(mu);
        v.push(xs.reduce((a, b) => a + (b - mu) ** 2, 0) / (xs.length - 1));
      }
      means.push(m);
      vars.push(v);
    }
    const runMean = await bn.running_mean!.data();
    const runVar = await bn.running_var!.data();
    for (let c = 0; c < 2; c++) {
      // Equal batch sizes: the average of the batch means is the dataset mean.
      const all = batches.flatMap((d) => [0, 1].flatMap((n) => [0, 1, 2].map((k) => d[(n * 2 + c) * 3 + k]!)));
      expect(runMean[c]).toBeCloseTo(all.reduce((a, b) => a + b, 0) / all.length, 5);
      expect(runVar[c]).toBeCloseTo(vars.reduce((a, v) => a + v[c]!, 0) / 3, 5);
    }
    expect(bn.momentum).toBe(0.1);
    expect(net.training).toBe(false);
  });

  it('label noise is deterministic in its seed, and level 0 is the identity', () => {
    const clean = syntheticParsingExample(3, 64, 48).labels;
    const a = corruptLabels(clean, 48, 64, { level: 0.6, seed: 11 });
    const b = corruptLabels(clean, 48, 64, { level: 0.6, seed: 11 });
    const c = corruptLabels(clean, 48, 64, { level: 0.6, seed: 12 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(corruptLabels(clean, 48, 64, { level: 0, seed: 11 })).toEqual(clean);
    const changed = a.reduce((n, l, i) => n + (l !== clean[i] ? 1 : 0), 0);
    expect(changed).toBeGreaterThan(0);
    expect(changed).toBeLessThan(clean.length / 2);
    // Only LIP classes come out.
    expect(a.every((l) => l < 20)).toBe(true);
    // The synthetic example's noisy labels are the same corruption.
    expect(syntheticParsingExample(3, 64, 48, 0.6).labels).toEqual(
      corruptLabels(clean, 48, 64, {
        level: 0.6,
        seed: 3,
        pairs: [
          [14, 15],
          [16, 17],
          [18, 19],
        ],
      }),
    );
  });

  it('confusion-matrix metrics', () => {
    const cm = new ConfusionMatrix(3);
    cm.add([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 255]);
    const m = cm.metrics();
    expect(m.pixelAccuracy).toBeCloseTo(4 / 5);
    // IoU: class 0: 1 / 2, class 1: 2 / 3, class 2: 1 / 1.
    expect(m.iou[0]).toBeCloseTo(0.5);
    expect(m.iou[1]).toBeCloseTo(2 / 3);
    expect(m.meanIoU).toBeCloseTo((0.5 + 2 / 3 + 1) / 3);
  });
});

describe('SCHP training', () => {
  const batch = [0, 1].map((s) => syntheticParsingExample(100 + s, 64, 48));

  it('a short run of the small model reduces the loss', async () => {
    const trainer = new SchpTrainer({
      seed: 1,
      optimizer: 'adamw',
      lr: 3e-3,
      augment: false,
      cycleStart: 1000,
      cycleSteps: 10,
      warmupSteps: 0,
    });
    const losses: number[] = [];
    for (let i = 0; i < 16; i++) {
      const l = trainer.step(batch);
      losses.push((await l.data())[0]!);
      l.dispose();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    const head = (losses[0]! + losses[1]!) / 2;
    const tail = (losses[13]! + losses[14]! + losses[15]!) / 3;
    expect(tail).toBeLessThan(0.85 * head);
  });

  it('cycle boundaries aggregate the weights, re-estimate BN and switch to soft labels; resume is bit-for-bit', async () => {
    const opts = { seed: 2, optimizer: 'sgd' as const, lr: 5e-3, cycleStart: 2, cycleSteps: 2, warmupSteps: 1 };
    const a = new SchpTrainer(opts);
    const bnBatches = [
      [0, 1],
      [2, 3],
    ].map((s) => s.map((k) => syntheticParsingExample(200 + k, 64, 48)));
    for (let i = 0; i < 2; i++) {
      a.step(batch).dispose();
      await T.throttle();
    }
    expect(a.correctionDue).toBe(true);
    a.selfCorrect(bnBatches);
    expect(a.rounds).toBe(1);
    expect(a.correctionDue).toBe(false);
    // Round 0 copies the weights; the BN statistics are the aggregate's own (re-estimated) ones.
    const w = (m: T.Module, name: string) => new Map(m.namedParameters()).get(name)!.data();
    expect([...(await w(a.schp, 'decoder.conv4.weight'))]).toEqual([...(await w(a.model, 'decoder.conv4.weight'))]);
    const rm = await a.schp.bn1.running_mean!.data();
    expect([...rm]).not.toEqual([...(await a.model.bn1.running_mean!.data())]);
    expect(rm.some((v) => v !== 0)).toBe(true);
    // Soft labels: a distribution per pixel mixing the aggregate's prediction with the one-hot labels.
    const soft = a.softLabels(batch);
    expect(soft.shape).toEqual([2, 20, 64, 48]);
    const s = await soft.data();
    soft.dispose();
    const plane = 64 * 48;
    for (const i of [0, 77, 1234, plane - 1]) {
      let sum = 0;
      for (let c = 0; c < 20; c++) sum += s[c * plane + i]!;
      expect(sum).toBeCloseTo(1, 5);
    }

    await a.save(join(tmp, 'ckpt'));
    const expected: number[][] = [];
    for (let i = 0; i < 2; i++) {
      const l = a.step(batch);
      expected.push([...(await l.data())]);
      l.dispose();
    }
    expect(expected.flat().every(Number.isFinite)).toBe(true);
    // Step 4 ends the second cycle: w_schp = 1/2 w_schp + 1/2 w.
    expect(a.correctionDue).toBe(true);
    const prev = await w(a.schp, 'decoder.conv4.weight');
    a.selfCorrect(bnBatches);
    const now = await w(a.model, 'decoder.conv4.weight');
    const f = Math.fround;
    expect([...(await w(a.schp, 'decoder.conv4.weight'))]).toEqual(
      [...prev].map((v, i) => f(f(v * 0.5) + f(now[i]! * 0.5))),
    );

    // A fresh trainer (other seed) resumed from the checkpoint repeats the two soft-label steps exactly.
    const b = new SchpTrainer({ ...opts, seed: 9 });
    await b.load(join(tmp, 'ckpt'));
    expect([b.stepCount, b.rounds]).toEqual([2, 1]);
    for (let i = 0; i < 2; i++) {
      const l = b.step(batch);
      expect([...(await l.data())]).toEqual(expected[i]);
      l.dispose();
    }
    expect([...(await w(b.model, 'decoder.conv4.weight'))]).toEqual([...now]);
    // Same parameter shapes, other structure: resuming into the stride-2 config is refused, not silently run.
    const other = new SchpTrainer({ ...opts, config: SCHP_CONFIGS.small_stride2 });
    await expect(other.load(join(tmp, 'ckpt'))).rejects.toThrow(
      /was trained with config .*"stemPool":true.*this trainer has .*"stemPool":false/,
    );
  });
});
