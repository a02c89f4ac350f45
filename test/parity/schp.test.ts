import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import {
  LIP_LABELS,
  SCHP_CONFIGS,
  SCHPNetwork,
  flipPermutation,
  parseHuman,
  schpKeys,
  schpPalette,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

let g: ModelGolden;
let model: SCHPNetwork;

beforeAll(async () => {
  await T.init();
  g = new ModelGolden('schp_small');
  model = new SCHPNetwork(SCHP_CONFIGS.small).eval();
  // Strict: the golden holds the official key names (InPlaceABN without num_batches_tracked).
  model.loadStateDict(g.stateDict());
});

/** out[c, y, x] = t[perm[c], y, W - 1 - x] for a host [C, H, W] array. */
function mirrorSwap(t: Float32Array, C: number, H: number, W: number, perm: number[]): Float32Array {
  const out = new Float32Array(t.length);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) out[(c * H + y) * W + x] = t[(perm[c]! * H + y) * W + (W - 1 - x)]!;
  }
  return out;
}

describe('SCHP (CE2P) against PyTorch', () => {
  it('parsing, fusion and edge logits of a small model with official key names', async () => {
    const [[parsing, fusion], [edge]] = model.forward(g.tensor('input/x'));
    for (const [name, t] of [
      ['parsing', parsing],
      ['fusion', fusion],
      ['edge', edge],
    ] as const) {
      const key = `output/${name}`;
      expect([...t.shape], key).toEqual(g.host(key).shape);
      expectClose(await t.data(), g.host(key).data, 1e-4, key);
    }
    T.dispose([parsing, fusion, edge]);
  });

  it('small_stride2: the same weights without the stem pool give logits at stride 2', async () => {
    const s2 = new SCHPNetwork(SCHP_CONFIGS.small_stride2).eval();
    s2.loadStateDict(g.stateDict());
    const [[parsing, fusion], [edge]] = s2.forward(g.tensor('input/x'));
    expect(parsing.shape.slice(2)).toEqual([33, 25]);
    for (const [name, t] of [
      ['parsing', parsing],
      ['fusion', fusion],
      ['edge', edge],
    ] as const) {
      const key = `stride2/${name}`;
      expect([...t.shape], key).toEqual(g.host(key).shape);
      expectClose(await t.data(), g.host(key).data, 1e-4, key);
    }
    T.dispose([parsing, fusion, edge]);
  });

  it('the official ResNet-101 LIP model has the checkpoint key names and shapes (66.7M parameters)', () => {
    const expected = JSON.parse(
      readFileSync(fileURLToPath(new URL('../golden/out/schp_lip_keys.json', import.meta.url)), 'utf8'),
    ) as Record<string, number[]>;
    const full = T.nn.withoutInit(() => new SCHPNetwork(SCHP_CONFIGS.resnet101));
    // Checkpoints are saved from DataParallel: 'module.' prefixes.
    const shapes = schpKeys(new Map(Object.entries(expected).map(([k, v]) => [`module.${k}`, v])));
    expect(full.checkStateDict(shapes)).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect([...full.stateDict().keys()].sort()).toEqual(Object.keys(expected).sort());
    expect(full.numParameters()).toBe(66723928);
    full.dispose();
  });

  it('parseHuman matches the official preprocessing, inference and warp back (box padded top/bottom and left/right)', async () => {
    for (const [image, key] of [
      ['parse/image', 'parse/logits'],
      ['parse/image_tall', 'parse/logits_tall'],
    ] as const) {
      const r = parseHuman(model, g.tensor(image), { inputSize: [57, 41] });
      const h = g.host(image);
      expect([...r.logits.shape]).toEqual([20, h.shape[1], h.shape[2]]);
      expect([...r.labels.shape]).toEqual([h.shape[1], h.shape[2]]);
      expect(r.labels.dtype).toBe('int32');
      expectClose(await r.logits.data(), g.host(key).data, 1e-4, key);
      // Labels are the argmax of the logits.
      const logits = await r.logits.data();
      const labels = await r.labels.data();
      const HW = labels.length;
      for (let i = 0; i < HW; i += 37) {
        let best = 0;
        for (let c = 1; c < 20; c++) if (logits[c * HW + i]! > logits[best * HW + i]!) best = c;
        expect(labels[i]).toBe(best);
      }
      T.dispose([r.logits, r.labels]);
    }
  });

  it('parseHuman with flip and multi-scale testing matches evaluate.py', async () => {
    const r = parseHuman(model, g.tensor('parse/image'), { inputSize: [57, 41], flip: true, scales: [1, 0.75] });
    expectClose(await r.logits.data(), g.host('parse/logits_flip_ms').data, 1e-4, 'parse/logits_flip_ms');
    T.dispose([r.logits, r.labels]);
  });

  it('flip test averages with the mirrored prediction, LIP left/right channels swapped', async () => {
    const perm = flipPermutation(20, LIP_LABELS.flipPairs);
    expect(perm).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 14, 17, 16, 19, 18]);
    // A square image at the input size: the box transform is the identity, so mirroring commutes with it.
    const image = T.rand([1, 3, 33, 33]);
    const opts = { inputSize: [33, 33] as [number, number] };
    const plain = parseHuman(model, image, opts);
    const mirrored = parseHuman(model, T.flip(image, [3]), opts);
    const flipped = parseHuman(model, image, { ...opts, flip: true });
    const a = await plain.logits.data();
    const b = mirrorSwap(await mirrored.logits.data(), 20, 33, 33, perm);
    const expected = a.map((v, i) => 0.5 * (v + b[i]!));
    expectClose(await flipped.logits.data(), expected, 1e-5, 'flip average');
    // Without the swap the average would differ on the left/right channels.
    const unswapped = mirrorSwap(await mirrored.logits.data(), 20, 33, 33, [...Array(20).keys()]);
    const wrong = a.map((v, i) => 0.5 * (v + unswapped[i]!));
    expect(() => expectClose(wrong, expected, 1e-3, 'unswapped')).toThrow();
    T.dispose([image, plain.logits, plain.labels, mirrored.logits, mirrored.labels, flipped.logits, flipped.labels]);
  });

  it('label map shape and SCHP palette', async () => {
    const r = parseHuman(model, T.rand([3, 21, 30]), { inputSize: [40, 40] });
    expect([...r.labels.shape]).toEqual([21, 30]);
    const labels = await r.labels.data();
    expect(labels.every((v) => v >= 0 && v < 20)).toBe(true);
    // get_palette(20): label bits 0/1/2 into R/G/B from the top bit down.
    const p = schpPalette(20);
    expect(p.slice(0, 4)).toEqual([
      [0, 0, 0],
      [128, 0, 0],
      [0, 128, 0],
      [128, 128, 0],
    ]);
    expect(p[8]).toEqual([64, 0, 0]);
    expect(p[19]).toEqual([128, 192, 0]);
    expect(() => parseHuman(model, T.rand([2, 3, 8, 8]))).toThrow(/parseHuman: expected an RGB image/);
    model.train();
    expect(() => parseHuman(model, T.rand([3, 8, 8]))).toThrow(/training mode/);
    model.eval();
  });
});
