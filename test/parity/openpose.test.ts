import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import {
  OPENPOSE_BODY,
  OPENPOSE_SMALL,
  OpenPoseBody,
  gaussianSmooth,
  openPoseKeys,
  peakMask,
  poseMaps,
  resizeByFactor,
} from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectClose, normalisedError } from '../helpers/compare.js';
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
      for (const [name, t] of [
        ['paf', s.paf],
        ['heatmap', s.heatmap],
      ] as const) {
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
    const expected = JSON.parse(
      readFileSync(fileURLToPath(new URL('../golden/out/openpose_keys.json', import.meta.url)), 'utf8'),
    ) as Record<string, number[]>;
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
    const at = (mask: Float32Array | Int32Array | Uint8Array, c: number, y: number, x: number) =>
      mask[c * H * W + y * W + x]!;
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

describe("OpenPose maps against body.py's procedure (cv2.resize INTER_CUBIC transcribed in numpy)", () => {
  const setup = () => {
    const weights = new ModelGolden('openpose_small');
    const g = new ModelGolden('openpose_maps');
    const model = new OpenPoseBody(OPENPOSE_SMALL);
    model.loadStateDict(openPoseKeys(weights.stateDict()));
    const rgb = g.host('input/rgb');
    const [, H, W] = rgb.shape as [number, number, number];
    const data = new Uint8Array(H * W * 3);
    for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) data[3 * i + c] = rgb.data[c * H * W + i]!;
    const scales = g.metadata.scales!.split(',').map(Number);
    return { g, model, image: { width: W, height: H, data }, scales, boxsize: Number(g.metadata.boxsize) };
  };
  const key = (s: number) => (Number.isInteger(s) ? s.toFixed(1) : String(s));

  it('resizeByFactor is cv2.resize(fx=m): size round(W m), source (o + 0.5) / m - 0.5 (not the rounded size)', async () => {
    const { g, image, scales, boxsize } = setup();
    const { width: W, height: H } = image;
    const bgr = T.flip(T.reshape(g.tensor('input/rgb'), [1, 3, H, W]), [1]);
    for (const s of scales) {
      const expected = g.host(`resized/scale${key(s)}`);
      const m = (s * boxsize) / H;
      const ours = resizeByFactor(bgr, m);
      expect([...ours.shape], `scale ${s}`).toEqual([1, ...expected.shape]);
      expectClose(await ours.data(), expected.data, 1e-6, `resized at scale ${s}`);
      // A resize to the rounded size (what poseMaps did before) samples elsewhere wherever W m is not an integer.
      if (!Number.isInteger(W * m)) {
        const bySize = T.interpolate(bgr, { size: [expected.shape[1]!, expected.shape[2]!], mode: 'bicubic' });
        expect(normalisedError(await bySize.data(), expected.data), `size-based at scale ${s}`).toBeGreaterThan(1e-3);
      }
    }
    expect(() => resizeByFactor(bgr, 0)).toThrow(/factor must be a positive number/);
    expect(() => resizeByFactor(bgr, 0.001)).toThrow(/is empty/);
    expect(() => resizeByFactor(T.zeros([3, 4, 4]), 1)).toThrow(/expected \[N, C, H, W\]/);
  });

  it('scale_search [0.5, 1, 1.5] at boxsize 64: uint8 cubic resize by the multiplier, pad to 8 with 128, network, x8, crop, resize back, heatmaps accumulated as body.py; then the smoothing', async () => {
    const { g, model, image, scales, boxsize } = setup();
    // The network gets body.py's own input (so the maps compare tightly); ours is kept to be checked against it.
    const seen: T.Tensor[] = [];
    const forward = model.forward.bind(model);
    const theirs = (i: number) => T.unsqueeze(g.tensor(`input/scale${key(scales[i]!)}`), 0);
    model.forward = (x) => forward(theirs(seen.push(T.keep(x)) - 1));
    const maps = poseMaps(model, image, { scales, boxsize });
    expect(seen.length).toBe(scales.length);
    for (const [i, s] of scales.entries()) {
      const expected = g.host(`input/scale${key(s)}`);
      const unrounded = g.host(`resized/scale${key(s)}`);
      expect([...seen[i]!.shape], `input shape at scale ${s}`).toEqual([1, ...expected.shape]);
      const ours = await seen[i]!.data();
      // Equal, except a value one level off where the unrounded resize lies within 1e-3 of a rounding boundary
      // (OpenCV's fixed-point weights decide those; the network input is BGR / 256 - 0.5, padded with 128).
      const [C, h, w] = unrounded.shape as [number, number, number];
      const [, Hp, Wp] = expected.shape as [number, number, number];
      let ties = 0;
      for (let c = 0; c < C; c++) {
        for (let y = 0; y < Hp; y++) {
          for (let x = 0; x < Wp; x++) {
            const j = (c * Hp + y) * Wp + x;
            const d = Math.abs(ours[j]! - expected.data[j]!);
            if (d <= 1e-6) continue;
            const u = y < h && x < w ? unrounded.data[(c * h + y) * w + x]! : NaN;
            const nearTie = Math.abs(u - Math.floor(u) - 0.5) < 1e-3;
            expect(
              nearTie && Math.abs(d - 1 / 256) < 1e-6,
              `input at scale ${s}, channel ${c}, (${y}, ${x}): got ${ours[j]}, expected ${expected.data[j]} (unrounded ${u})`,
            ).toBe(true);
            ties++;
          }
        }
      }
      expect(ties, `one-level ties at scale ${s}`).toBeLessThan(5);
    }
    T.dispose(seen);
    expectClose(await maps.heatmap.data(), g.host('output/heatmap').data, 1e-5, 'heatmap (body.py accumulation)');
    expectClose(await maps.paf.data(), g.host('output/paf').data, 1e-5, 'paf');
    expectClose(await gaussianSmooth(maps.heatmap).data(), g.host('output/smoothed').data, 1e-5, 'smoothed');
    // The 'mean' option: each scale once. The two differ by far more than the tolerance.
    let calls = 0;
    model.forward = () => forward(theirs(calls++));
    const mean = poseMaps(model, image, { scales, boxsize, scaleAccumulation: 'mean' });
    expectClose(await mean.heatmap.data(), g.host('output/heatmap_mean').data, 1e-5, 'heatmap (mean)');
    expect(normalisedError(await mean.heatmap.data(), g.host('output/heatmap').data)).toBeGreaterThan(0.1);
    expectClose(await mean.paf.data(), g.host('output/paf').data, 1e-5, 'paf (mean)');
    expect(() => poseMaps(model, image, { scaleAccumulation: 'sum' as 'mean' })).toThrow(/scaleAccumulation must be/);
  });
});
