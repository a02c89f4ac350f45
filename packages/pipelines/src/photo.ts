/**
 * Try-on and pose transfer from plain photos: the preprocessing Leffa's demo runs before sampling
 * (OpenPose keypoints, SCHP human parsing, the agnostic mask, DensePose), done with this package's models,
 * then Leffa sampling and an optional repaint.
 *
 * Image roles (as synthetic-source.ts and the tryon / pose-transfer commands use them):
 * - try-on: `person` is the person to dress, `reference` the flat garment photo;
 * - pose transfer: `person` is the image in the TARGET pose (its keypoints and DensePose are the condition;
 *   its pixels are all masked), `reference` the SOURCE person whose appearance is re-rendered.
 *
 * Both images are letterboxed to the model size: resized to fit while keeping their aspect ratio, centred, and
 * padded with white (the background of flat-garment photos and of VITON-HD person images). The generated
 * image can be cropped back to the person's content box with `cropToBox`.
 */
import * as T from '@leffa-webgpu/core';
import {
  DENSEPOSE_MIN_SIDE,
  DensePoseHead,
  LIP_LABELS,
  type LeffaModel,
  OpenPoseBody,
  type Person,
  SCHPNetwork,
  colorizeLabels,
  estimatePose,
  leffaSample,
  parseHuman,
  personCrop,
  predictIuv,
  renderSkeleton,
} from '@leffa-webgpu/models';
import {
  agnosticMask,
  fitWithin,
  type GarmentCategory,
  type LeffaExample,
  type LeffaTask,
  LIP,
  maskToImage,
  resizeRgb,
  type RgbImage,
  tensorToImages,
  tile,
  toBatch,
} from '@leffa-webgpu/data/web';
import { renderDensePose } from './densepose-render.js';
import { PhotoCheckError, type PhotoCheckLimits, type PhotoKeypoint, photoProblems } from './photo-checks.js';

export type { PhotoKeypoint } from './photo-checks.js';

/** Where a letterboxed image's content lies on the canvas (integer pixels). */
export interface ContentBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Resizes `image` to fit `height` x `width` keeping its aspect ratio, centred on a `fill`-coloured canvas
 * (white by default). Returns the canvas and the content box.
 */
export function letterbox(
  image: RgbImage,
  height: number,
  width: number,
  fill = 255,
): { image: RgbImage; box: ContentBox } {
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0))
    throw new Error(`letterbox: size must be positive integers, got ${height}x${width}`);
  if (image.width < 1 || image.height < 1) throw new Error(`letterbox: empty image ${image.width}x${image.height}`);
  const { height: h, width: w } = fitWithin(image.height, image.width, height, width);
  const resized = resizeRgb(image, h, w);
  const box = { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), width: w, height: h };
  const data = new Uint8Array(width * height * 3).fill(fill);
  for (let y = 0; y < h; y++)
    data.set(resized.data.subarray(y * w * 3, (y + 1) * w * 3), ((box.y + y) * width + box.x) * 3);
  return { image: { width, height, data }, box };
}

/** The pixels of `box` (e.g. a letterbox's content) as their own image. */
export function cropToBox(image: RgbImage, box: ContentBox): RgbImage {
  if (box.x < 0 || box.y < 0 || box.x + box.width > image.width || box.y + box.height > image.height) {
    throw new Error(
      `cropToBox: box ${box.width}x${box.height}+${box.x}+${box.y} is outside the ${image.width}x${image.height} image`,
    );
  }
  const data = new Uint8Array(box.width * box.height * 3);
  for (let y = 0; y < box.height; y++) {
    const src = ((box.y + y) * image.width + box.x) * 3;
    data.set(image.data.subarray(src, src + box.width * 3), y * box.width * 3);
  }
  return { width: box.width, height: box.height, data };
}

/** Separable square min filter (erosion) or box mean of radius r, edges clamped. */
function separable(values: Float64Array, width: number, height: number, r: number, op: 'min' | 'mean'): Float64Array {
  const pass = (src: Float64Array, horizontal: boolean) => {
    const out = new Float64Array(src.length);
    const [n, len] = horizontal ? [height, width] : [width, height];
    for (let line = 0; line < n; line++) {
      for (let i = 0; i < len; i++) {
        let acc = op === 'min' ? Infinity : 0;
        for (let d = -r; d <= r; d++) {
          const j = Math.min(len - 1, Math.max(0, i + d));
          const v = src[horizontal ? line * width + j : j * width + line]!;
          acc = op === 'min' ? Math.min(acc, v) : acc + v;
        }
        out[horizontal ? line * width + i : i * width + line] = op === 'min' ? acc : acc / (2 * r + 1);
      }
    }
    return out;
  };
  return pass(pass(values, true), false);
}

/**
 * Composites `generated` over `original` inside `mask` (H*W, 1 = generated) with a soft edge of
 * `blurRadius` pixels. Unlike Leffa's repaint (which Gaussian-blurs the mask outward), the mask is first
 * eroded by the radius and then box-blurred by it, so the feathering stays inside the mask: every pixel outside
 * it is the original's exactly, and pixels deep inside are the generated ones exactly. Mask regions thinner
 * than 2 x radius fade out.
 */
export function repaint(original: RgbImage, generated: RgbImage, mask: Uint8Array, blurRadius: number): RgbImage {
  const { width, height } = original;
  if (generated.width !== width || generated.height !== height) {
    throw new Error(
      `repaint: generated image is ${generated.width}x${generated.height}, the original ${width}x${height}`,
    );
  }
  if (mask.length !== width * height)
    throw new Error(`repaint: mask has ${mask.length} values, expected ${width * height} (${width}x${height})`);
  if (!(blurRadius >= 0)) throw new Error(`repaint: blurRadius must be >= 0, got ${blurRadius}`);
  const r = Math.round(blurRadius);
  const hard = Float64Array.from(mask, (v) => (v ? 1 : 0));
  const alpha = r > 0 ? separable(separable(hard, width, height, r, 'min'), width, height, r, 'mean') : hard;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const a = alpha[i]!;
    for (let c = 0; c < 3; c++) {
      const o = original.data[3 * i + c]!;
      data[3 * i + c] =
        a === 0 ? o : a === 1 ? generated.data[3 * i + c]! : Math.round(o + (generated.data[3 * i + c]! - o) * a);
    }
  }
  return { width, height, data };
}

/** 'upper_body' | 'lower_body' | 'dresses', also accepting 'upper', 'lower' and 'dress'. */
export function parseCategory(value: string): GarmentCategory {
  const v = value.trim().toLowerCase();
  const map: Record<string, GarmentCategory> = {
    upper_body: 'upper_body',
    upper: 'upper_body',
    lower_body: 'lower_body',
    lower: 'lower_body',
    dresses: 'dresses',
    dress: 'dresses',
  };
  const c = map[v];
  if (!c)
    throw new Error(`--category must be upper_body, lower_body or dresses (or upper, lower, dress), got '${value}'`);
  return c;
}

/** The preprocessing networks, in eval mode, and the input sizes they work best at. */
export interface PhotoModels {
  openpose: OpenPoseBody;
  /** SCHP human parser with LIP's 20 labels; needed for try-on only. */
  schp?: SCHPNetwork;
  densepose: DensePoseHead;
  /** SCHP network input [H, W] (its training size); default the model size. */
  schpInputSize?: [number, number];
  /** DensePose training size [H, W]: the person crop gets its aspect, the input its height; default the model size. */
  denseposeSize?: [number, number];
}

export interface PhotoInputs {
  /** Try-on: the person; pose transfer: the image in the target pose. */
  person: RgbImage;
  /** Try-on: the flat garment; pose transfer: the source person. */
  reference: RgbImage;
  /** Garment category (try-on; default upper_body). */
  category?: GarmentCategory;
  models: PhotoModels;
  /** Model size [H, W]. */
  size: [number, number];
  /** OpenPose scales as body.py's scale_search: the person canvas is resized to scale x the model's boxsize px tall (default [0.5]). */
  poseScales?: number[];
  /** Limits of the preprocessing checks (`problems`): default PHOTO_CHECK_LIMITS; SHIPPED_PHOTO_CHECK_LIMITS for the shipped networks. */
  checkLimits?: PhotoCheckLimits;
}

export interface PreparedPhoto {
  example: LeffaExample;
  /** The 18 OpenPose keypoints of the person (target pose) on the model-size canvas. */
  keypoints: PhotoKeypoint[];
  /** Content boxes of the letterboxed person and reference. */
  personBox: ContentBox;
  referenceBox: ContentBox;
  /** Model-size images for inspection. */
  debug: {
    person: RgbImage;
    reference: RgbImage;
    /** LIP labels (try-on only) and their SCHP colour map. */
    labels?: Uint8Array;
    parsing?: RgbImage;
    skeleton: RgbImage;
    /** The DensePose render Leffa gets: parula (try-on, VITON-HD style) or IUV (pose transfer). */
    densepose: RgbImage;
    mask: RgbImage;
    /** The person with the regenerated region grey, as the synthetic samples show it. */
    agnostic: RgbImage;
  };
  /** Things that went wrong but did not stop the pipeline (e.g. no person found). */
  warnings: string[];
  /**
   * Failed checks of the preprocessing (`photoProblems` with `checkLimits`: no person, too few or unsure keypoints,
   * a try-on mask that is empty or covers the face, parsing and DensePose disagreeing on the person);
   * `runPhotoPipeline` with `strict` stops on them.
   */
  problems: string[];
}

const chw01 = (img: RgbImage): T.Tensor => {
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = img.data[3 * i + c]! / 255;
  return T.tensor(out, [3, img.height, img.width]);
};

/** The person with the most detected parts (ties: the higher OpenPose score). */
function mainPerson(people: Person[]): Person | undefined {
  const found = (p: Person) => p.keypoints.filter((k) => k[2] > 0).length;
  return [...people].sort((a, b) => found(b) - found(a) || b.score - a.score)[0];
}

/** Garment labels of a category on the person (the try-on example's loss mask, as the agnostic mask picks them). */
function garmentRegion(labels: Uint8Array, category: GarmentCategory): Uint8Array {
  const set: number[] =
    category === 'upper_body'
      ? [LIP.upperClothes, 6, 7]
      : category === 'lower_body'
        ? [LIP.pants, LIP.skirt]
        : [LIP.upperClothes, 6, 7, LIP.pants, LIP.skirt];
  return Uint8Array.from(labels, (l) => (set.includes(l) ? 1 : 0));
}

/**
 * Builds the Leffa example of one photo pair, exactly as synthetic-source assembles a synthetic one:
 * try-on -> source = person, reference = garment, mask = agnostic mask (SCHP parsing + OpenPose keypoints),
 * densepose = parula render, loss mask = garment region; pose transfer -> source = target-pose image (all of it
 * masked), reference = source person, densepose = IUV render of the target pose, loss mask = its foreground.
 */
export async function preparePhotoExample(task: LeffaTask, inputs: PhotoInputs): Promise<PreparedPhoto> {
  const [height, width] = inputs.size;
  if (height < DENSEPOSE_MIN_SIDE || width < DENSEPOSE_MIN_SIDE)
    throw new Error(
      `photo pipeline: size ${height}x${width} is too small (at least ${DENSEPOSE_MIN_SIDE}x${DENSEPOSE_MIN_SIDE})`,
    );
  const { models } = inputs;
  if (task === 'tryon' && !models.schp)
    throw new Error('photo try-on needs an SCHP checkpoint (train-schp) for the agnostic mask');
  for (const [name, m] of [
    ['openpose', models.openpose],
    ['schp', models.schp],
    ['densepose', models.densepose],
  ] as const) {
    if (m?.training) throw new Error(`photo pipeline: the ${name} model is in training mode; call .eval() first`);
  }
  const category = inputs.category ?? 'upper_body';
  const warnings: string[] = [];
  const person = letterbox(inputs.person, height, width);
  const reference = letterbox(inputs.reference, height, width);
  const plane = height * width;
  const img = (data: Uint8Array): RgbImage => ({ width, height, data });

  // OpenPose on the letterboxed person: keypoints land directly in model coordinates.
  const pose = await estimatePose(models.openpose, person.image, { scales: inputs.poseScales ?? [0.5] });
  const who = mainPerson(pose.people);
  if (!who)
    warnings.push(
      `OpenPose found no person in the ${task === 'tryon' ? 'person' : 'target-pose'} image: no arm strokes in the mask, DensePose on the whole image`,
    );
  const keypoints: PhotoKeypoint[] = Array.from({ length: 18 }, (_, j) => {
    const [x, y, score] = who?.keypoints[j] ?? [0, 0, 0];
    return { x, y, score, visible: score > 0 };
  });
  const skeleton = renderSkeleton(who ? [who] : [], width, height, Math.max(1, Math.round(width / 48)));

  // DensePose inside the person box at the training aspect (as the densepose command with --keypoints).
  const [dpH, dpW] = models.denseposeSize ?? [height, width];
  const box = who ? personCrop(who.keypoints, { aspect: dpH / dpW }) : undefined;
  const region = box ?? { x: 0, y: 0, width, height };
  const x = chw01(person.image);
  let iuvMaps: Awaited<ReturnType<typeof predictIuv>>;
  let labels: Uint8Array | undefined;
  try {
    iuvMaps = await predictIuv(models.densepose, x, {
      inputSize: [
        Math.max(DENSEPOSE_MIN_SIDE, dpH),
        Math.max(DENSEPOSE_MIN_SIDE, Math.round((region.width * dpH) / region.height)),
      ],
      ...(box ? { box } : {}),
    });
    if (task === 'tryon') {
      const schp = models.schp!;
      if (schp.config.numClasses !== LIP_LABELS.labels.length) {
        throw new Error(
          `photo try-on needs an SCHP model with LIP's ${LIP_LABELS.labels.length} labels for the agnostic mask; this one has ${schp.config.numClasses}`,
        );
      }
      const parsed = parseHuman(schp, x, { inputSize: models.schpInputSize ?? [height, width] });
      labels = Uint8Array.from(await parsed.labels.intData());
      T.dispose([parsed.logits, parsed.labels]);
    }
  } finally {
    x.dispose();
  }
  const renders = renderDensePose(iuvMaps);

  let mask: Uint8Array;
  let lossMask: Uint8Array;
  if (task === 'tryon') {
    mask = agnosticMask(labels!, keypoints, width, height, category);
    lossMask = garmentRegion(labels!, category);
    if (!mask.some((v) => v))
      warnings.push(
        `the agnostic mask is empty (SCHP found no ${category} garment or arms): nothing will be regenerated`,
      );
  } else {
    mask = new Uint8Array(plane).fill(1);
    lossMask = Uint8Array.from(iuvMaps.parts, (p) => (p > 0 ? 1 : 0));
  }
  const agnostic = person.image.data.slice();
  mask.forEach((m, i) => {
    if (m) agnostic.fill(128, 3 * i, 3 * i + 3);
  });
  const densepose = task === 'tryon' ? renders.parula : renders.iuv;
  const example: LeffaExample = {
    height,
    width,
    source: person.image.data,
    reference: reference.image.data,
    mask,
    densepose: densepose.data,
    lossMask,
  };
  return {
    example,
    keypoints,
    personBox: person.box,
    referenceBox: reference.box,
    debug: {
      person: person.image,
      reference: reference.image,
      ...(labels ? { labels, parsing: img(colorizeLabels(labels)) } : {}),
      skeleton: img(skeleton),
      densepose,
      mask: img(maskToImage(mask)),
      agnostic: img(agnostic),
    },
    warnings,
    problems: photoProblems(
      {
        task,
        width,
        height,
        keypoints,
        ...(labels
          ? {
              mask,
              parsingForeground: labels,
              denseposeForeground: Uint8Array.from(iuvMaps.parts, (p) => (p > 0 ? 1 : 0)),
            }
          : {}),
      },
      inputs.checkLimits,
    ),
  };
}

export interface PhotoPipelineOptions extends PhotoInputs {
  leffa: LeffaModel;
  /** Sampling steps (default 30), DDIM. */
  steps?: number;
  /** Classifier-free guidance scale (default 2.5, Leffa's). */
  guidance?: number;
  seed?: number;
  /** Composite the result over the person inside the mask (try-on): true (radius H / 50, as Leffa) or a blur radius. */
  repaint?: boolean | number;
  onStep?: (step: number, total: number) => void;
  /** Throw a PhotoCheckError instead of sampling when the preprocessing failed its checks (default false). */
  strict?: boolean;
}

export interface PhotoPipelineResult {
  prepared: PreparedPhoto;
  /** The raw Leffa output at the model size (letterboxed like the person). */
  generated: RgbImage;
  /** The final image: repainted if asked, cropped to the person's letterbox content. */
  result: RgbImage;
  /** Rows: person, reference, parsing (try-on), skeleton, DensePose render, mask, final image (model size). */
  sheet: RgbImage;
}

/**
 * The whole pipeline from photos: `preparePhotoExample`, then Leffa sampling (DDIM, CFG, the reference UNet's
 * features computed once), an optional repaint, and the debug sheet.
 */
export async function runPhotoPipeline(task: LeffaTask, options: PhotoPipelineOptions): Promise<PhotoPipelineResult> {
  const prepared = await preparePhotoExample(task, options);
  if (options.strict && prepared.problems.length) throw new PhotoCheckError(prepared.problems);
  const e = prepared.example;
  const batch = toBatch([e]);
  let y: T.Tensor;
  try {
    y = await leffaSample(
      options.leffa,
      { image: batch.source, reference: batch.reference, mask: batch.mask, densepose: batch.densepose },
      {
        steps: options.steps ?? 30,
        guidanceScale: options.guidance ?? 2.5,
        refAcceleration: true,
        generator: new T.Generator(options.seed ?? 0),
        ...(options.onStep ? { onStep: options.onStep } : {}),
      },
    );
  } finally {
    T.dispose([batch.source, batch.reference, batch.mask, batch.densepose, batch.lossMask]);
  }
  const [pixels] = await tensorToImages(y);
  y.dispose();
  const generated: RgbImage = { width: e.width, height: e.height, data: pixels! };
  const radius =
    options.repaint === true
      ? Math.max(1, Math.round(e.height / 50))
      : typeof options.repaint === 'number'
        ? options.repaint
        : null;
  const final = radius === null ? generated : repaint(prepared.debug.person, generated, e.mask, radius);
  const d = prepared.debug;
  const row = [d.person, d.reference, ...(d.parsing ? [d.parsing] : []), d.skeleton, d.densepose, d.mask, final].map(
    (i) => i.data,
  );
  return { prepared, generated, result: cropToBox(final, prepared.personBox), sheet: tile([row], e.width, e.height) };
}
