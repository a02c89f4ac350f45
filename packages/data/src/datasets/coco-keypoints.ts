import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readImage } from '../io/image-file.js';
import type { RgbImage } from '../io/png.js';
import type { PoseExample } from '../openpose/ground-truth.js';
import type { AnnotatedKeypoint } from '../openpose/ground-truth.js';

/**
 * COCO-17 index of each OpenPose COCO-18 keypoint (nose, neck, right shoulder/elbow/wrist, left
 * shoulder/elbow/wrist, right hip/knee/ankle, left hip/knee/ankle, right/left eye, right/left ear); the
 * neck (-1) is the midpoint of the shoulders, present when both are.
 */
export const COCO17_TO_OPENPOSE18 = [0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3] as const;

interface CocoAnnotation {
  image_id: number;
  bbox: [number, number, number, number];
  keypoints: number[];
  num_keypoints: number;
  iscrowd?: number;
}

interface CocoFile {
  images: { id: number; file_name: string; width: number; height: number }[];
  annotations: CocoAnnotation[];
}

export interface CocoKeypointsOptions {
  /** Training crop size (the network input). */
  height: number;
  width: number;
  /** People with fewer labelled keypoints are not used as crop centres (default 5). */
  minKeypoints?: number;
  /** Crop box = the person's box, grown by this factor about its centre, then widened to the crop aspect (default 1.25). */
  margin?: number;
}

/** A person's 18 OpenPose keypoints from COCO's 17 (x, y, v) triples; v = 0 means not labelled. */
export function openPoseKeypointsFromCoco(triples: readonly number[]): AnnotatedKeypoint[] {
  if (triples.length !== 51)
    throw new Error(`COCO keypoints: expected 17 (x, y, v) triples (51 numbers), got ${triples.length}`);
  const at = (i: number): AnnotatedKeypoint => ({
    x: triples[3 * i]!,
    y: triples[3 * i + 1]!,
    visible: triples[3 * i + 2]! > 0,
  });
  return COCO17_TO_OPENPOSE18.map((c) => {
    if (c >= 0) return at(c);
    const [r, l] = [at(6), at(5)];
    return { x: (r.x + l.x) / 2, y: (r.y + l.y) / 2, visible: r.visible && l.visible };
  });
}

/**
 * COCO person keypoints (`annotations/person_keypoints_<split>.json` and `<split>/<file_name>`, e.g. split
 * `train2017`) as OpenPose training examples: one example per non-crowd person with enough labelled keypoints,
 * a crop around that person resized to the training size (outside the image: grey 128, as OpenPose pads),
 * holding every non-crowd person's keypoints that fall inside (the crop's own person first). Unlabelled people inside a crop are not masked.
 */
export class CocoKeypointsDataset {
  readonly layout = 'COCO keypoints';
  private readonly images: Map<number, { file: string; width: number; height: number }>;
  private readonly byImage = new Map<number, CocoAnnotation[]>();
  private readonly people: CocoAnnotation[];

  constructor(
    readonly root: string,
    readonly split: string,
    readonly options: CocoKeypointsOptions,
  ) {
    const annotations = join(root, 'annotations', `person_keypoints_${split}.json`);
    if (!existsSync(annotations)) throw new Error(`${this.layout}: missing annotation file ${annotations}`);
    let coco: CocoFile;
    try {
      coco = JSON.parse(readFileSync(annotations, 'utf8')) as CocoFile;
    } catch (e) {
      throw new Error(`${this.layout}: ${annotations} is not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(coco.images) || !Array.isArray(coco.annotations))
      throw new Error(`${this.layout}: ${annotations} has no 'images' and 'annotations' lists`);
    this.images = new Map(
      coco.images.map((im) => [im.id, { file: join(root, split, im.file_name), width: im.width, height: im.height }]),
    );
    for (const [i, a] of coco.annotations.entries()) {
      if (!this.images.has(a.image_id))
        throw new Error(
          `${this.layout}: annotation ${i} of ${annotations} refers to image id ${a.image_id}, which is not listed`,
        );
      if (a.iscrowd) continue;
      openPoseKeypointsFromCoco(a.keypoints); // validates the triples up front
      let list = this.byImage.get(a.image_id);
      if (!list) this.byImage.set(a.image_id, (list = []));
      list.push(a);
    }
    const min = options.minKeypoints ?? 5;
    this.people = coco.annotations.filter((a) => !a.iscrowd && a.num_keypoints >= min);
    if (this.people.length === 0)
      throw new Error(`${this.layout}: ${annotations} has no person with at least ${min} keypoints`);
    for (const a of this.people) {
      const file = this.images.get(a.image_id)!.file;
      if (!existsSync(file)) throw new Error(`${this.layout}: missing image file ${file} (image id ${a.image_id})`);
    }
  }

  get length(): number {
    return this.people.length;
  }

  example(index: number): PoseExample {
    const person = this.people[((index % this.length) + this.length) % this.length]!;
    const meta = this.images.get(person.image_id)!;
    const image = readImage(meta.file);
    const { height, width } = this.options;
    // Crop box about the person's centre, at the crop aspect.
    const [bx, by, bw, bh] = person.bbox;
    const margin = this.options.margin ?? 1.25;
    let ch = bh * margin;
    let cw = bw * margin;
    if (cw / ch > width / height) ch = (cw * height) / width;
    else cw = (ch * width) / height;
    const x0 = bx + bw / 2 - cw / 2;
    const y0 = by + bh / 2 - ch / 2;
    const scale = height / ch;
    // The crop's own person first (PCK scores people[0]).
    const annotated = [person, ...(this.byImage.get(person.image_id) ?? []).filter((a) => a !== person)];
    const people = annotated.map((a) =>
      openPoseKeypointsFromCoco(a.keypoints).map((k) => {
        const x = (k.x - x0) * scale;
        const y = (k.y - y0) * scale;
        return { x, y, visible: k.visible && x >= 0 && y >= 0 && x < width && y < height };
      }),
    );
    return {
      width,
      height,
      image: cropResize(image, x0, y0, cw, ch, width, height),
      people: people.filter((p) => p.some((k) => k.visible)),
    };
  }
}

/** Bilinear resampling of the box (x0, y0, w, h) of an image to width x height, grey 128 outside it. */
function cropResize(
  image: RgbImage,
  x0: number,
  y0: number,
  w: number,
  h: number,
  width: number,
  height: number,
): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const sx = w / width;
  const sy = h / height;
  const pixel = (x: number, y: number, c: number) =>
    x < 0 || y < 0 || x >= image.width || y >= image.height ? 128 : image.data[(y * image.width + x) * 3 + c]!;
  for (let j = 0; j < height; j++) {
    const y = y0 + (j + 0.5) * sy - 0.5;
    const yi = Math.floor(y);
    const fy = y - yi;
    for (let i = 0; i < width; i++) {
      const x = x0 + (i + 0.5) * sx - 0.5;
      const xi = Math.floor(x);
      const fx = x - xi;
      for (let c = 0; c < 3; c++) {
        const top = pixel(xi, yi, c) * (1 - fx) + pixel(xi + 1, yi, c) * fx;
        const bottom = pixel(xi, yi + 1, c) * (1 - fx) + pixel(xi + 1, yi + 1, c) * fx;
        out[(j * width + i) * 3 + c] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return out;
}
