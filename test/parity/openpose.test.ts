import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { OPENPOSE_BODY, OPENPOSE_SMALL, OpenPoseBody, gaussianSmooth, openPoseKeys, peakMask, poseMaps } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/compare.js';
import { ModelGolden } from '../helpers/model-golden.js';

beforeAll(async () => {
  await T.init();
});

describe('OpenPose body network against PyTorch', () => {
  it('every stage output of a small model loaded from the PyTorch port layout', async () => {
    const g = new ModelGolden('openpose_small');
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    // The golden holds the port's prefixed keys (model0.conv1_1.weight, ...): mapped to the official flat names.
    model.loadStateDict(openPoseKeys(g.stateDict()));
    const out = model.forward(g.tensor('input/x'));
    expect(out.stages.length).toBe(3);
    for (const [i, s] of out.stages.entries()) {
      for (const [name, t] of [['paf', s.paf], ['heatmap', s.heatmap]] as const) {
        const key = `output/${name}${i + 1}`;
        expect([...t.shape]).toEqual(g.host(key).shape);
        expectClose(await t.data(), g.host(key).data, 1e-4, key);
      }
    }
  });

  it('the released layer list: a ReLU after the last heatmap convolution only (finalHeatmapRelu)', async () => {
    const g = new ModelGolden('openpose_small');
    expect(OPENPOSE_BODY.finalHeatmapRelu).toBe(true);
    const model = new OpenPoseBody({ ...OPENPOSE_SMALL, finalHeatmapRelu: true });
    model.loadStateDict(openPoseKeys(g.stateDict()));
    const out = model.forward(g.tensor('input/x'));
    // Earlier stages are unchanged; the last heatmap is non-negative, the last PAF keeps its sign.
    expectClose(await out.stages[1]!.heatmap.data(), g.host('output/heatmap2').data, 1e-4, 'heatmap2');
    const heat = await out.stages[2]!.heatmap.data();
    expectClose(heat, g.host('output_released/heatmap3').data, 1e-4, 'released heatmap3');
    expect(Math.min(...heat)).toBeGreaterThanOrEqual(0);
    expectClose(await out.stages[2]!.paf.data(), g.host('output_released/paf3').data, 1e-4, 'released paf3');
    expect(Math.min(...(await out.stages[2]!.paf.data()))).toBeLessThan(0);
  });

  it('the full model has the official key names and shapes (52.3M parameters)', () => {
    const expected = JSON.parse(readFileSync(fileURLToPath(new URL('../golden/out/openpose_keys.json', import.meta.url)), 'utf8')) as Record<string, number[]>;
    const model = T.nn.withoutInit(() => new OpenPoseBody(OPENPOSE_BODY));
    const flat = openPoseKeys(new Map(Object.entries(expected)));
    expect(model.checkStateDict(flat)).toEqual({ missing: [], unexpected: [], mismatched: [] });
    expect(model.numParameters()).toBe(52311446);
    // The official file's flat names are ours already.
    expect([...model.stateDict().keys()][0]).toBe('conv1_1.weight');
    expect([...model.stateDict().keys()].at(-1)).toBe('Mconv7_stage6_L2.bias');
    model.dispose();
  });
});

describe('OpenPose peak smoothing against scipy.ndimage.gaussian_filter(sigma=3)', () => {
  for (const name of ['border', 'tiny']) {
    it(`${name}: the 'reflect' border (body.py) and 'zeros', smoothed maps and body.py's peaks`, async () => {
      const g = new ModelGolden('openpose_peaks');
      const x = g.tensor(`${name}/x`);
      expectClose(await gaussianSmooth(x).data(), g.host(`${name}/reflect`).data, 1e-5, `${name} reflect`);
      expectClose(await gaussianSmooth(x, 3, 'zeros').data(), g.host(`${name}/zeros`).data, 1e-5, `${name} zeros`);
      expect([...(await peakMask(x).data())]).toEqual([...g.host(`${name}/peaks`).data]);
      expect([...(await peakMask(x, 0.1, 'zeros').data())]).toEqual([...g.host(`${name}/peaks_zeros`).data]);
    });
  }

  it('a peak one pixel from the border stays there with reflect; zeros pull it inwards', async () => {
    const g = new ModelGolden('openpose_peaks');
    const [C, H, W] = g.host('border/x').shape as [number, number, number];
    const at = (mask: Float32Array | Int32Array | Uint8Array, c: number, y: number, x: number) => mask[c * H * W + y * W + x]!;
    const reflect = await peakMask(g.tensor('border/x')).data();
    const zeros = await peakMask(g.tensor('border/x'), 0.1, 'zeros').data();
    expect(C).toBe(3);
    // Channel 2: a blob centred at x = 48.7 of 50 (within 1 px of the right border).
    expect(at(reflect, 2, 12, 49)).toBe(1);
    expect(at(zeros, 2, 12, 49)).toBe(0);
    expect(at(zeros, 2, 12, 48)).toBe(1);
  });

  it('refuses bad arguments with named errors', () => {
    expect(() => gaussianSmooth(T.zeros([4, 4]))).toThrow(/expected \[C, H, W\]/);
    expect(() => gaussianSmooth(T.zeros([1, 4, 4]), 3, 'wrap' as 'zeros')).toThrow(/border must be/);
  });
});

describe("OpenPose maps against body.py's procedure (torch bicubic for cv2's INTER_CUBIC)", () => {
  it('scale_search [0.5, 1] at boxsize 64: resize, pad to 8 with 128, network, x8, crop, resize back, average; then the smoothing', async () => {
    const weights = new ModelGolden('openpose_small');
    const g = new ModelGolden('openpose_maps');
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    model.loadStateDict(openPoseKeys(weights.stateDict()));
    const rgb = g.host('input/rgb');
    const [, H, W] = rgb.shape as [number, number, number];
    const data = new Uint8Array(H * W * 3);
    for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) data[3 * i + c] = rgb.data[c * H * W + i]!;
    const seen: number[][] = [];
    const forward = model.forward.bind(model);
    model.forward = (x) => (seen.push([...x.shape]), forward(x));
    const maps = poseMaps(model, { width: W, height: H, data }, { scales: [0.5, 1], boxsize: Number(g.metadata.boxsize) });
    const inputs = JSON.parse(g.metadata.inputs!) as Record<string, number[]>;
    expect(seen).toEqual([[1, ...inputs['0.5']!], [1, ...inputs['1.0']!]]);
    expectClose(await maps.heatmap.data(), g.host('output/heatmap').data, 1e-5, 'heatmap');
    expectClose(await maps.paf.data(), g.host('output/paf').data, 1e-5, 'paf');
    expectClose(await gaussianSmooth(maps.heatmap).data(), g.host('output/smoothed').data, 1e-5, 'smoothed');
  });
});
