import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import * as T from '@leffa-webgpu/core';
import { leffaSample } from '@leffa-webgpu/models';
import {
  exampleFromSample,
  type GarmentCategory,
  generateSample,
  type LeffaExample,
  type LeffaTask,
  readImage,
  readImageAsync,
  type RgbImage,
  tensorToImages,
  tile,
  toBatch,
  writePng,
} from '@leffa-webgpu/data';
import { HELD_OUT_SEED, type SeedAveragedEval, evaluateLeffaSeeds, formatSeedAveraged } from '../leffa/evaluate.js';
import {
  loadLeffa,
  loadPhotoModels,
  PHOTO_CHECK_LIMITS,
  PhotoCheckError,
  type PhotoModels,
  runPhotoPipeline,
  SHIPPED_PHOTO_CHECK_LIMITS,
} from '@leffa-webgpu/pipelines';
import { Progress } from './progress.js';

function checkSize(name: string, img: RgbImage, height: number, width: number): Uint8Array {
  if (img.height !== height || img.width !== width) {
    throw new Error(`${name}: image is ${img.width}x${img.height}, expected ${width}x${height} like the person image`);
  }
  return img.data;
}

const asMask = (img: RgbImage) =>
  Uint8Array.from({ length: img.width * img.height }, (_, i) => (img.data[3 * i]! > 127 ? 1 : 0));

/**
 * Inputs of one generation. `synthetic:SEED` picks a generated example (with its own mask and DensePose);
 * otherwise person and reference are PNG files and the mask and DensePose renders must be given as PNGs
 * (from the preprocessing pipeline or a dataset).
 */
export async function loadInputs(
  task: LeffaTask,
  person: string,
  reference: string | undefined,
  mask?: string,
  densepose?: string,
): Promise<LeffaExample> {
  const m = /^synthetic:(\d+)$/.exec(person);
  if (m) {
    const s = generateSample({ seed: Number(m[1]), height: 128, width: 96, poseTransfer: task === 'pose' });
    const e = exampleFromSample(task, s);
    if (reference) {
      const ref = readImage(reference);
      e.reference = checkSize(reference, ref, e.height, e.width);
    }
    return e;
  }
  if (!reference || !mask || !densepose) {
    throw new Error(
      'photo inputs need --garment/--source, --mask and --densepose images (PNG or JPEG) of the same size (or use --person synthetic:SEED)',
    );
  }
  const p = readImage(person);
  const maskImage = readImage(mask);
  return {
    height: p.height,
    width: p.width,
    source: p.data,
    reference: checkSize(reference, readImage(reference), p.height, p.width),
    mask: asMask({ ...maskImage, data: checkSize(mask, maskImage, p.height, p.width) }),
    densepose: checkSize(densepose, readImage(densepose), p.height, p.width),
    lossMask: new Uint8Array(p.height * p.width),
  };
}

/** Generates one try-on / pose-transfer result and writes it (plus a sheet with the inputs). */
export async function generate(args: {
  task: LeffaTask;
  ckpt: string;
  input: LeffaExample;
  out: string;
  steps: number;
  seed: number;
  guidance: number;
}): Promise<void> {
  const model = await loadLeffa(args.ckpt);
  const e = args.input;
  const batch = toBatch([e]);
  const progress = new Progress(args.task, args.steps);
  const y = await leffaSample(
    model,
    { image: batch.source, reference: batch.reference, mask: batch.mask, densepose: batch.densepose },
    {
      steps: args.steps,
      guidanceScale: args.guidance,
      refAcceleration: true,
      generator: new T.Generator(args.seed),
      onStep: (i) => progress.update(i),
    },
  );
  progress.stop();
  const [img] = await tensorToImages(y);
  await mkdir(args.out.replace(/\/[^/]*$/, '') || '.', { recursive: true });
  await writePng(args.out, { width: e.width, height: e.height, data: img! });
  await writePng(
    args.out.replace(/\.png$/i, '') + '-sheet.png',
    tile([[e.source, e.reference, e.densepose, img!]], e.width, e.height),
  );
  console.log(`wrote ${args.out}`);
}

/** Metrics of a checkpoint on held-out synthetic examples, averaged over noise seeds with their spread. */
export async function evaluate(args: {
  task: LeffaTask;
  ckpt: string;
  examples: number;
  seeds: number[];
  out?: string;
  steps: number;
  /** Classifier-free guidance scale. */
  guidance: number;
}): Promise<SeedAveragedEval> {
  const model = await loadLeffa(args.ckpt);
  const examples = Array.from({ length: args.examples }, (_, i) =>
    exampleFromSample(
      args.task,
      generateSample({ seed: HELD_OUT_SEED + i, height: 128, width: 96, poseTransfer: args.task === 'pose' }),
    ),
  );
  const progress = new Progress('eval', args.steps * args.seeds.length);
  const { summary, images } = await evaluateLeffaSeeds(model, examples, {
    steps: args.steps,
    seeds: args.seeds,
    guidanceScale: args.guidance,
    onStep: (s) => progress.update(s),
  });
  progress.stop();
  console.log(formatSeedAveraged(summary));
  if (args.out) {
    await mkdir(args.out, { recursive: true });
    await writeFile(
      `${args.out}/metrics.json`,
      `${JSON.stringify({ task: args.task, checkpoint: args.ckpt, steps: args.steps, guidance: args.guidance, ...summary }, null, 2)}\n`,
    );
    // Rows: person (ground truth), reference, the generated image of every seed, the reference warped by the first seed's flow.
    const rows = examples.map((e, i) => [
      e.source,
      e.reference,
      ...images.map((im) => im.generated[i]!),
      images[0]!.warped[i]!,
    ]);
    await writePng(`${args.out}/samples.png`, tile(rows, 96, 128));
  }
  return summary;
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

export interface PhotoGenerateArgs {
  task: LeffaTask;
  /** Try-on: the person photo, or a folder of them (batch); pose transfer: the target-pose photo (or folder). */
  person: string;
  /** Try-on: the garment photo; pose transfer: the source person photo. */
  reference?: string;
  ckpt: string;
  openpose: string;
  schp?: string;
  densepose?: string;
  category?: GarmentCategory;
  /** Model size [H, W]. */
  size: [number, number];
  /** Output PNG (single image) or folder (batch; a trailing .png is dropped). */
  out: string;
  steps: number;
  seed: number;
  guidance: number;
  repaint?: boolean;
  /** Stop with a PhotoCheckError when the preprocessing fails its checks (default true). */
  checks?: boolean;
}

/** The hint of a failed check when the preprocessing networks are not (all) the shipped ones. */
const OWN_PARSERS_HINT =
  "Look at the preprocessing networks given (--openpose, --schp, --densepose-ckpt), or run Leffa's released weights (`--ckpts <folder>`; see the pipelines README).";

/**
 * tryon / pose-transfer on photos: runs the preprocessing networks (OpenPose, SCHP for try-on, DensePose) and
 * Leffa, and writes the result (cropped to the person's aspect) and a debug sheet (person, reference, parsing,
 * skeleton, DensePose, mask, result). A folder as `person` processes every PNG/JPEG in it with one garment.
 */
export async function generateFromPhotos(args: PhotoGenerateArgs): Promise<string[]> {
  const tryon = args.task === 'tryon';
  const [personFlag, refFlag] = tryon ? ['--person', '--garment'] : ['--target-pose', '--source'];
  if (!args.reference) throw new Error(`photo ${tryon ? 'try-on' : 'pose transfer'} needs ${refFlag} <png|jpg>`);
  if (tryon && !args.schp) throw new Error('photo try-on needs an SCHP checkpoint (train-schp): pass --schp <dir>');
  if (!args.densepose)
    throw new Error('photo inputs need a DensePose checkpoint (train-densepose): pass --densepose-ckpt <dir>');
  if (!existsSync(args.person)) throw new Error(`${personFlag} '${args.person}' does not exist`);
  const batch = statSync(args.person).isDirectory();
  const files = batch
    ? readdirSync(args.person)
        .filter((f) => IMAGE_EXT.test(f))
        .sort()
        .map((f) => join(args.person, f))
    : [args.person];
  if (files.length === 0) throw new Error(`${personFlag} '${args.person}' holds no .png/.jpg/.jpeg images`);
  const outDir = batch ? args.out.replace(/\.png$/i, '') : dirname(args.out);
  const outFor = (file: string) => (batch ? join(outDir, `${basename(file, extname(file))}.png`) : args.out);
  // Decode everything before the slow model loads, so a bad file fails fast; photos are shrunk to the model size
  // while decoding (sharp when it is installed).
  const [height, width] = args.size;
  const read = (file: string) => readImageAsync(file, { exifOrientation: true, fit: { height, width } });
  const reference = await read(args.reference);
  // The shipped networks get the limits measured on them; other networks only the plain failures.
  const shipped = [args.openpose, args.densepose, ...(tryon ? [args.schp] : [])].every((c) =>
    c?.startsWith('shipped:'),
  );

  const leffa = await loadLeffa(args.ckpt);
  const models: PhotoModels = await loadPhotoModels({
    openpose: args.openpose,
    densepose: args.densepose,
    ...(tryon && args.schp ? { schp: args.schp } : {}),
  });
  await mkdir(outDir || '.', { recursive: true });
  const progress = new Progress(args.task, batch ? files.length : args.steps);
  const written: string[] = [];
  const failed: string[] = [];
  for (const [i, file] of files.entries()) {
    try {
      const person = await read(file);
      const r = await runPhotoPipeline(args.task, {
        person,
        reference,
        ...(args.category ? { category: args.category } : {}),
        models,
        size: args.size,
        strict: args.checks !== false,
        checkLimits: shipped ? SHIPPED_PHOTO_CHECK_LIMITS : PHOTO_CHECK_LIMITS,
        leffa,
        steps: args.steps,
        guidance: args.guidance,
        seed: args.seed,
        repaint: args.repaint === true,
        ...(batch ? {} : { onStep: (s: number) => progress.update(s) }),
      });
      for (const w of r.prepared.warnings) console.warn(`${file}: warning: ${w}`);
      const out = outFor(file);
      await writePng(out, r.result);
      await writePng(out.replace(/\.png$/i, '') + '-sheet.png', r.sheet);
      written.push(out);
    } catch (caught) {
      const e =
        caught instanceof PhotoCheckError && !shipped ? new PhotoCheckError(caught.problems, OWN_PARSERS_HINT) : caught;
      if (!batch) throw e;
      failed.push(`${file}: ${(e as Error).message}`);
    }
    if (batch) progress.update(i + 1);
  }
  progress.stop();
  console.log(
    batch
      ? `wrote ${written.length} results (and -sheet.png debug sheets) to ${outDir}/`
      : `wrote ${args.out} and its -sheet.png`,
  );
  if (failed.length) throw new Error(`${failed.length} of ${files.length} images failed:\n  ${failed.join('\n  ')}`);
  return written;
}
