import { join } from 'node:path';
import { readImage } from '../io/image-file.js';
import { resizeRgb } from '../io/resize.js';
import {
  type DatasetExample,
  type FolderDataset,
  type PairLine,
  checkIndex,
  keypointsFromTriples,
  loadLabels,
  readJson,
  readPairs,
  requireFile,
  tryonExample,
  whiteOutside,
} from './common.js';

/**
 * VITON-HD (Choi et al. 2021) as released: `<root>/{train,test}_pairs.txt` ("person.jpg cloth.jpg" per line)
 * and per split the folders image/, cloth/, cloth-mask/, image-parse-v3/ (LIP-label palette PNGs),
 * openpose_json/ (`<person>_keypoints.json`) and image-densepose/. Upper-body garments only.
 */
export class VitonHdDataset implements FolderDataset {
  readonly layout = 'viton-hd';
  readonly task = 'tryon' as const;
  readonly pairs: PairLine[];

  constructor(
    readonly root: string,
    readonly split: 'train' | 'test' = 'train',
  ) {
    this.pairs = readPairs(join(root, `${split}_pairs.txt`), this.layout);
    // Every referenced file is checked up front, so a broken layout fails before training starts.
    for (const p of this.pairs) this.files(p);
  }

  get length(): number {
    return this.pairs.length;
  }

  private files(p: PairLine) {
    const dir = (sub: string, file: string, what: string) =>
      requireFile(join(this.root, this.split, sub, file), what, this.layout, p);
    const stem = p.first.replace(/\.[^.]+$/, '');
    return {
      image: dir('image', p.first, 'person image'),
      cloth: dir('cloth', p.second, 'garment image'),
      clothMask: dir('cloth-mask', p.second, 'garment mask'),
      parse: dir('image-parse-v3', `${stem}.png`, 'parsing map'),
      pose: dir('openpose_json', `${stem}_keypoints.json`, 'OpenPose keypoints'),
      densepose: dir('image-densepose', p.first, 'DensePose render'),
    };
  }

  example(index: number, height: number, width: number): DatasetExample {
    checkIndex(this.layout, index, this.length);
    const p = this.pairs[index]!;
    const f = this.files(p);
    const person = readImage(f.image);
    const json = readJson(f.pose, this.layout) as { people?: { pose_keypoints_2d?: unknown }[] };
    const first = json.people?.[0];
    if (!first) throw new Error(`${this.layout}: ${f.pose} has no people (line ${p.line} of ${p.file})`);
    const keypoints = keypointsFromTriples(
      first.pose_keypoints_2d,
      width / person.width,
      height / person.height,
      f.pose,
    );
    return tryonExample({
      name: `${p.first} + ${p.second}`,
      person: resizeRgb(person, height, width),
      garment: whiteOutside(
        resizeRgb(readImage(f.cloth), height, width),
        resizeRgb(readImage(f.clothMask), height, width),
      ),
      parsing: loadLabels(f.parse, height, width).labels,
      keypoints,
      densepose: resizeRgb(readImage(f.densepose), height, width),
      category: 'upper_body',
    });
  }
}
