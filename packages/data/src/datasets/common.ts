import { existsSync, readFileSync } from 'node:fs';
import type { LeffaExample } from '../leffa/batch.js';
import type { LeffaTask } from '../leffa/synthetic-source.js';
import { readImage, readLabelMap } from '../io/image-file.js';
import type { LabelMap, RgbImage } from '../io/png.js';
import { resizeNearest, resizeRgb } from '../io/resize.js';
import { type GarmentCategory, agnosticMask } from '../synthetic/agnostic.js';
import type { Keypoint } from '../synthetic/sample.js';

/** A dataset example: the Leffa training tensors' sources plus what they were derived from. */
export interface DatasetExample extends LeffaExample {
  /** Identifies the pair, e.g. `00001_00.jpg + 00002_00.jpg`. */
  name: string;
  /** LIP labels of the (target) person, when the dataset has parsing maps. */
  parsing?: Uint8Array;
  keypoints: Keypoint[];
}

/** A dataset on disk in one of the published layouts, read lazily, one example at a time. */
export interface FolderDataset {
  /** Layout name, e.g. `viton-hd`. */
  readonly layout: string;
  readonly task: LeffaTask;
  readonly length: number;
  /** Example `index`, resized to height x width. */
  example(index: number, height: number, width: number): DatasetExample;
}

/** One line of a pairs file. */
export interface PairLine {
  first: string;
  second: string;
  /** 1-based line number in `file`, for error messages. */
  line: number;
  file: string;
}

/** Throws a message naming the dataset, the missing file and the pair-file line that referred to it. */
export function requireFile(path: string, what: string, layout: string, from?: PairLine): string {
  if (!existsSync(path)) {
    const where = from ? ` (referenced by line ${from.line} of ${from.file}: '${from.first} ${from.second}')` : '';
    throw new Error(`${layout}: missing ${what} file ${path}${where}`);
  }
  return path;
}

/**
 * Reads a pairs file: one pair per line, two names separated by white space (VITON-HD, DressCode) or a
 * comma (DeepFashion CSVs, whose header line names the `from` and `to` columns). Blank lines are skipped.
 */
export function readPairs(file: string, layout: string): PairLine[] {
  requireFile(file, 'pairs', layout);
  const lines = readFileSync(file, 'utf8').split(/\r?\n/);
  const csv = file.endsWith('.csv');
  let columns: [number, number] = [0, 1];
  const pairs: PairLine[] = [];
  lines.forEach((text, i) => {
    const trimmed = text.trim();
    if (!trimmed) return;
    const fields = csv ? trimmed.split(',').map((f) => f.trim()) : trimmed.split(/\s+/);
    if (csv && i === 0) {
      const from = fields.indexOf('from');
      const to = fields.indexOf('to');
      if (from < 0 || to < 0)
        throw new Error(`${layout}: ${file} line 1 must be a header naming 'from' and 'to' columns, got '${trimmed}'`);
      columns = [from, to];
      return;
    }
    const [a, b] = [fields[columns[0]], fields[columns[1]]];
    if (!a || !b || (!csv && fields.length !== 2))
      throw new Error(`${layout}: ${file} line ${i + 1}: expected two names, got '${trimmed}'`);
    pairs.push({ first: a, second: b, line: i + 1, file });
  });
  if (pairs.length === 0) throw new Error(`${layout}: ${file} lists no pairs`);
  return pairs;
}

/** Reads a JSON file, naming it in the error when it does not parse. */
export function readJson(path: string, layout: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${layout}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * 18 COCO keypoints from a flat [x, y, confidence] * 18 list (OpenPose JSON), scaled by (sx, sy). A point is
 * visible when its confidence is positive.
 */
export function keypointsFromTriples(values: unknown, sx: number, sy: number, source: string): Keypoint[] {
  if (!Array.isArray(values) || values.length < 54 || values.some((v) => typeof v !== 'number')) {
    throw new Error(
      `${source}: expected 18 keypoints as 54 numbers (x, y, confidence), got ${Array.isArray(values) ? `${values.length} values` : typeof values}`,
    );
  }
  return Array.from({ length: 18 }, (_, k) => {
    const [x, y, c] = [values[3 * k] as number, values[3 * k + 1] as number, values[3 * k + 2] as number];
    return { x: x * sx, y: y * sy, visible: c > 0 };
  });
}

/** Reads and resizes an image; `what` names it in errors. */
export function loadImage(path: string, height: number, width: number): RgbImage {
  return resizeRgb(readImage(path), height, width);
}

/** Reads a label map, optionally translates its labels, and resizes it by nearest neighbour. */
export function loadLabels(
  path: string,
  height: number,
  width: number,
  translate?: Uint8Array,
): LabelMap & { original: [number, number] } {
  const map = readLabelMap(path);
  const labels = translate ? Uint8Array.from(map.labels, (l) => translate[l] ?? 0) : map.labels;
  return {
    width,
    height,
    labels: resizeNearest(labels, map.width, map.height, height, width),
    original: [map.height, map.width],
  };
}

/** LIP labels of each try-on category's garment on the person (the region the Leffa loss compares). */
export const GARMENT_LABELS: Record<GarmentCategory, number[]> = {
  upper_body: [5, 6, 7],
  lower_body: [9, 12],
  dresses: [5, 6, 7, 9, 12],
};

/** Assembles a try-on example: agnostic mask from parsing + keypoints, loss mask = the garment on the person. */
export function tryonExample(args: {
  name: string;
  person: RgbImage;
  garment: RgbImage;
  parsing: Uint8Array;
  keypoints: Keypoint[];
  densepose: RgbImage;
  category: GarmentCategory;
}): DatasetExample {
  const { person, parsing, keypoints, category } = args;
  const { width, height } = person;
  const labels = new Set(GARMENT_LABELS[category]);
  return {
    name: args.name,
    height,
    width,
    source: person.data,
    reference: args.garment.data,
    mask: agnosticMask(parsing, keypoints, width, height, category),
    densepose: args.densepose.data,
    lossMask: Uint8Array.from(parsing, (l) => (labels.has(l) ? 1 : 0)),
    parsing,
    keypoints,
  };
}

/** Paints the garment image white where its mask (a grey or RGB image, thresholded at half) is off. */
export function whiteOutside(image: RgbImage, mask: RgbImage): RgbImage {
  if (mask.width !== image.width || mask.height !== image.height)
    throw new Error(
      `whiteOutside: mask ${mask.height}x${mask.width} does not match image ${image.height}x${image.width}`,
    );
  const data = image.data.slice();
  for (let i = 0; i < image.width * image.height; i++) if (mask.data[3 * i]! < 128) data.fill(255, 3 * i, 3 * i + 3);
  return { ...image, data };
}

/** Checks an index against a dataset's length. */
export function checkIndex(layout: string, index: number, length: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length)
    throw new Error(`${layout}: example index ${index} out of range [0, ${length})`);
}
