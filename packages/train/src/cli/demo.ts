import { mkdir, writeFile } from 'node:fs/promises';
import * as T from '@leffa-webgpu/core';
import { type LeffaTask, maskToImage, syntheticExample, tile, writePng } from '@leffa-webgpu/data';
import { HELD_OUT_SEED, type SeedAveragedEval, evaluateLeffaSeeds, formatSeedAveraged } from '../leffa/evaluate.js';
import { loadLeffa } from '@leffa-webgpu/pipelines';
import { Progress } from './progress.js';
import { trainLeffa } from './train-leffa.js';

export interface DemoArgs {
  task: LeffaTask;
  /** The shipped (or any) Leffa checkpoint the demo starts from. */
  init: string;
  out: string;
  steps: number;
  /** Fine-tuning learning rate (default 5e-5). */
  lr?: number;
  /** Held-out people and noise seeds of the before/after evaluation. */
  examples?: number;
  seeds?: number[];
  /** Sampling steps of each evaluation (default 20, as Leffa's released pipeline samples). */
  sampleSteps?: number;
}

/**
 * The losses each shipped model was last trained with (packages/train/README.md), so that the demo's short fine-tune
 * continues its recipe rather than switching to another. Both also use the reference mass loss and Min-SNR-gamma 5.
 */
const LAST_RECIPE: Record<LeffaTask, { flowSupervision: number; referenceReadout: number; maskWeight: number }> = {
  tryon: { flowSupervision: 3, referenceReadout: 0.5, maskWeight: 4 },
  pose: { flowSupervision: 1, referenceReadout: 4, maskWeight: 1 },
};

export interface DemoResult {
  before: SeedAveragedEval;
  after: SeedAveragedEval;
  /** Which weights the demo ends with: the fine-tuned ones only when they are not worse on held-out people. */
  kept: 'fine-tuned' | 'start';
  /** The checkpoint holding the kept weights. */
  checkpoint: string;
}

/**
 * The main job: evaluates the starting model on held-out synthetic people over several noise seeds, fine-tunes
 * it briefly, evaluates again on the same people and seeds, and keeps whichever is better by mean SSIM, so the
 * demo never ends worse than it started. Writes before-after.png (person, garment, mask, before, after, first
 * seed) and demo.json beside the training run's outputs.
 */
export async function demo(args: DemoArgs): Promise<DemoResult> {
  await T.init();
  await mkdir(args.out, { recursive: true });
  const seeds = args.seeds ?? [0, 1, 2];
  const steps = args.sampleSteps ?? 20;
  const [height, width] = [128, 96];
  const held = Array.from({ length: args.examples ?? 6 }, (_, i) =>
    syntheticExample(args.task, HELD_OUT_SEED + i, height, width),
  );
  const evaluate = async (ckpt: string) => {
    const model = await loadLeffa(ckpt);
    try {
      const progress = new Progress('eval', steps * seeds.length);
      const result = await evaluateLeffaSeeds(model, held, { steps, seeds, onStep: (s) => progress.update(s) });
      progress.stop();
      return result;
    } finally {
      model.dispose();
    }
  };

  console.log(`demo: evaluating ${args.init} on ${held.length} held-out people x ${seeds.length} noise seeds`);
  const before = await evaluate(args.init);
  await trainLeffa({
    task: args.task,
    out: args.out,
    steps: args.steps,
    batch: 4,
    height,
    width,
    lr: args.lr ?? 5e-5,
    seed: 7,
    leffa: 'on',
    finetuneAfter: 0,
    pool: 64,
    init: args.init,
    saveEvery: 1_000_000,
    sampleEvery: 0,
    evalExamples: 4,
    ...LAST_RECIPE[args.task],
    referenceMass: 1,
    snrGamma: 5,
  });
  const tunedCheckpoint = `${args.out}/checkpoint`;
  const after = await evaluate(tunedCheckpoint);

  const kept = after.summary.ssim.mean >= before.summary.ssim.mean ? 'fine-tuned' : 'start';
  const checkpoint = kept === 'fine-tuned' ? tunedCheckpoint : args.init;
  const rows = held.map((e, i) => [
    e.source,
    e.reference,
    maskToImage(e.mask),
    before.images[0]!.generated[i]!,
    after.images[0]!.generated[i]!,
  ]);
  await writePng(`${args.out}/before-after.png`, tile(rows, width, height));
  const result: DemoResult = { before: before.summary, after: after.summary, kept, checkpoint };
  await writeFile(`${args.out}/demo.json`, `${JSON.stringify(result, null, 2)}\n`);

  const line = (name: string, s: SeedAveragedEval) =>
    `| ${name} | ${s.ssim.mean.toFixed(3)} +- ${s.ssim.seedStd.toFixed(3)} | ${s.psnr.mean.toFixed(2)} | ${s.meanFlowEpe.mean.toFixed(2)} |`;
  console.log(formatSeedAveraged(after.summary));
  console.log(
    [
      '',
      '| model | SSIM (mean +- std over seeds) | PSNR (dB) | flow EPE (px) |',
      '| --- | ---: | ---: | ---: |',
      line('start', before.summary),
      line(`fine-tuned ${args.steps} steps`, after.summary),
    ].join('\n'),
  );
  console.log(
    kept === 'fine-tuned'
      ? `demo: kept the fine-tuned weights (${checkpoint}); before/after images in ${args.out}/before-after.png`
      : `demo: the fine-tune did not beat the start on held-out people, so the demo keeps ${args.init}; before/after images in ${args.out}/before-after.png`,
  );
  return result;
}
