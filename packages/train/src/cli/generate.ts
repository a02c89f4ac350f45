import { mkdir, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';
import { LeffaModel, leffaSample } from '@leffa-webgpu/models';
import { generateSample } from '../data/synthetic/sample.js';
import { tile } from '../data/synthetic/sheet.js';
import { tensorToImages } from '../io/images.js';
import { readImage } from '../io/image-file.js';
import { type RgbImage, writePng } from '../io/png.js';
import { type LeffaExample, toBatch } from '../leffa/batch.js';
import { evaluateLeffa } from '../leffa/evaluate.js';
import { type LeffaTask, exampleFromSample } from '../leffa/synthetic-source.js';
import { leffaConfigOf, resolveCheckpoint } from '../assets.js';
import { HELD_OUT_SEED } from '../leffa/evaluate.js';
import { Progress } from './progress.js';

/** Loads a Leffa checkpoint (in the architecture it was written with) for inference. */
export async function loadLeffa(ckpt: string): Promise<LeffaModel> {
  await T.init();
  const dir = resolveCheckpoint(ckpt);
  const model = new LeffaModel(leffaConfigOf(dir));
  await T.loadCheckpoint(dir, { model });
  return model.eval();
}

function checkSize(name: string, img: RgbImage, height: number, width: number): Uint8Array {
  if (img.height !== height || img.width !== width) {
    throw new Error(`${name}: image is ${img.width}x${img.height}, expected ${width}x${height} like the person image`);
  }
  return img.data;
}

const asMask = (img: RgbImage) => Uint8Array.from({ length: img.width * img.height }, (_, i) => (img.data[3 * i]! > 127 ? 1 : 0));

/**
 * Inputs of one generation. `synthetic:SEED` picks a generated example (with its own mask and DensePose);
 * otherwise person and reference are PNG files and the mask and DensePose renders must be given as PNGs
 * (from the preprocessing pipeline or a dataset).
 */
export async function loadInputs(task: LeffaTask, person: string, reference: string | undefined, mask?: string, densepose?: string): Promise<LeffaExample> {
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
    throw new Error('photo inputs need --garment/--source, --mask and --densepose images (PNG or JPEG) of the same size (or use --person synthetic:SEED)');
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
export async function generate(args: { task: LeffaTask; ckpt: string; input: LeffaExample; out: string; steps: number; seed: number; guidance: number }): Promise<void> {
  const model = await loadLeffa(args.ckpt);
  const e = args.input;
  const batch = toBatch([e]);
  const progress = new Progress(args.task, args.steps);
  const y = await leffaSample(
    model,
    { image: batch.source, reference: batch.reference, mask: batch.mask, densepose: batch.densepose },
    { steps: args.steps, sampler: 'ddim', guidanceScale: args.guidance, refAcceleration: true, generator: new T.Generator(args.seed), onStep: (i) => progress.update(i) },
  );
  progress.stop();
  const [img] = await tensorToImages(y);
  await mkdir(args.out.replace(/\/[^/]*$/, '') || '.', { recursive: true });
  await writePng(args.out, { width: e.width, height: e.height, data: img! });
  await writePng(args.out.replace(/\.png$/i, '') + '-sheet.png', tile([[e.source, e.reference, e.densepose, img!]], e.width, e.height));
  console.log(`wrote ${args.out}`);
}

/** Metrics of a checkpoint on held-out synthetic examples. */
export async function evaluate(args: { task: LeffaTask; ckpt: string; examples: number; out?: string; steps: number }): Promise<void> {
  const model = await loadLeffa(args.ckpt);
  const examples = Array.from({ length: args.examples }, (_, i) =>
    exampleFromSample(args.task, generateSample({ seed: HELD_OUT_SEED + i, height: 128, width: 96, poseTransfer: args.task === 'pose' })),
  );
  const { metrics, images } = await evaluateLeffa(model, examples, { steps: args.steps });
  const text = JSON.stringify({ task: args.task, checkpoint: args.ckpt, examples: args.examples, ...metrics }, null, 2);
  console.log(text);
  if (args.out) {
    await mkdir(args.out, { recursive: true });
    await writeFile(`${args.out}/metrics.json`, `${text}\n`);
    await writePng(`${args.out}/samples.png`, tile(examples.map((e, i) => [e.source, e.reference, images.generated[i]!, images.warped[i]!]), 96, 128));
  }
}
