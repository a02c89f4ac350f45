import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DRESSCODE_TO_LIP,
  DeepFashionDataset,
  DressCodeDataset,
  LIP_PALETTE,
  VitonHdDataset,
  decodeImage,
  decodeLabelPng,
  encodeJpeg,
  encodeLabelPng,
  encodePng,
  generateSample,
  openDataset,
  type SyntheticSample,
} from '@leffa-webgpu/data';

const H = 64;
const W = 48;
const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function tempRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'leffa-datasets-'));
  roots.push(root);
  return root;
}

function write(path: string, bytes: Uint8Array | string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, bytes);
}

const jpegOf = (data: Uint8Array) => encodeJpeg({ width: W, height: H, data }, 100);
const meanAbs = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
const samples = [11, 12].map((seed) => generateSample({ seed, height: H, width: W }));

/** Writes synthetic samples in VITON-HD's released layout (person i wears its own garment). */
function vitonHd(list: SyntheticSample[]): string {
  const root = tempRoot();
  list.forEach((s, i) => {
    const name = `0000${i}_00`;
    const dir = (sub: string) => join(root, 'train', sub);
    write(join(dir('image'), `${name}.jpg`), jpegOf(s.person.image));
    write(join(dir('cloth'), `${name}.jpg`), jpegOf(s.garment));
    write(
      join(dir('cloth-mask'), `${name}.jpg`),
      jpegOf(Uint8Array.from({ length: H * W * 3 }, (_, k) => (s.garmentMask[Math.floor(k / 3)] ? 255 : 0))),
    );
    write(
      join(dir('image-parse-v3'), `${name}.png`),
      encodeLabelPng({ width: W, height: H, labels: s.person.parsing }, LIP_PALETTE),
    );
    write(join(dir('image-densepose'), `${name}.jpg`), jpegOf(s.person.densepose));
    const flat = s.person.keypoints.flatMap((k) => (k.visible ? [k.x, k.y, 0.9] : [0, 0, 0]));
    write(
      join(dir('openpose_json'), `${name}_keypoints.json`),
      JSON.stringify({ version: 1.3, people: [{ pose_keypoints_2d: flat }] }),
    );
  });
  write(join(root, 'train_pairs.txt'), list.map((_, i) => `0000${i}_00.jpg 0000${i}_00.jpg`).join('\n') + '\n');
  return root;
}

describe('image files', () => {
  it('round-trips palette label maps and tells PNG from JPEG by signature', () => {
    const labels = Uint8Array.from({ length: H * W }, (_, i) => i % 20);
    const map = decodeLabelPng(encodeLabelPng({ width: W, height: H, labels }, LIP_PALETTE));
    expect(Array.from(map.labels)).toEqual(Array.from(labels));
    const grey = decodeLabelPng(encodePng({ width: W, height: H, data: labels }));
    expect(Array.from(grey.labels)).toEqual(Array.from(labels));
    const img = samples[0]!.person.image;
    expect(meanAbs(decodeImage(jpegOf(img)).data, img)).toBeLessThan(4);
    expect(() => decodeImage(new Uint8Array([1, 2, 3, 4, 5]), 'x.jpg')).toThrow(/x\.jpg: neither PNG nor JPEG/);
  });
});

describe('VITON-HD layout', () => {
  it('loads person, garment, parsing, keypoints and DensePose, and derives the agnostic and garment masks', () => {
    const ds = new VitonHdDataset(vitonHd(samples));
    expect(ds.length).toBe(2);
    const e = ds.example(1, H, W);
    const s = samples[1]!;
    expect(e.name).toBe('00001_00.jpg + 00001_00.jpg');
    expect(Array.from(e.parsing!)).toEqual(Array.from(s.person.parsing));
    expect(Array.from(e.mask)).toEqual(Array.from(s.person.agnosticMask));
    expect(Array.from(e.lossMask)).toEqual(
      Array.from(s.person.parsing, (l) => (l === 5 || l === 6 || l === 7 ? 1 : 0)),
    );
    expect(meanAbs(e.source, s.person.image)).toBeLessThan(4);
    expect(meanAbs(e.densepose, s.person.densepose)).toBeLessThan(4);
    // Outside the garment mask the reference is pure white.
    s.garmentMask.forEach((m, i) => {
      if (!m) expect(e.reference[3 * i]).toBe(255);
    });
    expect(e.keypoints[1]!.x).toBeCloseTo(s.person.keypoints[1]!.x, 4);
  });

  it('resizes images and scales keypoints to the requested size', () => {
    const ds = new VitonHdDataset(vitonHd(samples));
    const e = ds.example(0, 32, 24);
    expect([e.height, e.width, e.source.length, e.mask.length, e.parsing!.length]).toEqual([
      32,
      24,
      32 * 24 * 3,
      32 * 24,
      32 * 24,
    ]);
    expect(e.keypoints[1]!.x).toBeCloseTo(samples[0]!.person.keypoints[1]!.x / 2, 4);
    expect(e.keypoints[1]!.y).toBeCloseTo(samples[0]!.person.keypoints[1]!.y / 2, 4);
  });

  it('names the missing file and the pairs line that referred to it', () => {
    const root = vitonHd(samples);
    rmSync(join(root, 'train', 'cloth-mask', '00001_00.jpg'));
    expect(() => new VitonHdDataset(root)).toThrow(
      /viton-hd: missing garment mask file .*cloth-mask.00001_00\.jpg \(referenced by line 2 of .*train_pairs\.txt/,
    );
  });

  it('rejects malformed pair lines and out-of-range indices', () => {
    const root = vitonHd(samples);
    writeFileSync(join(root, 'train_pairs.txt'), '00000_00.jpg 00000_00.jpg\n00001_00.jpg\n');
    expect(() => new VitonHdDataset(root)).toThrow(/train_pairs\.txt line 2: expected two names, got '00001_00\.jpg'/);
    const ds = new VitonHdDataset(vitonHd(samples));
    expect(() => ds.example(2, H, W)).toThrow(/index 2 out of range \[0, 2\)/);
  });
});

describe('DressCode layout', () => {
  it('translates DressCode labels to LIP and keypoints from the 384x512 frame', () => {
    const root = tempRoot();
    const toDressCode = (l: number) => (l === 0 ? 0 : DRESSCODE_TO_LIP.indexOf(l));
    samples.forEach((s, i) => {
      const id = `04839${i}`;
      const dir = (sub: string) => join(root, 'upper_body', sub);
      write(join(dir('images'), `${id}_0.jpg`), jpegOf(s.person.image));
      write(join(dir('images'), `${id}_1.jpg`), jpegOf(s.garment));
      write(
        join(dir('label_maps'), `${id}_4.png`),
        encodePng({ width: W, height: H, data: Uint8Array.from(s.person.parsing, toDressCode) }),
      );
      write(join(dir('dense'), `${id}_5.png`), encodePng({ width: W, height: H, data: s.person.iuv.I }));
      const rows = s.person.keypoints.map((k, j) =>
        k.visible ? [(k.x * 384) / W, (k.y * 512) / H, 0.8, j] : [-1, -1, 0, j],
      );
      write(join(dir('keypoints'), `${id}_2.json`), JSON.stringify({ keypoints: rows }));
    });
    write(join(root, 'upper_body', 'train_pairs.txt'), '048390_0.jpg 048390_1.jpg\n048391_0.jpg 048391_1.jpg\n');
    const ds = openDataset(root);
    expect(ds).toBeInstanceOf(DressCodeDataset);
    const e = ds.example(0, H, W);
    const s = samples[0]!;
    expect(Array.from(e.parsing!)).toEqual(Array.from(s.person.parsing));
    expect(e.keypoints[4]!.x).toBeCloseTo(s.person.keypoints[4]!.x, 4);
    expect(Array.from(e.mask)).toEqual(Array.from(s.person.agnosticMask));
    // The part index map repeated over three channels.
    expect(Array.from(e.densepose.subarray(0, 6))).toEqual([
      s.person.iuv.I[0],
      s.person.iuv.I[0],
      s.person.iuv.I[0],
      s.person.iuv.I[1],
      s.person.iuv.I[1],
      s.person.iuv.I[1],
    ]);
    rmSync(join(root, 'upper_body', 'dense', '048391_5.png'));
    expect(() => openDataset(root)).toThrow(
      /dresscode: missing DensePose part map file .*048391_5\.png \(referenced by line 2/,
    );
  });
});

describe('DeepFashion pose-transfer layout', () => {
  it('pairs from/to images with their keypoints and uses the target DensePose foreground as loss mask', () => {
    const root = tempRoot();
    const s = generateSample({ seed: 5, height: H, width: W, poseTransfer: true });
    const views = { 'a.jpg': s.person, 'b.jpg': s.second! };
    const annotation = ['name:keypoints_y:keypoints_x'];
    for (const [name, v] of Object.entries(views)) {
      write(join(root, 'train', name), jpegOf(v.image));
      write(
        join(root, 'densepose', 'train', name.replace('.jpg', '.png')),
        encodePng({ width: W, height: H, data: v.iuvImage }),
      );
      const ys = v.keypoints.map((k) => (k.visible ? Math.round(k.y) : -1));
      const xs = v.keypoints.map((k) => (k.visible ? Math.round(k.x) : -1));
      annotation.push(`${name}: ${JSON.stringify(ys)}: ${JSON.stringify(xs)}`);
    }
    write(join(root, 'fashion-resize-annotation-train.csv'), annotation.join('\n'));
    write(join(root, 'fashion-resize-pairs-train.csv'), ',from,to\n0,a.jpg,b.jpg\n');
    const ds = openDataset(root, { task: 'pose' });
    expect(ds).toBeInstanceOf(DeepFashionDataset);
    const e = ds.example(0, H, W);
    expect(meanAbs(e.source, s.second!.image)).toBeLessThan(4);
    expect(meanAbs(e.reference, s.person.image)).toBeLessThan(4);
    expect(Array.from(e.lossMask)).toEqual(Array.from(s.second!.iuv.I, (i) => (i > 0 ? 1 : 0)));
    expect(e.mask.every((m) => m === 1)).toBe(true);
    expect(e.keypoints[1]!.x).toBe(Math.round(s.second!.keypoints[1]!.x));
    expect(() => openDataset(root, { task: 'tryon' })).toThrow(/deepfashion pose dataset, but the task is tryon/);
    write(join(root, 'fashion-resize-pairs-train.csv'), ',from,to\n0,a.jpg,c.jpg\n');
    expect(() => openDataset(root)).toThrow(/missing person image file .*c\.jpg \(referenced by line 2/);
  });

  it('refuses an unknown layout with what it looked for', () => {
    expect(() => openDataset(tempRoot())).toThrow(/not a known layout: expected train_pairs\.txt/);
  });
});
