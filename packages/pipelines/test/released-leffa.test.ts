/**
 * The released Leffa folder end to end (loadReleasedLeffa) on random-weight files PyTorch wrote in the released
 * formats and layout (test/golden/cases_released_leffa.py), at small shapes and a 64x48 model size.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { readImage } from '@leffa-webgpu/data';
import { pilResize } from '@leffa-webgpu/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelGolden } from '../../../test/helpers/model-golden.js';
import { RELEASED_FOLDER, SMALL_RELEASED, releasedLeffaConfig } from '../../../test/helpers/released-leffa.js';
import {
  type RgbImage,
  leffaAgnosticMask,
  loadLeffaWeights,
  leffaOpenPoseKeypoints,
  leffaRepaint,
  leffaTransform,
  loadReleasedLeffa,
  missingReleasedLeffaFiles,
  resizeAndCenter,
} from '@leffa-webgpu/pipelines';

/** A deterministic test photo: smooth colour fields with a darker figure in the middle. */
function photo(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = Math.abs(x - width / 2) < width / 5 && y > height / 6;
      for (let c = 0; c < 3; c++)
        data[3 * (y * width + x) + c] =
          (inside ? 60 : 170) + Math.round(60 * Math.sin((x + 3 * c + seed) / 7) * Math.cos((y - seed) / 9));
    }
  }
  return { width, height, data };
}

const tmp = mkdtempSync(join(tmpdir(), 'released-leffa-'));
beforeAll(async () => {
  await T.init();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('loadReleasedLeffa on the released layout', () => {
  it('viton_hd try-on: app.py preprocessing, then Leffa (DDPM, guidance with rescale, repaint)', async () => {
    const leffa = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'viton_hd' });
    const person = photo(53, 77, 1);
    const garment = photo(90, 40, 2);
    const r = await leffa.tryon(person, garment, { garmentType: 'upper_body', steps: 2, seed: 3, repaint: true });
    const p = r.prepared;
    expect([r.image.width, r.image.height]).toEqual([48, 64]);
    // The stages are app.py's: resize_and_center, the 24x32 parse and keypoints, the mask back up, LeffaTransform.
    expect(p.src).toEqual(resizeAndCenter(person, 64, 48));
    expect(p.ref).toEqual(resizeAndCenter(garment, 64, 48));
    expect(p.parse!.size).toEqual([32, 24]);
    const frame =
      p.parse!.keypoints?.map(([x, y]) => [(x * 512) / 32, (y * 512) / 32] as const) ?? new Array(18).fill(null);
    const small = leffaAgnosticMask(p.parse!.labels, 32, 24, frame, 'upper_body', 'hd');
    expect(p.mask).toEqual(pilResize(small, 32, 24, 1, 64, 48, 'bicubic'));
    expect(p.inputs).toEqual(
      leffaTransform({ src: p.src, ref: p.ref, mask: p.mask, densepose: p.densepose }, 'virtual_tryon'),
    );
    // The same seed gives the same image (repaint: do_repaint of it); another seed another one.
    const plain = await leffa.generate(p, { steps: 2, seed: 3 });
    expect(r.image).toEqual(leffaRepaint(p.src, plain, p.inputs.mask));
    const other = await leffa.generate(p, { steps: 2, seed: 4 });
    expect(other.data).not.toEqual(plain.data);
  });

  it('dress_code uses the DressCode mask and the I x 3 densepose', async () => {
    const leffa = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'dress_code' });
    const p = await leffa.prepare(photo(50, 70, 5), photo(40, 40, 6), 'dresses');
    const frame =
      p.parse!.keypoints?.map(([x, y]) => [(x * 512) / 32, (y * 512) / 32] as const) ?? new Array(18).fill(null);
    expect(p.mask).toEqual(
      pilResize(leffaAgnosticMask(p.parse!.labels, 32, 24, frame, 'dresses', 'dc'), 32, 24, 1, 64, 48, 'bicubic'),
    );
    for (let i = 0; i < 64 * 48; i++) expect(p.densepose.data[3 * i]).toBe(p.densepose.data[3 * i + 2]);
    // The preprocessing models can leave the device before sampling; they load again when needed.
    const live = () => T.activeDevice().memoryStats().liveBytes;
    const before = live();
    await leffa.releasePreprocessing();
    expect(live()).toBeLessThan(before);
    const out = await leffa.generate(p, { steps: 1, refAcceleration: true });
    expect(out.data.length).toBe(64 * 48 * 3);
    expect((await leffa.prepare(photo(50, 70, 5), photo(40, 40, 6), 'dresses')).mask).toEqual(p.mask);
    const loaded = live();
    await leffa.dispose();
    expect(live()).toBeLessThan(loaded);
  });

  it('pose transfer (SDXL layout): everything masked, the IUV densepose, float16 where the adapter has it', async () => {
    const half = T.activeDevice().hasF16;
    const leffa = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'pose_transfer', half });
    const r = await leffa.poseTransfer(photo(48, 64, 7), photo(48, 64, 8), { steps: 2, refAcceleration: true });
    expect(r.prepared.mask.every((v) => v === 255)).toBe(true);
    expect(r.prepared.parse).toBeUndefined();
    expect(r.prepared.inputs).toEqual(
      leffaTransform(
        { src: r.prepared.src, ref: r.prepared.ref, mask: r.prepared.mask, densepose: r.prepared.densepose },
        'pose_transfer',
      ),
    );
    expect(r.image.data.length).toBe(64 * 48 * 3);
    await expect(leffa.tryon(photo(48, 64, 7), photo(48, 64, 8))).rejects.toThrow(/this is the pose-transfer model/);
    await expect(leffa.poseTransfer(photo(48, 64, 7), photo(48, 64, 8), { repaint: true })).rejects.toThrow(
      /repaint is a try-on option/,
    );
  });
});

/**
 * The Python reference's golden file, its images, and the folder's pipeline with the released detector settings
 * (1000 proposals, 100 detections), as the reference runs them.
 */
async function pythonCase(model: 'viton_hd' | 'pose_transfer') {
  const g = new ModelGolden('released_leffa');
  const image = (key: string): RgbImage => {
    const h = g.host(key);
    return { width: h.shape[1]!, height: h.shape[0]!, data: Uint8Array.from(h.data) };
  };
  const dp = SMALL_RELEASED.densepose;
  const detector = { ...dp.config!.detector, rpnPreNmsTopK: 1000, rpnPostNmsTopK: 1000, detectionsPerImage: 100 };
  const leffa = await loadReleasedLeffa(RELEASED_FOLDER, {
    ...SMALL_RELEASED,
    densepose: { ...dp, config: { ...dp.config!, detector } },
    model,
  });
  return { g, image, leffa };
}

describe("against app.py's preprocessing in Python (test/golden/cases_released_leffa.py)", () => {
  it('pose transfer: resize_and_center, the mask, the DensePose IUV and LeffaTransform from the same files', async () => {
    const { g, image, leffa } = await pythonCase('pose_transfer');
    const p = await leffa.prepare(image('pose_e2e/target'), image('pose_e2e/source'));
    await leffa.dispose();
    for (const k of ['src', 'ref', 'mask'] as const)
      expect([...p.inputs[k]], k).toEqual([...g.host(`pose_e2e/${k}`).data]);
    // The IUV image ([U, V, I]) and its normalisation, exactly; the random detector found people here.
    const want = g.host('pose_e2e/densepose_image').data;
    expect([...p.densepose.data]).toEqual([...want]);
    expect(want.some((v, i) => i % 3 === 2 && v > 0)).toBe(true);
    expect([...p.inputs.densepose]).toEqual([...g.host('pose_e2e/densepose').data]);
  });
});

describe("against app.py's try-on preprocessing in Python (test/golden/cases_released_leffa.py)", () => {
  it('viton_hd: the parse, the agnostic mask, the DensePose segmentation and LeffaTransform from the same files', async () => {
    const { g, image, leffa } = await pythonCase('viton_hd');
    const p = await leffa.prepare(image('tryon_e2e/person'), image('tryon_e2e/garment'), 'upper_body');
    await leffa.dispose();
    // The reference takes OpenPose's points as missing, as the folder's random OpenPose finds no person.
    expect(p.parse!.keypoints).toBeNull();
    expect(p.warnings).toEqual([expect.stringMatching(/OpenPose found no person/)]);
    for (const k of ['src', 'ref'] as const) expect([...p.inputs[k]], k).toEqual([...g.host(`tryon_e2e/${k}`).data]);
    // Label maps are argmaxes of float logits (near-ties could fall either way); on these files none does.
    expect([...p.parse!.labels]).toEqual([...g.host('tryon_e2e/parse').data]);
    const mask = g.host('tryon_e2e/mask').data;
    expect([...p.inputs.mask]).toEqual([...mask]);
    expect(new Set(mask).size).toBe(2);
    expect([...p.densepose.data]).toEqual([...g.host('tryon_e2e/densepose_image').data]);
    expect(g.host('tryon_e2e/densepose_image').data.some((v) => v > 0)).toBe(true);
    expect([...p.inputs.densepose]).toEqual([...g.host('tryon_e2e/densepose').data]);
  });
});

describe('a real photo on the released path (the astronaut, fixtures/README.md)', () => {
  const astronaut = fileURLToPath(new URL('./fixtures/astronaut-192x256.jpg', import.meta.url));

  it("app.py's try-on preprocessing of the photo equals Python's on the same files", async () => {
    const { g, image, leffa } = await pythonCase('viton_hd');
    // app.py opens the photo with PIL (libjpeg); jpeg-js upsamples the colour planes differently: on this photo
    // 1.35 levels apart on average, 86% of values within 2 levels, up to 40 on sharp colour edges.
    const pil = image('tryon_photo/person');
    const ours = readImage(astronaut);
    expect([ours.width, ours.height]).toEqual([192, 256]);
    const diff = ours.data.map((v, i) => Math.abs(v - pil.data[i]!));
    expect(diff.reduce((a, d) => a + d, 0) / diff.length).toBeLessThan(1.5);
    expect(diff.filter((d) => d <= 2).length / diff.length).toBeGreaterThan(0.85);
    // From PIL's pixels on, every stage is compared exactly.
    const p = await leffa.prepare(pil, image('tryon_photo/garment'), 'upper_body');
    await leffa.dispose();
    for (const k of ['src', 'ref'] as const) expect([...p.inputs[k]], k).toEqual([...g.host(`tryon_photo/${k}`).data]);
    // The parsers' input: the 24x32 bicubic resize of resize_and_center's image.
    expect([...pilResize(p.src.data, 64, 48, 3, 32, 24, 'bicubic')]).toEqual([...g.host('tryon_photo/src_small').data]);
    expect([...p.parse!.labels]).toEqual([...g.host('tryon_photo/parse').data]);
    const mask = g.host('tryon_photo/mask').data;
    expect([...p.inputs.mask]).toEqual([...mask]);
    expect(new Set(mask).size).toBe(2);
    const seg = g.host('tryon_photo/densepose_image').data;
    expect([...p.densepose.data]).toEqual([...seg]);
    expect(seg.some((v) => v > 0)).toBe(true);
    expect([...p.inputs.densepose]).toEqual([...g.host('tryon_photo/densepose').data]);
  });

  it('tryon on the photo file: the model-size image, and no shipped-parser checks on this path', async () => {
    const person = readImage(astronaut, { exifOrientation: true });
    // The shipped networks' checks refuse this photo (photo-checks.test.ts); the released parsers are the ones
    // meant for photos, so their path only carries app.py's own warning (random OpenPose finds no person here).
    const leffa = await loadReleasedLeffa(RELEASED_FOLDER, { ...SMALL_RELEASED, model: 'viton_hd' });
    const r = await leffa.tryon(person, photo(44, 44, 9), { garmentType: 'upper_body', steps: 1, seed: 42 });
    await leffa.dispose();
    expect([r.image.width, r.image.height, r.image.data.length]).toEqual([48, 64, 48 * 64 * 3]);
    expect(r.prepared.src).toEqual(resizeAndCenter(person, 64, 48));
    expect(r.prepared.warnings).toEqual([expect.stringMatching(/^OpenPose found no person/)]);
  });
});

describe('float16, as app.py runs Leffa', () => {
  it('half: the weights are read as float16 into a halved model (adapters with shader-f16)', async (ctx) => {
    if (!T.activeDevice().hasF16) ctx.skip();
    const config = releasedLeffaConfig('sdxl');
    const model = await loadLeffaWeights(join(RELEASED_FOLDER, 'pose_transfer.pth'), { config, dtype: 'float16' });
    const dtypes = new Set([...model.stateDict().values()].map((t) => t.dtype));
    expect([...dtypes]).toEqual(['float16']);
    model.dispose();
  });
});

describe('missing files are named with where they go', () => {
  it('try-on needs OpenPose and both parsers; pose transfer does not', async () => {
    const partial = join(tmp, 'ckpts');
    cpSync(RELEASED_FOLDER, partial, { recursive: true });
    rmSync(join(partial, 'openpose'), { recursive: true });
    rmSync(join(partial, 'humanparsing/parsing_lip.onnx'));
    const err = await loadReleasedLeffa(partial, { model: 'viton_hd' }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/the viton_hd pipeline needs 2 more file\(s\)/);
    expect((err as Error).message).toContain(
      `openpose/body_pose_model.pth (the OpenPose body model) is missing: put it at ${join(partial, 'openpose/body_pose_model.pth')}`,
    );
    expect((err as Error).message).toContain(
      `humanparsing/parsing_lip.onnx (the LIP human parser) is missing: put it at ${join(partial, 'humanparsing/parsing_lip.onnx')}`,
    );
    expect(missingReleasedLeffaFiles(partial, 'pose_transfer')).toEqual([]);
    rmSync(join(partial, 'stable-diffusion-xl-1.0-inpainting-0.1/vae'), { recursive: true });
    expect(missingReleasedLeffaFiles(partial, 'pose_transfer')).toEqual([
      `stable-diffusion-xl-1.0-inpainting-0.1/vae/config.json (the stable-diffusion-xl-1.0-inpainting-0.1 VAE config (diffusers)) is missing: put it at ${join(partial, 'stable-diffusion-xl-1.0-inpainting-0.1/vae/config.json')}`,
    ]);
    await expect(loadReleasedLeffa(join(tmp, 'nope'))).rejects.toThrow(/'.*nope' is not a folder/);
  });

  it("weights that do not fit the folder's configs fail at first use, naming the file", async () => {
    const swapped = join(tmp, 'swapped');
    cpSync(RELEASED_FOLDER, swapped, { recursive: true });
    cpSync(join(RELEASED_FOLDER, 'pose_transfer.pth'), join(swapped, 'virtual_tryon.pth'));
    const leffa = await loadReleasedLeffa(swapped, { ...SMALL_RELEASED, model: 'viton_hd' });
    const [src, ref] = [photo(48, 64, 1), photo(48, 64, 2)];
    const mask = new Uint8Array(64 * 48).fill(255);
    const inputs = leffaTransform({ src, ref, mask, densepose: src }, 'virtual_tryon');
    await expect(
      leffa.generate({ inputs, src, ref, mask, densepose: src, warnings: [] }, { steps: 1 }),
    ).rejects.toThrow(/virtual_tryon\.pth: the weights do not fit LeffaModel\(config\)/);
  });
});

describe("run_openpose's keypoint order", () => {
  it('takes the first person, (0, 0) for missing parts, pixels from the normalised candidates', () => {
    // Person 0 has parts 0, 1 and 3 (candidates 0, 1, 2); part 2 is missing.
    const candidate = [
      [10, 20],
      [11, 21],
      [13, 23],
      [50, 60],
    ];
    const subset = [[0, 1, -1, 2, ...new Array(14).fill(-1), 10, 3]];
    const k = leffaOpenPoseKeypoints(candidate, subset, 48, 64)!;
    expect(
      k
        .slice(0, 4)
        .flat()
        .map((v) => Math.round(v * 1e9) / 1e9),
    ).toEqual([10, 20, 11, 21, 0, 0, 13, 23]);
    expect(k.slice(4).every(([x, y]) => x === 0 && y === 0)).toBe(true);
    expect(leffaOpenPoseKeypoints(candidate, [], 48, 64)).toBeNull();
  });
});
