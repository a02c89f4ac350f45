/**
 * The preprocessing checks of the photo pipeline: photoProblems on hand-made keypoints and masks, then the shipped
 * networks on a real photo (scikit-image's astronaut, fixtures/README.md) and on a synthetic person.
 */
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { generateSample, readImage, type RgbImage } from '@leffa-webgpu/data';
import { LEFFA_CONFIGS, LeffaModel } from '@leffa-webgpu/models';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  PHOTO_CHECK_LIMITS,
  PhotoCheckError,
  type PhotoKeypoint,
  type PhotoModels,
  SHIPPED_PHOTO_CHECK_LIMITS,
  loadPhotoModels,
  photoProblems,
  preparePhotoExample,
  runPhotoPipeline,
} from '@leffa-webgpu/pipelines';

const W = 48;
const H = 64;
// A standing person on a 48x64 canvas: nose (24, 8), neck (24, 16), shoulders at y 18, ... (OpenPose's order).
const LAYOUT: [number, number][] = [
  [24, 8],
  [24, 16],
  [17, 18],
  [14, 28],
  [13, 37],
  [31, 18],
  [34, 28],
  [35, 37],
  [20, 38],
  [20, 50],
  [20, 61],
  [28, 38],
  [28, 50],
  [28, 61],
  [22, 7],
  [26, 7],
  [20, 8],
  [28, 8],
];
const person = (score = 0.9, hidden: number[] = []): PhotoKeypoint[] =>
  LAYOUT.map(([x, y], i) =>
    hidden.includes(i) ? { x: 0, y: 0, score: 0, visible: false } : { x, y, score, visible: true },
  );
/** 1 inside the rectangle [x0, x1) x [y0, y1). */
const rect = (x0: number, y0: number, x1: number, y1: number) =>
  Uint8Array.from({ length: W * H }, (_, i) =>
    i % W >= x0 && i % W < x1 && Math.floor(i / W) >= y0 && Math.floor(i / W) < y1 ? 1 : 0,
  );
const torso = rect(14, 17, 35, 40);
const body = rect(12, 2, 37, 63);

describe('photoProblems', () => {
  const tryon = (over: Partial<Parameters<typeof photoProblems>[0]> = {}) =>
    photoProblems(
      {
        task: 'tryon',
        width: W,
        height: H,
        keypoints: person(),
        mask: torso,
        parsingForeground: body,
        denseposeForeground: body,
        ...over,
      },
      SHIPPED_PHOTO_CHECK_LIMITS,
    );

  it('passes a well-found person with a torso mask', () => {
    expect(tryon()).toEqual([]);
    expect(photoProblems({ task: 'pose', width: W, height: H, keypoints: person() })).toEqual([]);
  });
  it('no person, too few points, an unsure person, missing shoulders', () => {
    expect(tryon({ keypoints: person(0.9, [...LAYOUT.keys()]) })).toEqual(['OpenPose found no person']);
    expect(tryon({ keypoints: [] })).toEqual(['OpenPose found no person']);
    const few = tryon({ keypoints: person(0.9, [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 3, 4]) });
    expect(few).toEqual(['OpenPose found only 4 of 18 body points (at least 8 needed)']);
    expect(tryon({ keypoints: person(0.55) })).toEqual([
      'OpenPose is not confident about the person (mean point score 0.55 < 0.7)',
    ]);
    // The general limits only refuse plain failures.
    expect(photoProblems({ task: 'pose', width: W, height: H, keypoints: person(0.55) }, PHOTO_CHECK_LIMITS)).toEqual(
      [],
    );
    expect(tryon({ keypoints: person(0.9, [2, 5]) })).toEqual([
      'OpenPose found no right shoulder, left shoulder (the agnostic mask needs them)',
    ]);
  });
  it('an empty mask, a mask over the face', () => {
    expect(tryon({ mask: new Uint8Array(W * H) })).toEqual([
      'the agnostic mask is empty (no garment or arms found): nothing would be regenerated',
    ]);
    // The face disc: centre (24, 7.6), radius 4 (half nose-neck), so rows 4..11.
    expect(tryon({ mask: rect(14, 12, 35, 40) })).toEqual([]);
    const face = tryon({ mask: rect(14, 3, 35, 40) });
    expect(face).toHaveLength(1);
    expect(face[0]).toMatch(/^the agnostic mask covers (\d+)% of the face \(more than 30%\)/);
    expect(Number(/covers (\d+)%/.exec(face[0]!)![1])).toBeGreaterThan(30);
    // Without face points there is no face disc to cover.
    expect(tryon({ mask: rect(0, 0, W, H), keypoints: person(0.9, [0, 14, 15, 16, 17]) })).toEqual([]);
  });
  it('parsing and DensePose that disagree on the person', () => {
    expect(tryon({ denseposeForeground: rect(0, 0, 10, 10) })).toEqual([
      'the human parsing and DensePose disagree on where the person is (IoU 0.00 < 0.4)',
    ]);
    expect(() => tryon({ parsingForeground: new Uint8Array(5) })).toThrow(
      /parsingForeground has 5 values, 48x64 needs 3072/,
    );
  });
  it('the error names every problem and points to the released weights', () => {
    const e = new PhotoCheckError(['OpenPose found no person', 'the agnostic mask is empty']);
    expect(e.message).toMatch(
      /^the photo preprocessing failed: OpenPose found no person; the agnostic mask is empty\. /,
    );
    expect(e.message).toMatch(/learned only synthetic people/);
    expect(e.message).toMatch(/--ckpts <folder>/);
  });
});

describe('the shipped networks on a real photo and on a synthetic person', () => {
  let models: PhotoModels;
  const size: [number, number] = [128, 96];
  const garment: RgbImage = {
    width: 96,
    height: 128,
    data: generateSample({ seed: 1, height: 128, width: 96 }).garment,
  };
  const astronaut = readImage(fileURLToPath(new URL('./fixtures/astronaut-192x256.jpg', import.meta.url)));
  beforeAll(async () => {
    await T.init();
    models = await loadPhotoModels({
      openpose: 'shipped:openpose-small',
      schp: 'shipped:schp-small',
      densepose: 'shipped:densepose-small',
    });
  });

  it('the astronaut portrait fails: made-up legs at low scores, parsing and DensePose disagree', async () => {
    const p = await preparePhotoExample('tryon', {
      person: astronaut,
      reference: garment,
      models,
      size,
      checkLimits: SHIPPED_PHOTO_CHECK_LIMITS,
    });
    expect(
      p.problems.some((m) => /OpenPose is not confident about the person \(mean point score 0\.[0-6]\d/.test(m)),
    ).toBe(true);
    expect(p.problems.some((m) => /disagree on where the person is \(IoU 0\.[0-3]\d/.test(m))).toBe(true);
    // Strict, the pipeline stops before sampling with the hint to the released weights.
    const leffa = new LeffaModel(LEFFA_CONFIGS.tiny).eval();
    await expect(
      runPhotoPipeline('tryon', {
        person: astronaut,
        reference: garment,
        models,
        size,
        leffa,
        checkLimits: SHIPPED_PHOTO_CHECK_LIMITS,
        strict: true,
      }),
    ).rejects.toThrow(
      /the photo preprocessing failed: .*not confident.*learned only synthetic people.*--ckpts <folder>/,
    );
  }, 120_000);

  it('a synthetic person passes, try-on (every category) and pose transfer', async () => {
    const s = generateSample({ seed: 3, height: 256, width: 192 });
    const synthetic: RgbImage = { width: 192, height: 256, data: s.person.image };
    for (const category of ['upper_body', 'lower_body', 'dresses'] as const) {
      const p = await preparePhotoExample('tryon', {
        person: synthetic,
        reference: garment,
        category,
        models,
        size,
        checkLimits: SHIPPED_PHOTO_CHECK_LIMITS,
      });
      expect(p.problems, category).toEqual([]);
    }
    const pose = await preparePhotoExample('pose', {
      person: synthetic,
      reference: synthetic,
      models: { ...models, schp: undefined },
      size,
      checkLimits: SHIPPED_PHOTO_CHECK_LIMITS,
    });
    expect(pose.problems).toEqual([]);
  }, 120_000);
});
