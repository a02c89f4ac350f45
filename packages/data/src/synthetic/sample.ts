import { agnosticMask, type GarmentCategory } from './agnostic.js';
import { type Part, buildParts } from './body.js';
import { renderIuv, renderPartsParula } from './densepose.js';
import { type UpperGarment, insideFlatGarment, sampleLowerGarment, sampleUpperGarment } from './garment.js';
import { type Appearance, type Rendered, renderPerson } from './render.js';
import { type RGB, Rng, hsl } from './rng.js';
import { Band } from './shapes.js';
import { type BodyShape, type Point, type Pose, buildSkeleton, samplePose, sampleBodyShape } from './skeleton.js';

export interface Keypoint {
  x: number;
  y: number;
  /** Inside the image. */
  visible: boolean;
}

/** One rendered view of a person. */
export interface PersonView {
  image: Uint8Array;
  parsing: Uint8Array;
  keypoints: Keypoint[];
  iuv: { I: Uint8Array; U: Float32Array; V: Float32Array };
  /** The PARULA part render Leffa's try-on model takes as its DensePose condition. */
  densepose: Uint8Array;
  /** (I, U*255, V*255). */
  iuvImage: Uint8Array;
  /** 1 on the person. */
  foreground: Uint8Array;
  /** 1 where the upper garment covers the person. */
  garmentMask: Uint8Array;
  agnosticMask: Uint8Array;
  /** The person with the agnostic region painted grey. */
  agnostic: Uint8Array;
}

export interface SyntheticSample {
  seed: number;
  width: number;
  height: number;
  person: PersonView;
  /** The flat upper garment on white and its mask. */
  garment: Uint8Array;
  garmentMask: Uint8Array;
  /** Exact flow from each person pixel under the garment to its garment-image position (pixels, x then y). */
  garmentFlow: Float32Array;
  garmentFlowValid: Uint8Array;
  /** Pose transfer: the same identity in a second pose, and the exact flow from each of its pixels to the first view. */
  second?: PersonView;
  poseFlow?: Float32Array;
  poseFlowValid?: Uint8Array;
}

export interface SampleOptions {
  seed: number;
  /** Image size (VITON-HD's 4:3 portrait aspect suits the defaults, e.g. 128 x 96). */
  height: number;
  width: number;
  /** Also render a second pose with the person-to-person flow. */
  poseTransfer?: boolean;
  category?: GarmentCategory;
}

const SKIN: RGB[] = [
  [255, 224, 196],
  [241, 194, 158],
  [224, 172, 133],
  [198, 134, 96],
  [161, 102, 64],
  [112, 70, 46],
  [84, 52, 36],
];

function sampleAppearance(rng: Rng): Appearance {
  const skin = rng.pick(SKIN);
  const h = rng.uniform(0, 360);
  const bgA = hsl(h, rng.uniform(0, 0.25), rng.uniform(0.75, 0.95));
  const bgB = hsl((h + 40) % 360, rng.uniform(0, 0.25), rng.uniform(0.6, 0.9));
  const bgKind = rng.pick(['flat', 'gradient', 'stripes'] as const);
  const background = (x: number, y: number): RGB =>
    bgKind === 'flat'
      ? bgA
      : bgKind === 'gradient'
        ? ((y < 0.5 ? bgA : bgB).map((c, i) => c + ((bgB[i]! - bgA[i]!) * y) / 2) as RGB)
        : Math.floor(x * 6) % 2
          ? bgA
          : bgB;
  return {
    skin: skin.map((c) => Math.min(255, c * rng.uniform(0.95, 1.05))) as RGB,
    hair: rng.pick([
      [20, 16, 14],
      [60, 40, 25],
      [110, 70, 40],
      [200, 160, 100],
      [140, 40, 30],
      [90, 90, 95],
    ] as RGB[]),
    shoes: hsl(rng.uniform(0, 360), rng.uniform(0, 0.5), rng.uniform(0.1, 0.4)),
    hairline: rng.uniform(0.18, 0.38),
    longHair: rng.chance(0.4),
    upper: sampleUpperGarment(rng),
    lower: sampleLowerGarment(rng),
    background,
  };
}

interface Posed {
  parts: Part[];
  rendered: Rendered;
  keypoints: Keypoint[];
}

/** Places, poses and rasterises one identity. */
function pose(
  body: BodyShape,
  look: Appearance,
  p: Pose,
  placement: { scale: number; origin: Point },
  width: number,
  height: number,
): Posed {
  const sk = buildSkeleton(body, p, placement.origin, placement.scale);
  const parts = buildParts(body, sk, placement.scale);
  const head = sk.headCenter;
  const s = placement.scale;
  const hairBack = look.longHair
    ? new Band(
        { x: head.x, y: head.y - body.headRy * s * 0.6 },
        { x: head.x, y: head.y + body.headRy * s * 2.2 },
        body.headRx * s * 1.15,
        body.headRx * s * 1.5,
      )
    : undefined;
  const k = sk.keypoints;
  const skirt =
    look.lower.kind === 'skirt'
      ? new Band(
          { x: (k[8]!.x + k[11]!.x) / 2, y: (k[8]!.y + k[11]!.y) / 2 },
          { x: (k[9]!.x + k[12]!.x) / 2, y: (k[9]!.y + k[12]!.y) / 2 + body.legRadius * s * look.lower.legEnd },
          Math.abs(k[11]!.x - k[8]!.x) / 2 + body.legRadius * s * 1.2,
          Math.abs(k[12]!.x - k[9]!.x) / 2 + body.legRadius * s * 2.2,
        )
      : undefined;
  const rendered = renderPerson(parts, look, width, height, hairBack, skirt);
  const keypoints = k.map((q) => ({ x: q.x, y: q.y, visible: q.x >= 0 && q.y >= 0 && q.x < width && q.y < height }));
  return { parts, rendered, keypoints };
}

function view(p: Posed, width: number, height: number, category: GarmentCategory): PersonView {
  const r = p.rendered;
  const agn = agnosticMask(r.parsing, p.keypoints, width, height, category);
  const agnostic = r.image.slice();
  agn.forEach((m, i) => {
    if (m) agnostic.fill(128, 3 * i, 3 * i + 3);
  });
  return {
    image: r.image,
    parsing: r.parsing,
    keypoints: p.keypoints,
    iuv: { I: r.iuvI, U: r.iuvU, V: r.iuvV },
    densepose: renderPartsParula(r.iuvI),
    iuvImage: renderIuv(r.iuvI, r.iuvU, r.iuvV),
    foreground: Uint8Array.from(r.parsing, (l) => (l ? 1 : 0)),
    garmentMask: Uint8Array.from(r.garmentX, (v) => (Number.isNaN(v) ? 0 : 1)),
    agnosticMask: agn,
    agnostic,
  };
}

/** The flat garment on white (the try-on reference image) and its mask. */
function flatGarment(g: UpperGarment, width: number, height: number): { image: Uint8Array; mask: Uint8Array } {
  const image = new Uint8Array(width * height * 3).fill(255);
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const fx = (x + 0.5) / width;
      const fy = (y + 0.5) / height;
      if (!insideFlatGarment(g, fx, fy)) continue;
      image.set(g.texture(fx, fy), 3 * (y * width + x));
      mask[y * width + x] = 1;
    }
  }
  return { image, mask };
}

/**
 * Generates one synthetic try-on (and optionally pose-transfer) example, deterministically from `seed`.
 */
export function generateSample(options: SampleOptions): SyntheticSample {
  const { seed, width, height } = options;
  const rng = new Rng(seed);
  const body = sampleBodyShape(rng.fork());
  const look = sampleAppearance(rng.fork());
  const placementRng = rng.fork();
  const place = () => {
    const scale = height * placementRng.uniform(0.86, 0.98);
    return {
      scale,
      origin: { x: width / 2 + placementRng.uniform(-0.06, 0.06) * width, y: height * placementRng.uniform(0.16, 0.2) },
    };
  };
  const poseRng = rng.fork();
  const category = options.category ?? 'upper_body';
  const first = pose(body, look, samplePose(poseRng), place(), width, height);
  const flat = flatGarment(look.upper, width, height);
  const n = width * height;
  const garmentFlow = new Float32Array(2 * n);
  const garmentFlowValid = new Uint8Array(n);
  first.rendered.garmentX.forEach((gx, i) => {
    if (Number.isNaN(gx)) return;
    // Continuous flat coordinates to garment-image pixel coordinates (pixel centres at integers).
    garmentFlow[2 * i] = gx * width - 0.5;
    garmentFlow[2 * i + 1] = first.rendered.garmentY[i]! * height - 0.5;
    garmentFlowValid[i] = 1;
  });
  const sample: SyntheticSample = {
    seed,
    width,
    height,
    person: view(first, width, height, category),
    garment: flat.image,
    garmentMask: flat.mask,
    garmentFlow,
    garmentFlowValid,
  };
  if (options.poseTransfer) {
    const second = pose(body, look, samplePose(poseRng), place(), width, height);
    const { flow, valid } = personFlow(second, first, width, height);
    sample.second = view(second, width, height, category);
    sample.poseFlow = flow;
    sample.poseFlowValid = valid;
  }
  return sample;
}

/**
 * For each pixel of `to`, where the same surface point lies in `from` (through the part's local
 * coordinates), valid when that point is visible there (the same part is on top).
 */
function personFlow(to: Posed, from: Posed, width: number, height: number): { flow: Float32Array; valid: Uint8Array } {
  const n = width * height;
  const flow = new Float32Array(2 * n);
  const valid = new Uint8Array(n);
  const r = to.rendered;
  for (let i = 0; i < n; i++) {
    const k = r.partIndex[i]!;
    if (k < 0) continue;
    const q = from.parts[k]!.shape.place(r.localT[i]!, r.localS[i]!);
    const x = Math.floor(q.x);
    const y = Math.floor(q.y);
    if (x < 0 || y < 0 || x >= width || y >= height) continue;
    if (from.rendered.partIndex[y * width + x] !== k) continue;
    flow[2 * i] = q.x - 0.5;
    flow[2 * i + 1] = q.y - 0.5;
    valid[i] = 1;
  }
  return { flow, valid };
}
