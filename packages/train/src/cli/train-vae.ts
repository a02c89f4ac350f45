import { mkdir, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';
import { AutoencoderKL, decoderChannels, LEFFA_CONFIGS, type VaeConfig } from '@leffa-webgpu/models';
import { generateSample, imagesToNCHW, tensorToImages, tile, writePng } from '@leffa-webgpu/data';
import { VaeTrainer } from '../leffa/vae-trainer.js';
import { HELD_OUT_SEED } from '../leffa/evaluate.js';
import { type ReconstructionScores, reconstructionScores } from '../leffa/metrics.js';
import { lrScheduleFrom, type TrainingArgs } from './presets.js';
import { withRunLock } from './run-guard.js';
import { runTraining } from './training-loop.js';

export interface TrainVaeArgs extends TrainingArgs {
  /** Train on random crops of this size (the VAE is convolutional: crops teach it the same thing, cheaper). */
  crop?: [number, number];
  /** The VAE's shape (default: the tiny config's); a resumed run keeps its checkpoint's. */
  blockChannels?: number[];
  latentChannels?: number;
  /** Weight of the colour loss (VaeTrainOptions.chromaWeight); a resumed run keeps its checkpoint's. */
  chromaWeight?: number;
  /**
   * Start from a VAE checkpoint's weights, with a fresh optimizer and schedule from step 0 (a new run, unlike
   * --resume); its shape and colour weight are kept.
   */
  init?: string;
  /** The decoder's channels per level, when it should differ from the encoder's (VaeConfig.decoderBlockOutChannels). */
  decoderChannels?: number[];
  /** Train the decoder only (VaeTrainOptions.decoderOnly); needs --init or --resume. */
  decoderOnly?: boolean;
}

/** A crop of an HWC RGB image. */
function crop(img: Uint8Array, width: number, y0: number, x0: number, h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++)
    out.set(img.subarray(((y0 + y) * width + x0) * 3, ((y0 + y) * width + x0 + w) * 3), y * w * 3);
  return out;
}

/**
 * Trains the tiny VAE on synthetic people and flat garments (the two kinds of image Leffa encodes).
 * Writes checkpoints, reconstructions and a loss curve under `out` (holding its lock; a non-finite loss stops
 * the run, keeping the last good checkpoint: see run-guard.ts).
 */
export async function trainVae(args: TrainVaeArgs): Promise<void> {
  await withRunLock(args.out, 'train-vae', () => trainVaeLocked(args));
}

async function trainVaeLocked(args: TrainVaeArgs): Promise<void> {
  await T.init();
  await mkdir(args.out, { recursive: true });
  const start = args.resume ?? args.init;
  const opened = start ? await T.openCheckpoint(start) : null;
  const recordedExtra = opened?.extra as {
    config?: VaeConfig;
    chromaWeight?: number;
    decoderOnly?: boolean;
    cli?: { init?: string };
  } | null;
  // A resumed run that started from --init names it again in its recorded options; any other --init is a mistake.
  if (args.resume && args.init && recordedExtra?.cli?.init !== args.init)
    throw new Error('train-vae: give --resume (continue a run) or --init (start a new one from its weights), not both');
  const init = args.resume ? undefined : args.init;
  if (init && !(recordedExtra?.config && 'latentChannels' in recordedExtra.config))
    throw new Error(`train-vae: --init '${init}' records no VAE config: is it a train-vae checkpoint?`);
  if (args.decoderOnly && !start)
    throw new Error('train-vae: --decoder-only trains a decoder for an existing encoder: give --init (a trained VAE)');
  const recorded = recordedExtra?.config;
  const tiny = LEFFA_CONFIGS.tiny.vae;
  let config: VaeConfig = recorded ?? {
    ...tiny,
    ...(args.blockChannels ? { blockOutChannels: args.blockChannels } : {}),
    ...(args.latentChannels ? { latentChannels: args.latentChannels } : {}),
  };
  // A resumed run keeps its decoder; a new one may give the decoder its own channels.
  if (args.decoderChannels && !args.resume) config = { ...config, decoderBlockOutChannels: args.decoderChannels };
  const newDecoder = recorded !== undefined && decoderChannels(config).join() !== decoderChannels(recorded).join();
  const chromaWeight = recordedExtra?.chromaWeight ?? args.chromaWeight ?? 0;
  const decoderOnly = args.resume ? (recordedExtra?.decoderOnly ?? false) : (args.decoderOnly ?? false);
  const trainer = new VaeTrainer({ config, seed: args.seed, lr: args.lr, chromaWeight, decoderOnly });
  if (init && newDecoder) {
    await loadAllButDecoder(opened!, recorded!, trainer.vae);
    console.log(`train-vae: encoder from ${init}, a new decoder [${decoderChannels(config)}] (a new run: step 0)`);
  } else if (init) {
    await opened!.load({ model: trainer.vae });
    console.log(`train-vae: weights from ${init} (a new run: fresh optimizer, step 0)`);
  }
  const schedule = lrScheduleFrom(args);
  const images = (seed: number) => {
    const s = generateSample({ seed, height: args.height, width: args.width });
    return [s.person.image, s.garment];
  };
  const [ch, cw] = args.crop ?? [args.height, args.width];
  const pairs = Math.ceil(args.batch / 2);
  const { history } = await runTraining(args, {
    command: 'train-vae',
    trainer,
    logEvery: 10,
    step: () => {
      // Each step draws `pairs` people with their garments; the step number fixes their seeds, so a resumed run sees the same images.
      const first = args.seed * 1_000_003 + trainer.stepCount * pairs;
      const full = Array.from({ length: pairs }, (_, i) => images(first + i))
        .flat()
        .slice(0, args.batch);
      // Crop offsets come from the image seed, so a resumed run sees the same crops.
      const seed = first + pairs;
      const batch = full.map((img, i) =>
        crop(
          img,
          args.width,
          (seed * 7 + i * 13) % (args.height - ch + 1),
          (seed * 11 + i * 5) % (args.width - cw + 1),
          ch,
          cw,
        ),
      );
      trainer.optimizer.lr = schedule(trainer.stepCount);
      return trainer.step(batch, ch, cw);
    },
    read: async (l) => {
      const [reconstruction, kl] = await Promise.all([l.reconstruction.item(), l.kl.item()]);
      return { reconstruction: reconstruction!, kl: kl! };
    },
    progress: { fields: ['loss', 'kl'], show: (e) => ({ loss: e.reconstruction!, kl: e.kl! }) },
    series: [['reconstruction', 'reconstruction']],
    legacyName: 'reconstruction',
  });
  // Held-out people and garments (seeds outside the training stream): reconstructions and their scores.
  const held = Array.from({ length: 12 }, (_, i) => images(HELD_OUT_SEED + i));
  const people = held.map((h) => h[0]!);
  const garments = held.map((h) => h[1]!);
  const [peopleRecon, garmentRecon] = [
    await reconstruct(trainer, people, args.height, args.width),
    await reconstruct(trainer, garments, args.height, args.width),
  ];
  const metrics = {
    people: reconstructionScores(people, peopleRecon),
    garments: reconstructionScores(garments, garmentRecon),
  };
  await writePng(
    `${args.out}/reconstructions.png`,
    tile(
      [people.slice(0, 6), peopleRecon.slice(0, 6), garments.slice(0, 6), garmentRecon.slice(0, 6)],
      args.width,
      args.height,
    ),
  );
  await writeFile(
    `${args.out}/metrics.json`,
    `${JSON.stringify({ steps: trainer.stepCount, config, reconstructionLoss: history.at(-1)?.reconstruction, heldOut: metrics }, null, 2)}\n`,
  );
  const line = (name: string, m: ReconstructionScores) =>
    `${name} PSNR ${m.psnr.mean.toFixed(2)} dB (std ${m.psnr.std.toFixed(2)}), colour kept ${(100 * m.colourKept).toFixed(0)}%`;
  console.log(`held-out (12 each): ${line('people', metrics.people)}; ${line('garments', metrics.garments)}`);
}

/** Loads a VAE checkpoint into `vae` except its decoder, whose shape differs (the decoder starts fresh). */
async function loadAllButDecoder(opened: T.OpenedCheckpoint, recorded: VaeConfig, vae: AutoencoderKL): Promise<void> {
  const source = new AutoencoderKL(recorded);
  await opened.load({ model: source });
  const kept = new Map([...source.stateDict()].filter(([k]) => !k.startsWith('decoder.')));
  const report = vae.loadStateDict(kept, { strict: false });
  const problems = [...report.unexpected, ...report.mismatched.map((m) => m.key)];
  const notDecoder = report.missing.filter((k) => !k.startsWith('decoder.'));
  if (problems.length + notDecoder.length > 0)
    throw new Error(
      `train-vae: the encoder of ${opened.source} does not fit: ${[...problems, ...notDecoder].join(', ')}`,
    );
  T.dispose(source.parameters());
}

/** Posterior-mean reconstructions of HWC images, a few at a time. */
async function reconstruct(
  trainer: VaeTrainer,
  imgs: Uint8Array[],
  height: number,
  width: number,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < imgs.length; i += 4) {
    const part = imgs.slice(i, i + 4);
    out.push(
      ...(await T.noGrad(async () => {
        const x = T.tensor(imagesToNCHW(part, height, width), [part.length, 3, height, width]);
        const y = trainer.vae.decode(trainer.vae.encode(x).mode());
        const decoded = await tensorToImages(y);
        T.dispose([x, y]);
        return decoded;
      })),
    );
  }
  return out;
}
