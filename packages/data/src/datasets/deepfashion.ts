import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readImage } from '../io/image-file.js';
import { resizeRgb } from '../io/resize.js';
import type { Keypoint } from '../synthetic/sample.js';
import {
  type DatasetExample,
  type FolderDataset,
  type PairLine,
  checkIndex,
  readPairs,
  requireFile,
} from './common.js';

/**
 * DeepFashion In-shop pose-transfer pairs in the layout of the common benchmark split (PATN, NTED, ...):
 * `<root>/{train,test}/<name>.jpg`, `<root>/fashion-resize-pairs-<split>.csv` (header with `from` and `to`),
 * `<root>/fashion-resize-annotation-<split>.csv` ("name: [y, ...]: [x, ...]", -1 = missing), plus the DensePose
 * IUV render of every image that Leffa conditions on: `<root>/densepose/<split>/<name stem>.png`.
 * The example's source is the `to` person, its reference the `from` person; the loss mask is the target's
 * DensePose foreground.
 */
export class DeepFashionDataset implements FolderDataset {
  readonly layout = 'deepfashion';
  readonly task = 'pose' as const;
  readonly pairs: PairLine[];
  private readonly keypoints = new Map<string, { ys: number[]; xs: number[] }>();

  constructor(
    readonly root: string,
    readonly split: 'train' | 'test' = 'train',
  ) {
    this.pairs = readPairs(join(root, `fashion-resize-pairs-${split}.csv`), this.layout);
    const annotations = requireFile(
      join(root, `fashion-resize-annotation-${split}.csv`),
      'keypoint annotation',
      this.layout,
    );
    readFileSync(annotations, 'utf8')
      .split(/\r?\n/)
      .forEach((text, i) => {
        if (i === 0 || !text.trim()) return;
        const [name, ys, xs] = text.split(':');
        const parse = (v: string | undefined) => {
          try {
            return JSON.parse(v ?? '') as number[];
          } catch {
            return null;
          }
        };
        const [y, x] = [parse(ys), parse(xs)];
        if (!name || !y || !x || y.length !== 18 || x.length !== 18)
          throw new Error(
            `${this.layout}: ${annotations} line ${i + 1}: expected 'name: [18 ys]: [18 xs]', got '${text.trim().slice(0, 80)}'`,
          );
        this.keypoints.set(name.trim(), { ys: y, xs: x });
      });
    for (const p of this.pairs) {
      for (const name of [p.first, p.second]) {
        this.files(name, p);
        if (!this.keypoints.has(name))
          throw new Error(`${this.layout}: no keypoints for ${name} in ${annotations} (line ${p.line} of ${p.file})`);
      }
    }
  }

  get length(): number {
    return this.pairs.length;
  }

  private files(name: string, p: PairLine) {
    return {
      image: requireFile(join(this.root, this.split, name), 'person image', this.layout, p),
      densepose: requireFile(
        join(this.root, 'densepose', this.split, `${name.replace(/\.[^.]+$/, '')}.png`),
        'DensePose render',
        this.layout,
        p,
      ),
    };
  }

  example(index: number, height: number, width: number): DatasetExample {
    checkIndex(this.layout, index, this.length);
    const p = this.pairs[index]!;
    const from = this.files(p.first, p);
    const to = this.files(p.second, p);
    const target = readImage(to.image);
    const k = this.keypoints.get(p.second)!;
    const [sx, sy] = [width / target.width, height / target.height];
    const keypoints: Keypoint[] = k.xs.map((x, i) => ({
      x: x * sx,
      y: k.ys[i]! * sy,
      visible: x >= 0 && k.ys[i]! >= 0,
    }));
    const densepose = resizeRgb(readImage(to.densepose), height, width);
    // The IUV render's first channel is the part index: non-zero on the person.
    const foreground = Uint8Array.from({ length: height * width }, (_, i) => (densepose.data[3 * i]! > 0 ? 1 : 0));
    return {
      name: `${p.first} -> ${p.second}`,
      height,
      width,
      source: resizeRgb(target, height, width).data,
      reference: resizeRgb(readImage(from.image), height, width).data,
      mask: new Uint8Array(height * width).fill(1),
      densepose: densepose.data,
      lossMask: foreground,
      keypoints,
    };
  }
}
