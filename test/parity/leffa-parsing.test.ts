import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { LEFFA_NECK_LABEL, LeffaHumanParsing, OnnxGraph, combineLeffaParsing } from '@leffa-webgpu/models';
import { loadLeffaHumanParsing } from '@leffa-webgpu/pipelines';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

const out = (name: string) => fileURLToPath(new URL(`../golden/out/${name}`, import.meta.url));
let g: ModelGolden;

beforeAll(async () => {
  await T.init();
  g = new ModelGolden('onnx_leffa');
});

const mismatches = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
};

describe("Leffa's human parsing (parsing_api.py) against its own code", () => {
  it('the ATR/LIP combination matches the official hole filling, neck and face mask on synthetic maps', () => {
    const atr = g.host('leffa/synthetic_atr');
    const [H, W] = atr.shape as [number, number];
    const { labels, faceMask } = combineLeffaParsing(atr.data, g.host('leffa/synthetic_lip').data, H, W);
    const expected = g.host('leffa/synthetic_labels').data;
    expect(mismatches(labels, expected)).toBe(0);
    expect(mismatches(faceMask, g.host('leffa/synthetic_face').data)).toBe(0);
    // The map exercises every rule: a kept 2100-pixel hole (hair, 2) and a filled 1900-pixel one (bag, 16).
    const count = (v: number) => labels.filter((l) => l === v).length;
    expect(count(LEFFA_NECK_LABEL)).toBeGreaterThan(0);
    expect(count(2)).toBeGreaterThan(2100);
    expect(count(16)).toBe(0);
    expect(count(6)).toBe(25);
    // Without the neck rule the face would be larger: the LIP map matters.
    const noLip = combineLeffaParsing(atr.data, new Uint8Array(H * W).fill(13), H, W);
    expect(noLip.labels.filter((l) => l === LEFFA_NECK_LABEL).length).toBe(0);
    expect(() => combineLeffaParsing(atr.data, new Uint8Array(3), H, W)).toThrow(
      /combineLeffaParsing: expected 19500 labels/,
    );
  });

  it('end to end on random-weight ATR (18 classes) and LIP (20 classes) exports: logits, label maps, combination', async () => {
    const atr = OnnxGraph.fromBytes(new Uint8Array(readFileSync(out('onnx_leffa_atr.onnx'))));
    const lip = OnnxGraph.fromBytes(new Uint8Array(readFileSync(out('onnx_leffa_lip.onnx'))));
    const parsing = new LeffaHumanParsing(atr, lip);
    const image = g.tensor('leffa/image');
    const r = await parsing.parse(image);
    const [H, W] = g.host('leffa/image').shape.slice(1) as [number, number];
    expect([r.height, r.width]).toEqual([H, W]);
    // Label maps are argmaxes of float logits: a near-tie may fall either way, so allow a few pixels.
    const tol = Math.ceil(H * W * 0.002);
    expect(mismatches(r.atr, g.host('leffa/atr_labels').data)).toBeLessThanOrEqual(tol);
    expect(mismatches(r.lip, g.host('leffa/lip_labels').data)).toBeLessThanOrEqual(tol);
    expect(new Set(r.atr).size).toBeGreaterThan(2);
    // The combination on the golden's own maps is exact; on ours within the argmax slack.
    const same = combineLeffaParsing(g.host('leffa/atr_labels').data, g.host('leffa/lip_labels').data, H, W);
    expect(mismatches(same.labels, g.host('leffa/labels').data)).toBe(0);
    expect(mismatches(same.faceMask, g.host('leffa/face').data)).toBe(0);
    expect(mismatches(r.labels, g.host('leffa/labels').data)).toBeLessThanOrEqual(4 * tol);
    image.dispose();
    parsing.dispose();
  });

  it('the fused logits through the executor match simple_extractor on PyTorch', async () => {
    const { parseHumanWith, ATR_LABELS } = await import('@leffa-webgpu/models');
    const atr = OnnxGraph.fromBytes(new Uint8Array(readFileSync(out('onnx_leffa_atr.onnx'))));
    const image = g.tensor('leffa/image');
    const r = parseHumanWith((x) => atr.run({ 'input.1': x })[atr.outputNames[1]!]!, 18, image, {
      labelSet: ATR_LABELS,
      inputSize: [89, 81],
    });
    expectClose(await r.logits.data(), g.host('leffa/atr_logits').data, 1e-4, 'leffa/atr_logits');
    T.dispose([image, r.logits, r.labels]);
    atr.dispose();
  });

  it('loadLeffaHumanParsing reads the two files; missing, corrupt and swapped files are reported', async () => {
    const parsing = await loadLeffaHumanParsing(out('onnx_leffa_atr.onnx'), out('onnx_leffa_lip.onnx'));
    const image = g.tensor('leffa/image');
    const r = await parsing.parse(image);
    const [H, W] = g.host('leffa/image').shape.slice(1) as [number, number];
    expect(mismatches(r.labels, g.host('leffa/labels').data)).toBeLessThanOrEqual(4 * Math.ceil(H * W * 0.002));
    parsing.dispose();
    const dir = mkdtempSync(join(tmpdir(), 'leffa-parsing-'));
    try {
      const cut = join(dir, 'parsing_atr.onnx');
      const bytes = readFileSync(out('onnx_leffa_atr.onnx'));
      writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
      await expect(loadLeffaHumanParsing(cut, out('onnx_leffa_lip.onnx'))).rejects.toThrow(
        /ATR human parser '.*parsing_atr.onnx': ONNX: .*(corrupt or truncated)/,
      );
      await expect(loadLeffaHumanParsing(out('onnx_leffa_atr.onnx'), join(dir, 'nope.onnx'))).rejects.toThrow(
        /LIP human parser '.*nope.onnx': does not exist/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Swapped: the 20-class LIP export where the 18-class ATR one belongs.
    const swapped = await loadLeffaHumanParsing(out('onnx_leffa_lip.onnx'), out('onnx_leffa_atr.onnx'));
    await expect(swapped.parse(image)).rejects.toThrow(
      /LeffaHumanParsing: the ATR graph gave \[1, 20, \d+, \d+\], not the 18 ATR classes: is it parsing_atr.onnx\?/,
    );
    swapped.dispose();
    image.dispose();
  });
});
