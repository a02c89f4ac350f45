/**
 * tryon / pose-transfer --ckpts <folder>: Leffa's released checkpoints as app.py runs them (loadReleasedLeffa),
 * instead of this project's models. The options here only apply with --ckpts; the project's ones (--ckpt,
 * --openpose, ...) are refused next to it, as are options left at a default that app.py sets differently.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { readImage, writePng } from '@leffa-webgpu/data';
import {
  DENSEPOSE_CHART_HEAD,
  DENSEPOSE_RCNN_R50_FPN,
  type DensePoseHeadConfig,
  OPENPOSE_BODY,
  type OpenPoseConfig,
  type RCNNConfig,
  RESNET50_FPN,
} from '@leffa-webgpu/models';
import type { GarmentCategory } from '@leffa-webgpu/data/web';
import { type LoadReleasedLeffaOptions, loadReleasedLeffa, parseCategory } from '@leffa-webgpu/pipelines';
import { Progress } from './progress.js';

type Task = 'tryon' | 'pose';

/** app.py's leffa_predict defaults where they differ from the commands' own. */
const RELEASED_DEFAULTS = { steps: 50, seed: 42 } as const;

/** The --ckpts options of `tryon` (task 'tryon') or `pose-transfer` (task 'pose'). */
export function addReleasedOptions(cmd: Command, task: Task): Command {
  cmd
    .option(
      '--ckpts <folder>',
      "Leffa's released checkpoints (huggingface franciszzj/Leffa: virtual_tryon.pth, ..., densepose/), run as its app.py does",
    )
    .addOption(new Option('--ref-acceleration', '--ckpts: run the reference UNet once, at the middle step'))
    .addOption(new Option('--half', '--ckpts: Leffa in float16, as app.py (needs shader-f16)'))
    .addOption(
      new Option(
        '--low-memory',
        '--ckpts: only the Leffa part each sampling phase runs on the device, the others in host memory (the same image; slower)',
      ),
    )
    .addOption(
      new Option(
        '--vae-tiling <mode>',
        "--ckpts: tiled VAE (diffusers' enable_tiling): auto (only where the image does not fit the adapter in one piece), on or off",
      ).choices(['auto', 'on', 'off']),
    )
    .addOption(
      new Option(
        '--released-overrides <json>',
        '--ckpts with small test models: a JSON file with size [H, W] and the parts of openpose (OpenPoseConfig) and densepose ({config: {detector, head}, resize}) that differ from the released models',
      ),
    );
  if (task === 'tryon') {
    cmd
      .addOption(
        new Option(
          '--model-type <type>',
          '--ckpts: virtual_tryon.pth (viton_hd) or virtual_tryon_dc.pth (dress_code)',
        ).choices(['viton_hd', 'dress_code']),
      )
      .addOption(
        new Option(
          '--garment-type <type>',
          '--ckpts: upper_body, lower_body or dresses (default upper_body)',
        ).argParser(parseGarmentType),
      );
  }
  return cmd;
}

function parseGarmentType(v: string): GarmentCategory {
  try {
    return parseCategory(v);
  } catch {
    throw new InvalidArgumentError(`--garment-type must be upper_body, lower_body or dresses, got '${v}'`);
  }
}

/** Options of the project's own pipeline that have no meaning for the released one (refused when given). */
const PROJECT_ONLY: Record<Task, [string, string][]> = {
  tryon: [
    ['ckpt', '--ckpt'],
    ['openpose', '--openpose'],
    ['schp', '--schp'],
    ['denseposeCkpt', '--densepose-ckpt'],
    ['mask', '--mask'],
    ['densepose', '--densepose'],
    ['size', '--size'],
    ['category', '--category (use --garment-type)'],
  ],
  pose: [
    ['ckpt', '--ckpt'],
    ['openpose', '--openpose'],
    ['denseposeCkpt', '--densepose-ckpt'],
    ['densepose', '--densepose'],
    ['size', '--size'],
  ],
};
const RELEASED_ONLY: [string, string][] = [
  ['refAcceleration', '--ref-acceleration'],
  ['half', '--half'],
  ['lowMemory', '--low-memory'],
  ['vaeTiling', '--vae-tiling'],
  ['releasedOverrides', '--released-overrides'],
  ['modelType', '--model-type'],
  ['garmentType', '--garment-type'],
];

const given = (cmd: Command, key: string) =>
  cmd.getOptionValueSource(key) === 'cli' || cmd.getOptionValueSource(key) === 'env';

/** Refuses --ckpts-only options without --ckpts (call for every tryon / pose-transfer run). */
export function checkReleasedOptions(cmd: Command, o: Record<string, unknown>): void {
  if (o.ckpts !== undefined) return;
  const stray = RELEASED_ONLY.filter(([key]) => given(cmd, key)).map(([, flag]) => flag);
  if (stray.length)
    throw new Error(`${stray.join(', ')} only apply with --ckpts <folder> (Leffa's released checkpoints)`);
}

function readOverrides(path: string): Pick<LoadReleasedLeffaOptions, 'size' | 'openposeConfig' | 'densepose'> {
  let json: { size?: unknown; openpose?: unknown; densepose?: unknown };
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as typeof json;
  } catch (e) {
    throw new Error(`--released-overrides '${path}': ${(e as Error).message}`);
  }
  const unknown = Object.keys(json).filter((k) => !['size', 'openpose', 'densepose'].includes(k));
  if (unknown.length)
    throw new Error(`--released-overrides '${path}': unknown key(s) ${unknown.join(', ')} (size, openpose, densepose)`);
  const size = json.size;
  if (
    size !== undefined &&
    !(Array.isArray(size) && size.length === 2 && size.every((v) => Number.isInteger(v) && v > 0))
  ) {
    throw new Error(`--released-overrides '${path}': size must be [height, width], got ${JSON.stringify(size)}`);
  }
  // Each part is merged onto the released model's settings, so a file names only what differs.
  type Part = Record<string, unknown> | undefined;
  const op = json.openpose as Part;
  const dp = json.densepose as
    | {
        config?: { detector?: Part & { backbone?: Part }; head?: Part };
        resize?: { shortEdge: number; maxSize: number };
      }
    | undefined;
  const detector = dp?.config?.detector;
  return {
    ...(size ? { size: size as [number, number] } : {}),
    ...(op ? { openposeConfig: { ...OPENPOSE_BODY, ...op } as OpenPoseConfig } : {}),
    ...(dp
      ? {
          densepose: {
            config: {
              detector: {
                ...DENSEPOSE_RCNN_R50_FPN,
                ...detector,
                backbone: { ...RESNET50_FPN, ...detector?.backbone },
              } as RCNNConfig,
              head: { ...DENSEPOSE_CHART_HEAD, ...dp.config?.head } as DensePoseHeadConfig,
            },
            ...(dp.resize ? { resize: dp.resize } : {}),
          },
        }
      : {}),
  };
}

/**
 * Runs the released pipeline for `tryon` (--person, --garment) or `pose-transfer` (--target-pose, --source) and
 * writes the image to --out, app.py's mask and densepose next to it (-mask.png, -densepose.png).
 */
export async function generateReleased(cmd: Command, o: Record<string, unknown>, task: Task): Promise<string> {
  const conflicting = PROJECT_ONLY[task].filter(([key]) => given(cmd, key)).map(([, flag]) => flag);
  if (conflicting.length)
    throw new Error(
      `--ckpts runs Leffa's released models; ${conflicting.join(', ')} belong to this project's models and cannot be combined with it`,
    );
  const tryon = task === 'tryon';
  const [personFlag, refFlag] = tryon ? ['--person', '--garment'] : ['--target-pose', '--source'];
  const personPath = String(tryon ? o.person : o.targetPose);
  const refPath = (tryon ? o.garment : o.source) as string | undefined;
  if (/^synthetic:/.test(personPath))
    throw new Error(`--ckpts takes photos; ${personFlag} ${personPath} is a synthetic example`);
  if (existsSync(personPath) && statSync(personPath).isDirectory())
    throw new Error(`--ckpts runs one image at a time; ${personFlag} '${personPath}' is a folder`);
  if (!refPath) throw new Error(`--ckpts needs ${refFlag} <png|jpg>`);
  if (!tryon && o.repaint) throw new Error('--repaint is a try-on option (app.py repaints try-on results only)');
  const steps = given(cmd, 'steps') ? (o.steps as number) : RELEASED_DEFAULTS.steps;
  const seed = given(cmd, 'seed') ? (o.seed as number) : RELEASED_DEFAULTS.seed;
  const out = String(o.out);
  // Decode both images before the models load, so a bad file fails fast.
  const person = readImage(personPath, { exifOrientation: true });
  const reference = readImage(refPath, { exifOrientation: true });
  const model = tryon ? ((o.modelType as 'viton_hd' | 'dress_code' | undefined) ?? 'viton_hd') : 'pose_transfer';
  const leffa = await loadReleasedLeffa(String(o.ckpts), {
    model,
    half: o.half === true,
    ...(o.releasedOverrides ? readOverrides(String(o.releasedOverrides)) : {}),
  });
  const progress = new Progress(task, steps);
  const run = {
    steps,
    seed,
    guidance: o.guidance as number,
    refAcceleration: o.refAcceleration === true,
    lowMemory: o.lowMemory === true,
    ...(o.vaeTiling === 'on' || o.vaeTiling === 'off' ? { vaeTiling: o.vaeTiling === 'on' } : {}),
    onStep: (s: number) => progress.update(s),
  };
  const garmentType = (o.garmentType as GarmentCategory | undefined) ?? 'upper_body';
  const prepared = await leffa.prepare(person, reference, garmentType);
  // Only Leffa is needed from here on: the preprocessing models leave the device before it loads.
  await leffa.releasePreprocessing();
  const image = await leffa.generate(prepared, { ...run, repaint: tryon && o.repaint === true });
  await leffa.dispose();
  const r = { prepared, image };
  progress.stop();
  for (const w of r.prepared.warnings) console.warn(`warning: ${w}`);
  await mkdir(dirname(out) || '.', { recursive: true });
  const [height, width] = leffa.size;
  const stem = out.replace(/\.png$/i, '');
  await writePng(out, r.image);
  await writePng(`${stem}-mask.png`, {
    width,
    height,
    data: Uint8Array.from({ length: width * height * 3 }, (_, i) => r.prepared.mask[Math.floor(i / 3)]!),
  });
  await writePng(`${stem}-densepose.png`, r.prepared.densepose);
  console.log(`wrote ${out} (and ${stem}-mask.png, ${stem}-densepose.png)`);
  return out;
}
