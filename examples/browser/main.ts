/// <reference types="vite/client" />
/**
 * Browser try-on: the same photo pipeline as the `tryon` command (OpenPose, SCHP, DensePose, agnostic mask,
 * Leffa sampling), with weights fetched from the shipped checkpoints that Vite serves as static files.
 */
import * as T from '@leffa-webgpu/core';
import {
  type GarmentCategory,
  type PhotoModels,
  type RgbImage,
  SHIPPED_PHOTO_CHECK_LIMITS,
  leffaFrom,
  photoModelsFrom,
  runPhotoPipeline,
} from '@leffa-webgpu/pipelines/web';
import type { LeffaModel } from '@leffa-webgpu/models';

const $ = <E extends HTMLElement>(id: string) => document.getElementById(id) as E;
const status = $<HTMLParagraphElement>('status');
const progress = $<HTMLProgressElement>('progress');
const button = $<HTMLButtonElement>('run');

/** Model size of the tiny try-on weights. */
const SIZE: [number, number] = [128, 96];

function setStatus(state: 'idle' | 'busy' | 'done' | 'error', text: string): void {
  status.dataset.state = state;
  status.textContent = text;
}

/** A photo as RGB bytes, EXIF orientation applied, transparency composited over white. */
async function decodeImage(file: File): Promise<RgbImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    throw new Error(`'${file.name}' is not an image this browser can decode (use PNG or JPEG)`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, bitmap.width, bitmap.height);
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const data = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) data.set(rgba.subarray(i, i + 3), j);
  return { width: bitmap.width, height: bitmap.height, data };
}

function draw(canvas: HTMLCanvasElement, image: RgbImage): void {
  canvas.width = image.width;
  canvas.height = image.height;
  const rgba = new ImageData(image.width, image.height);
  for (let i = 0, j = 0; j < image.data.length; i += 4, j += 3) {
    rgba.data.set(image.data.subarray(j, j + 3), i);
    rgba.data[i + 3] = 255;
  }
  canvas.getContext('2d')!.putImageData(rgba, 0, 0);
}

let models: Promise<{ photo: PhotoModels; leffa: LeffaModel }> | undefined;

/** Fetches the four checkpoints once (about 30 MB) and builds the networks on the GPU. */
function loadModels(): Promise<{ photo: PhotoModels; leffa: LeffaModel }> {
  const url = (name: string) => new URL(`${import.meta.env.BASE_URL}${name}`, location.href).href;
  models ??= (async () => {
    await T.init();
    const [openpose, schp, densepose, leffa] = await Promise.all(
      ['openpose-small', 'schp-small', 'densepose-small', 'leffa-tiny-tryon'].map((name) =>
        T.openCheckpointUrl(url(name)),
      ),
    );
    return {
      photo: await photoModelsFrom({ openpose: openpose!, schp: schp!, densepose: densepose! }),
      leffa: await leffaFrom(leffa!),
    };
  })();
  models.catch(() => (models = undefined));
  return models;
}

async function run(): Promise<void> {
  const person = $<HTMLInputElement>('person').files?.[0];
  const garment = $<HTMLInputElement>('garment').files?.[0];
  if (!person || !garment) throw new Error('choose a person photo and a garment photo');
  const steps = Number($<HTMLInputElement>('steps').value);
  const seed = Number($<HTMLInputElement>('seed').value);
  if (!(Number.isInteger(steps) && steps >= 1))
    throw new Error(`sampling steps must be a positive integer, got '${$<HTMLInputElement>('steps').value}'`);
  progress.max = steps + 1;
  progress.value = 0;
  setStatus('busy', 'Loading the weights...');
  const { photo, leffa } = await loadModels();
  setStatus('busy', 'Reading the photos...');
  const [personImage, garmentImage] = await Promise.all([decodeImage(person), decodeImage(garment)]);
  setStatus('busy', 'Parsing, pose and DensePose...');
  const started = performance.now();
  const out = await runPhotoPipeline('tryon', {
    person: personImage,
    reference: garmentImage,
    category: $<HTMLSelectElement>('category').value as GarmentCategory,
    models: photo,
    size: SIZE,
    // The page runs the shipped networks: their checks say when a photo is outside what they learned.
    checkLimits: SHIPPED_PHOTO_CHECK_LIMITS,
    leffa,
    steps,
    seed,
    repaint: $<HTMLInputElement>('repaint').checked,
    onStep: (step, total) => {
      progress.value = 1 + step;
      setStatus('busy', `Sampling: step ${step} of ${total}`);
    },
  });
  progress.value = progress.max;
  draw($<HTMLCanvasElement>('result'), out.result);
  draw($<HTMLCanvasElement>('sheet'), out.sheet);
  const warnings = out.prepared.warnings.length ? ` Warnings: ${out.prepared.warnings.join('; ')}.` : '';
  const problems = out.prepared.problems.length
    ? ` The preprocessing failed its checks (${out.prepared.problems.join('; ')}): the shipped networks learned only synthetic people, expect a poor result on real photos.`
    : '';
  setStatus('done', `Done in ${((performance.now() - started) / 1000).toFixed(1)} s.${warnings}${problems}`);
}

$<HTMLFormElement>('form').addEventListener('submit', (event) => {
  event.preventDefault();
  button.disabled = true;
  run()
    .catch((e: unknown) => setStatus('error', `Error: ${e instanceof Error ? e.message : String(e)}`))
    .finally(() => (button.disabled = false));
});
