import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COCO17_TO_OPENPOSE18, CocoKeypointsDataset, encodePng, openPoseKeypointsFromCoco } from '@leffa-webgpu/data';
import { OpenPoseTrainer } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'leffa-coco-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(async () => {
  await T.init();
});

// A 96x128 image: a blue 48x64 block at (24, 32) on red.
const IW = 96;
const IH = 128;
const image = Uint8Array.from({ length: IW * IH * 3 }, (_, k) => {
  const p = Math.floor(k / 3);
  const [x, y] = [p % IW, Math.floor(p / IW)];
  const inside = x >= 24 && x < 72 && y >= 32 && y < 96;
  const channel = inside ? 2 : 0;
  return k % 3 === channel ? 200 : 0;
});

/** COCO triples with keypoint i at (30 + i, 40 + 2i), all visible except the left ankle (15). */
const triples = Array.from({ length: 17 }, (_, i) => [30 + i, 40 + 2 * i, i === 15 ? 0 : 2]).flat();

function writeCoco(
  split: string,
  annotations: object[],
  images = [{ id: 1, file_name: 'a.png', width: IW, height: IH }],
) {
  mkdirSync(join(root, 'annotations'), { recursive: true });
  mkdirSync(join(root, split), { recursive: true });
  writeFileSync(join(root, split, 'a.png'), encodePng({ width: IW, height: IH, data: image }));
  writeFileSync(join(root, 'annotations', `person_keypoints_${split}.json`), JSON.stringify({ images, annotations }));
}

describe('COCO keypoints folders', () => {
  it('maps the 17 COCO keypoints to the 18 OpenPose ones, the neck between the shoulders', () => {
    const k = openPoseKeypointsFromCoco(triples);
    expect(k).toHaveLength(18);
    COCO17_TO_OPENPOSE18.forEach((c, i) => {
      if (c >= 0) expect(k[i]).toEqual({ x: 30 + c, y: 40 + 2 * c, visible: c !== 15 });
    });
    expect(k[1]).toEqual({ x: (35 + 36) / 2, y: (50 + 52) / 2, visible: true });
    expect(k[2]!.x).toBe(36); // right shoulder is COCO 6
    expect(k[13]!.visible).toBe(false); // left ankle is COCO 15
    expect(() => openPoseKeypointsFromCoco([1, 2, 3])).toThrow('expected 17 (x, y, v) triples (51 numbers), got 3');
  });

  it('crops around each person at the training aspect and moves every keypoint with the crop', () => {
    writeCoco('train', [
      { image_id: 1, bbox: [24, 32, 48, 64], keypoints: triples, num_keypoints: 16, iscrowd: 0 },
      { image_id: 1, bbox: [0, 0, 10, 10], keypoints: new Array(51).fill(0), num_keypoints: 0, iscrowd: 0 },
      { image_id: 1, bbox: [0, 0, 96, 128], keypoints: triples, num_keypoints: 16, iscrowd: 1 },
    ]);
    const data = new CocoKeypointsDataset(root, 'train', { height: 64, width: 48 });
    expect(data.length).toBe(1); // the empty person and the crowd are not crop centres
    const ex = data.example(0);
    expect([ex.width, ex.height, ex.image.length]).toEqual([48, 64, 48 * 64 * 3]);
    // Box 48x64 grown 1.25x about its centre: (18, 24) to (78, 104), scaled by 64 / 80.
    const k = ex.people[0]!;
    expect(k[0]!.x).toBeCloseTo((30 - 18) * 0.8, 5);
    expect(k[0]!.y).toBeCloseTo((40 - 24) * 0.8, 5);
    expect(k[13]!.visible).toBe(false);
    expect(ex.people).toHaveLength(1); // the person without keypoints adds nothing
    // The centre of the crop is inside the blue block, its corner inside the red background.
    const px = (x: number, y: number) => Array.from(ex.image.subarray((y * 48 + x) * 3, (y * 48 + x) * 3 + 3));
    expect(px(24, 32)).toEqual([0, 0, 200]);
    expect(px(1, 1)).toEqual([200, 0, 0]);
  });

  it('pads with grey outside the image', () => {
    writeCoco('edge', [{ image_id: 1, bbox: [0, 0, 20, 40], keypoints: triples, num_keypoints: 16 }]);
    const ex = new CocoKeypointsDataset(root, 'edge', { height: 64, width: 48 }).example(0);
    expect(Array.from(ex.image.subarray(0, 3))).toEqual([128, 128, 128]);
  });

  it('names what is missing', () => {
    writeCoco(
      'missing',
      [{ image_id: 1, bbox: [24, 32, 48, 64], keypoints: triples, num_keypoints: 16 }],
      [{ id: 1, file_name: 'nope.jpg', width: IW, height: IH }],
    );
    expect(() => new CocoKeypointsDataset(root, 'missing', { height: 64, width: 48 })).toThrow(
      `missing image file ${join(root, 'missing', 'nope.jpg')} (image id 1)`,
    );
    expect(() => new CocoKeypointsDataset(root, 'val2099', { height: 64, width: 48 })).toThrow(
      'missing annotation file',
    );
    writeCoco('badref', [{ image_id: 7, bbox: [0, 0, 1, 1], keypoints: triples, num_keypoints: 16 }]);
    expect(() => new CocoKeypointsDataset(root, 'badref', { height: 64, width: 48 })).toThrow(
      'refers to image id 7, which is not listed',
    );
  });

  it('feeds the OpenPose trainer', async () => {
    const ex = new CocoKeypointsDataset(root, 'train', { height: 64, width: 48 }).example(0);
    const trainer = new OpenPoseTrainer({ seed: 0, lr: 1e-3, optimizer: 'adamw' });
    const loss = trainer.step([ex, ex]);
    expect(Number.isFinite(await loss.item())).toBe(true);
    loss.dispose();
  });
});
