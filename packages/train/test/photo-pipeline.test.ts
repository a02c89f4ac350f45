import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import {
  DENSEPOSE_CONFIGS,
  DensePoseHead,
  LEFFA_CONFIGS,
  LeffaModel,
  OPENPOSE_SMALL,
  OpenPoseBody,
  SCHP_CONFIGS,
  SCHPNetwork,
  personCrop,
} from '@leffa-webgpu/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFromPhotos } from '../src/cli/generate.js';
import {
  cropToBox,
  letterbox,
  loadOpenPose,
  parseCategory,
  type PhotoModels,
  preparePhotoExample,
  repaint,
  runPhotoPipeline,
} from '@leffa-webgpu/pipelines';
import {
  applyOrientation,
  decodeImage,
  encodeJpeg,
  encodePng,
  generateSample,
  jpegOrientation,
  readImage,
  type RgbImage,
} from '@leffa-webgpu/data';

const tmp = mkdtempSync(join(tmpdir(), 'photo-pipeline-'));
const H = 64;
const W = 48;
let models: PhotoModels;
let leffa: LeffaModel;
const ckpt = {
  leffa: join(tmp, 'ckpt-leffa'),
  openpose: join(tmp, 'ckpt-openpose'),
  schp: join(tmp, 'ckpt-schp'),
  densepose: join(tmp, 'ckpt-densepose'),
};

// A synthetic person at a size whose aspect differs from the model's, and its flat garment.
const sample = generateSample({ seed: 3, height: 100, width: 60 });
const personImg: RgbImage = { width: 60, height: 100, data: sample.person.image };
const garmentImg: RgbImage = { width: 60, height: 100, data: sample.garment };

beforeAll(async () => {
  await T.init();
  T.manualSeed(0);
  // Random weights: the test checks plumbing, not quality.
  const openpose = new OpenPoseBody(OPENPOSE_SMALL).eval();
  const schp = new SCHPNetwork(SCHP_CONFIGS.small).eval();
  const densepose = new DensePoseHead(DENSEPOSE_CONFIGS.small).eval();
  leffa = new LeffaModel(LEFFA_CONFIGS.tiny).eval();
  models = { openpose, schp, densepose, schpInputSize: [H, W], denseposeSize: [H, W] };
  await T.saveCheckpoint(ckpt.leffa, { model: leffa, extra: { config: LEFFA_CONFIGS.tiny } });
  await T.saveCheckpoint(ckpt.openpose, { model: openpose, extra: { config: OPENPOSE_SMALL } });
  await T.saveCheckpoint(ckpt.schp, {
    model: schp,
    extra: { kind: 'schp', config: SCHP_CONFIGS.small, rounds: 0, size: [H, W] },
  });
  await T.saveCheckpoint(ckpt.densepose, {
    model: densepose,
    extra: { kind: 'densepose', config: DENSEPOSE_CONFIGS.small, size: [H, W] },
  });
  writeFileSync(join(tmp, 'person.jpg'), encodeJpeg(personImg));
  writeFileSync(join(tmp, 'garment.png'), encodePng(garmentImg));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('photo pipeline pieces (CPU)', () => {
  it('letterbox keeps the aspect ratio, centres the content on white and crops back', () => {
    const img: RgbImage = { width: 30, height: 10, data: new Uint8Array(300 * 3).fill(40) };
    const { image, box } = letterbox(img, 64, 48);
    expect([image.width, image.height]).toEqual([48, 64]);
    expect(box).toEqual({ x: 0, y: 24, width: 48, height: 16 });
    expect(box.width / box.height).toBeCloseTo(30 / 10, 5);
    expect(image.data[0]).toBe(255); // top bar
    expect(image.data[3 * (30 * 48 + 20)]).toBe(40); // content
    const back = cropToBox(image, box);
    expect([back.width, back.height]).toEqual([48, 16]);
    expect(back.data.every((v) => v === 40)).toBe(true);
    // A portrait photo: bars left and right, aspect within a pixel of rounding.
    const p = letterbox(personImg, H, W).box;
    expect(p.height).toBe(H);
    expect(Math.abs(p.width - (60 * H) / 100)).toBeLessThanOrEqual(0.5);
    expect(p.x).toBe(Math.floor((W - p.width) / 2));
  });

  it('repaint keeps every pixel outside the mask exactly and the mask interior generated', () => {
    const w = 20;
    const h = 16;
    const original: RgbImage = {
      width: w,
      height: h,
      data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 7) % 256),
    };
    const generated: RgbImage = {
      width: w,
      height: h,
      data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 13 + 5) % 256),
    };
    const mask = Uint8Array.from({ length: w * h }, (_, i) =>
      i % w >= 4 && i % w < 16 && Math.floor(i / w) >= 2 && Math.floor(i / w) < 14 ? 1 : 0,
    );
    const out = repaint(original, generated, mask, 2);
    let soft = 0;
    for (let i = 0; i < w * h; i++) {
      const px = (img: RgbImage) => Array.from(img.data.subarray(3 * i, 3 * i + 3));
      if (!mask[i]) expect(px(out)).toEqual(px(original));
      const [x, y] = [i % w, Math.floor(i / w)];
      // Farther than 2 x radius from the mask edge: fully generated.
      if (x >= 8 && x < 12 && y >= 6 && y < 10) expect(px(out)).toEqual(px(generated));
      else if (mask[i] && px(out).join() !== px(generated).join()) soft++;
    }
    expect(soft).toBeGreaterThan(0); // the edge is feathered inside the mask
    expect(repaint(original, generated, mask, 0).data).toEqual(
      Uint8Array.from(original.data, (v, k) => (mask[Math.floor(k / 3)] ? generated.data[k]! : v)),
    );
    expect(() => repaint(original, { ...generated, width: 10 }, mask, 2)).toThrow(/generated image is 10x16/);
  });

  it('reads the EXIF orientation of a JPEG and turns the pixels upright', () => {
    const img: RgbImage = { width: 4, height: 2, data: new Uint8Array(4 * 2 * 3) };
    img.data.set([255, 0, 0], 0); // top-left red
    const jpegBytes = encodeJpeg(img, 100);
    // APP1: 'Exif\0\0' + little-endian TIFF with one IFD0 entry, Orientation (0x0112) SHORT = 6 (rotate 90 CW).
    const tiff = [0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
    const body = [0x45, 0x78, 0x69, 0x66, 0, 0, ...tiff];
    const app1 = [0xff, 0xe1, (body.length + 2) >> 8, (body.length + 2) & 255, ...body];
    const tagged = new Uint8Array([...jpegBytes.subarray(0, 2), ...app1, ...jpegBytes.subarray(2)]);
    expect(jpegOrientation(tagged)).toBe(6);
    expect(jpegOrientation(jpegBytes)).toBe(1);
    const plain = decodeImage(tagged, 'tagged');
    expect([plain.width, plain.height]).toEqual([4, 2]);
    const upright = decodeImage(tagged, 'tagged', { exifOrientation: true });
    expect([upright.width, upright.height]).toEqual([2, 4]);
    // Rotated 90 degrees clockwise, the top-left pixel goes to the top-right corner.
    expect(upright.data[3 * 1]!).toBeGreaterThan(200);
    expect(upright.data[0]!).toBeLessThan(60);
    // All eight orientations keep the pixels; 5..8 swap the sides.
    for (let o = 1; o <= 8; o++) {
      const r = applyOrientation(plain, o);
      expect([r.width, r.height]).toEqual(o >= 5 ? [2, 4] : [4, 2]);
      expect([...r.data].sort().join()).toEqual([...plain.data].sort().join());
    }
  });

  it('category names and aliases', () => {
    expect(parseCategory('upper')).toBe('upper_body');
    expect(parseCategory('lower_body')).toBe('lower_body');
    expect(parseCategory('dress')).toBe('dresses');
    expect(() => parseCategory('hat')).toThrow(/--category must be/);
  });
});

describe('photo pipeline with random-weight models', () => {
  it('prepares a try-on example from a JPEG person and a PNG garment', async () => {
    const person = readImage(join(tmp, 'person.jpg'), { exifOrientation: true });
    const prepared = await preparePhotoExample('tryon', {
      person,
      reference: garmentImg,
      category: 'upper_body',
      models,
      size: [H, W],
    });
    const e = prepared.example;
    expect([e.height, e.width]).toEqual([H, W]);
    for (const k of ['source', 'reference', 'densepose'] as const) expect(e[k].length).toBe(H * W * 3);
    for (const k of ['mask', 'lossMask'] as const) {
      expect(e[k].length).toBe(H * W);
      expect(e[k].every((v) => v === 0 || v === 1)).toBe(true);
    }
    expect(prepared.keypoints).toHaveLength(18);
    expect(prepared.debug.labels).toHaveLength(H * W);
    for (const d of [
      prepared.debug.person,
      prepared.debug.reference,
      prepared.debug.parsing!,
      prepared.debug.skeleton,
      prepared.debug.densepose,
      prepared.debug.mask,
      prepared.debug.agnostic,
    ]) {
      expect([d.width, d.height, d.data.length]).toEqual([W, H, H * W * 3]);
    }
    // The source is the letterboxed person; the white bars stay white.
    expect(e.source).toEqual(letterbox(person, H, W).image.data);
    expect(e.source[0]).toBe(255);
    // Parula render: background black (the DensePose render of synthetic try-on examples).
    expect(prepared.debug.densepose.data).toBe(e.densepose);
  });

  it('prepares a pose-transfer example: all masked, the target pose as the condition, the source person as reference', async () => {
    const source = { width: 60, height: 100, data: generateSample({ seed: 8, height: 100, width: 60 }).person.image };
    const prepared = await preparePhotoExample('pose', {
      person: personImg,
      reference: source,
      models: { ...models, schp: undefined },
      size: [H, W],
    });
    const e = prepared.example;
    expect(e.mask.every((v) => v === 1)).toBe(true);
    expect(e.reference).toEqual(letterbox(source, H, W).image.data);
    expect(e.source).toEqual(letterbox(personImg, H, W).image.data);
    expect(prepared.debug.parsing).toBeUndefined();
    expect(e.lossMask.length).toBe(H * W);
  });

  it('with the shipped OpenPose: keypoints found, arms in the agnostic mask, DensePose in the person box', async () => {
    const openpose = await loadOpenPose('shipped:openpose-small');
    // The shipped model was trained on 128-pixel-tall people: its boxsize (256) at the default scale 0.5 runs it
    // at twice the 64-pixel canvas. The random SCHP labels everything 'left leg', which upper_body protects;
    // 'dresses' leaves the arm strokes.
    const prepared = await preparePhotoExample('tryon', {
      person: personImg,
      reference: garmentImg,
      category: 'dresses',
      models: { ...models, openpose },
      size: [H, W],
    });
    const visible = prepared.keypoints.filter((k) => k.visible);
    expect(visible.length).toBeGreaterThanOrEqual(8);
    for (const k of visible) {
      expect(k.x).toBeGreaterThanOrEqual(prepared.personBox.x - 1);
      expect(k.x).toBeLessThanOrEqual(prepared.personBox.x + prepared.personBox.width + 1);
    }
    expect(prepared.debug.skeleton.data.some((v) => v > 0)).toBe(true);
    expect(prepared.example.mask.some((v) => v === 1)).toBe(true);
    expect(prepared.warnings.filter((w) => /no person/.test(w))).toEqual([]);
    // DensePose ran inside the keypoints' person box: black (background) outside it.
    const box = personCrop(
      visible.map((k) => [k.x, k.y, k.score] as [number, number, number]),
      { aspect: H / W },
    );
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height) continue;
        expect(prepared.example.densepose.subarray(3 * (y * W + x), 3 * (y * W + x) + 3).every((v) => v === 0)).toBe(
          true,
        );
      }
    }
    models = { ...models, openpose };
  });

  it('runs Leffa and returns the result cropped to the person, plus a debug sheet', async () => {
    const r = await runPhotoPipeline('tryon', {
      person: personImg,
      reference: garmentImg,
      models,
      size: [H, W],
      leffa,
      steps: 2,
      repaint: true,
      seed: 1,
      category: 'dresses',
    });
    expect(r.prepared.example.mask.some((v) => v === 1)).toBe(true);
    expect([r.generated.width, r.generated.height]).toEqual([W, H]);
    expect([r.result.width, r.result.height]).toEqual([r.prepared.personBox.width, r.prepared.personBox.height]);
    expect(r.sheet.height).toBe(H);
    expect(r.sheet.width).toBe(7 * W + 6 * 2);
    // Repaint: outside the mask the (cropped) result is the letterboxed person.
    const person = cropToBox(r.prepared.debug.person, r.prepared.personBox);
    const maskCrop = cropToBox({ width: W, height: H, data: r.prepared.debug.mask.data }, r.prepared.personBox);
    for (let i = 0; i < person.width * person.height; i++) {
      if (maskCrop.data[3 * i] === 0)
        expect(r.result.data.subarray(3 * i, 3 * i + 3)).toEqual(person.data.subarray(3 * i, 3 * i + 3));
    }
  });

  it('CLI: writes the result and sheet for one photo, and every image of a folder (batch)', async () => {
    // Random-weight networks fail the preprocessing checks (next test): this one checks the plumbing only.
    const common = {
      ckpt: ckpt.leffa,
      openpose: ckpt.openpose,
      schp: ckpt.schp,
      densepose: ckpt.densepose,
      size: [H, W] as [number, number],
      steps: 2,
      seed: 0,
      guidance: 2.5,
      checks: false,
    };
    const out = join(tmp, 'out', 'tryon.png');
    await generateFromPhotos({
      ...common,
      task: 'tryon',
      person: join(tmp, 'person.jpg'),
      reference: join(tmp, 'garment.png'),
      category: 'upper_body',
      out,
      repaint: true,
    });
    expect(existsSync(out)).toBe(true);
    const sheet = readImage(join(tmp, 'out', 'tryon-sheet.png'));
    expect([sheet.width, sheet.height]).toEqual([7 * W + 12, H]);

    const folder = join(tmp, 'people');
    mkdirSync(folder);
    writeFileSync(join(folder, 'a.jpg'), encodeJpeg(personImg));
    writeFileSync(
      join(folder, 'b.png'),
      encodePng({ width: 48, height: 64, data: generateSample({ seed: 5, height: 64, width: 48 }).person.image }),
    );
    writeFileSync(join(folder, 'notes.txt'), 'not an image'); // skipped: not .png/.jpg
    const written = await generateFromPhotos({
      ...common,
      task: 'tryon',
      person: folder,
      reference: join(tmp, 'garment.png'),
      out: join(tmp, 'batch'),
    });
    expect(written).toEqual([join(tmp, 'batch', 'a.png'), join(tmp, 'batch', 'b.png')]);
    expect(readdirSync(join(tmp, 'batch')).sort()).toEqual(['a-sheet.png', 'a.png', 'b-sheet.png', 'b.png']);
    expect(readImage(join(tmp, 'batch', 'b.png')).width).toBe(W);
  });

  it('CLI: stops on a photo the preprocessing fails on, naming the problems and what to do', async () => {
    const out = join(tmp, 'refused', 'r.png');
    // Random networks given as folders: the plain failures, and a look at the networks given.
    const own = {
      task: 'tryon' as const,
      person: join(tmp, 'person.jpg'),
      reference: join(tmp, 'garment.png'),
      ckpt: ckpt.leffa,
      openpose: ckpt.openpose,
      schp: ckpt.schp,
      densepose: ckpt.densepose,
      size: [H, W] as [number, number],
      out,
      steps: 2,
      seed: 0,
      guidance: 2.5,
    };
    await expect(generateFromPhotos(own)).rejects.toThrow(
      /^the photo preprocessing failed: OpenPose found no person\. Look at the preprocessing networks given .*--ckpts <folder>/,
    );
    // The shipped networks on a real photo (scikit-image's astronaut): the hint says they learned only synthetic people.
    const astronaut = fileURLToPath(new URL('../../pipelines/test/fixtures/astronaut-192x256.jpg', import.meta.url));
    const shipped = {
      ...own,
      person: astronaut,
      ckpt: 'shipped:leffa-tiny-tryon',
      openpose: 'shipped:openpose-small',
      schp: 'shipped:schp-small',
      densepose: 'shipped:densepose-small',
      size: [128, 96] as [number, number],
    };
    await expect(generateFromPhotos(shipped)).rejects.toThrow(
      /not confident about the person.*learned only synthetic people.*--ckpts <folder>/,
    );
    expect(existsSync(out)).toBe(false);
  }, 120_000);

  it('CLI: clear errors for a missing SCHP checkpoint, a missing DensePose checkpoint and a file that is no image', async () => {
    const base = {
      task: 'tryon' as const,
      person: join(tmp, 'person.jpg'),
      reference: join(tmp, 'garment.png'),
      ckpt: ckpt.leffa,
      openpose: ckpt.openpose,
      size: [H, W] as [number, number],
      out: join(tmp, 'x.png'),
      steps: 2,
      seed: 0,
      guidance: 2.5,
    };
    await expect(generateFromPhotos({ ...base, densepose: ckpt.densepose })).rejects.toThrow(
      'photo try-on needs an SCHP checkpoint (train-schp)',
    );
    await expect(generateFromPhotos({ ...base, schp: ckpt.schp })).rejects.toThrow(/DensePose checkpoint/);
    writeFileSync(join(tmp, 'bad.png'), 'hello');
    await expect(
      generateFromPhotos({ ...base, schp: ckpt.schp, densepose: ckpt.densepose, reference: join(tmp, 'bad.png') }),
    ).rejects.toThrow(/bad\.png: neither PNG nor JPEG/);
    await expect(
      generateFromPhotos({ ...base, schp: ckpt.schp, densepose: ckpt.densepose, person: join(tmp, 'nope.jpg') }),
    ).rejects.toThrow(/--person '.*nope\.jpg' does not exist/);
  });
});
