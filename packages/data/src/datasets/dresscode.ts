import { join } from 'node:path';
import { readImage } from '../io/image-file.js';
import { resizeRgb } from '../io/resize.js';
import type { GarmentCategory } from '../synthetic/agnostic.js';
import {
  type DatasetExample,
  type FolderDataset,
  type PairLine,
  checkIndex,
  loadLabels,
  readJson,
  readPairs,
  requireFile,
  tryonExample,
} from './common.js';

/** DressCode's 18 parsing labels (ATR-like). */
export const DRESSCODE_LABELS = [
  'background',
  'hat',
  'hair',
  'sunglasses',
  'upper_clothes',
  'skirt',
  'pants',
  'dress',
  'belt',
  'left_shoe',
  'right_shoe',
  'head',
  'left_leg',
  'right_leg',
  'left_arm',
  'right_arm',
  'bag',
  'scarf',
] as const;

/** DressCode label -> LIP label (belt and bag have no LIP class and become background). */
export const DRESSCODE_TO_LIP = Uint8Array.from([0, 1, 2, 4, 5, 12, 9, 6, 0, 18, 19, 13, 16, 17, 14, 15, 0, 11]);

/** DressCode keypoints are stored in a 384 x 512 frame whatever the image size. */
const KEYPOINT_FRAME = { width: 384, height: 512 };

export type DressCodePairs = 'train' | 'test_paired' | 'test_unpaired';
const PAIR_FILES: Record<DressCodePairs, string> = {
  train: 'train_pairs.txt',
  test_paired: 'test_pairs_paired.txt',
  test_unpaired: 'test_pairs_unpaired.txt',
};

/**
 * DressCode (Morelli et al. 2022), one category: `<root>/<category>/` with images/ (`<id>_0.jpg` person,
 * `<id>_1.jpg` garment), keypoints/ (`<id>_2.json`, {"keypoints": [[x, y, score, index] x 18]}), label_maps/
 * (`<id>_4.png`) and dense/ (`<id>_5.png`, the DensePose part index map), and the pair lists
 * `train_pairs.txt`, `test_pairs_paired.txt`, `test_pairs_unpaired.txt`.
 */
export class DressCodeDataset implements FolderDataset {
  readonly layout = 'dresscode';
  readonly task = 'tryon' as const;
  readonly pairs: PairLine[];

  constructor(
    readonly root: string,
    readonly category: GarmentCategory = 'upper_body',
    readonly list: DressCodePairs = 'train',
  ) {
    this.pairs = readPairs(join(root, category, PAIR_FILES[list]), this.layout);
    for (const p of this.pairs) this.files(p);
  }

  get length(): number {
    return this.pairs.length;
  }

  private files(p: PairLine) {
    const id = p.first.replace(/_0\.[^.]+$/, '');
    if (id === p.first)
      throw new Error(
        `${this.layout}: line ${p.line} of ${p.file}: person image '${p.first}' should be named <id>_0.jpg`,
      );
    const at = (sub: string, file: string, what: string) =>
      requireFile(join(this.root, this.category, sub, file), what, this.layout, p);
    return {
      image: at('images', p.first, 'person image'),
      garment: at('images', p.second, 'garment image'),
      pose: at('keypoints', `${id}_2.json`, 'keypoints'),
      labels: at('label_maps', `${id}_4.png`, 'label map'),
      dense: at('dense', `${id}_5.png`, 'DensePose part map'),
    };
  }

  example(index: number, height: number, width: number): DatasetExample {
    checkIndex(this.layout, index, this.length);
    const p = this.pairs[index]!;
    const f = this.files(p);
    const json = readJson(f.pose, this.layout) as { keypoints?: unknown };
    const rows = json.keypoints;
    if (!Array.isArray(rows) || rows.length < 18 || rows.some((r) => !Array.isArray(r) || r.length < 3)) {
      throw new Error(`${this.layout}: ${f.pose}: expected "keypoints" as 18 rows [x, y, score, index]`);
    }
    const [sx, sy] = [width / KEYPOINT_FRAME.width, height / KEYPOINT_FRAME.height];
    const keypoints = (rows as number[][])
      .slice(0, 18)
      .map(([x, y, score]) => ({ x: x! * sx, y: y! * sy, visible: score! > 0 && x! >= 0 && y! >= 0 }));
    // Leffa's DressCode model takes the raw part index map repeated over three channels.
    const parts = loadLabels(f.dense, height, width).labels;
    const densepose = {
      width,
      height,
      data: Uint8Array.from({ length: parts.length * 3 }, (_, i) => parts[Math.floor(i / 3)]!),
    };
    return tryonExample({
      name: `${this.category}/${p.first} + ${p.second}`,
      person: resizeRgb(readImage(f.image), height, width),
      garment: resizeRgb(readImage(f.garment), height, width),
      parsing: loadLabels(f.labels, height, width, DRESSCODE_TO_LIP).labels,
      keypoints,
      densepose,
      category: this.category,
    });
  }
}
