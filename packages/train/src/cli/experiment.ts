import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { LeffaTask } from '@leffa-webgpu/data';
import { trainLeffa } from './train-leffa.js';

export interface ExperimentArgs {
  task: LeffaTask;
  out: string;
  steps: number;
  batch: number;
  height: number;
  width: number;
  pool: number;
  seed: number;
  /** A trained VAE checkpoint (both runs start from scratch), or */
  vae?: string;
  /** a Leffa checkpoint both runs fine-tune from. */
  init?: string;
  lr: number;
  /** lambda of the Leffa run (default 1e-3). */
  leffaWeight?: number;
  /** The Leffa run's distance and averaging (defaults: Leffa's released training code). */
  leffaDistance?: 'l2' | 'smoothL1';
  leffaNormalization?: 'released' | 'maskArea';
  /**
   * Steps of supervised attention-flow training (flowSupervisionLoss, Leffa loss off) before the two runs, which
   * both start from its checkpoint (default 0: none). Stands in for the paper's pretrained Stable Diffusion,
   * whose attention already roughly corresponds; the tiny models here start from nearly uniform attention.
   */
  flowWarmup?: number;
  /** Learning rate of the warm-up (default `lr`). */
  warmupLr?: number;
  evalExamples: number;
}

/**
 * The Leffa ablation: the same tiny model trained twice from the same seed and data, with and without the
 * Leffa loss, then both evaluated on the same held-out synthetic examples. Reports the attention-flow
 * end-point error (what the loss is meant to improve) and the image metrics, side by side.
 */
export async function experiment(args: ExperimentArgs): Promise<void> {
  if (!args.vae === !args.init)
    throw new Error(
      'experiment: give exactly one of --vae (train both runs from scratch) or --init (fine-tune both from a Leffa checkpoint)',
    );
  await mkdir(args.out, { recursive: true });
  const common = {
    task: args.task,
    batch: args.batch,
    height: args.height,
    width: args.width,
    seed: args.seed,
    finetuneAfter: 0,
    pool: args.pool,
    saveEvery: 100,
    sampleEvery: 0,
    evalExamples: args.evalExamples,
  };
  const results: Record<string, unknown> = {};
  const metricsOf = async (name: string) =>
    (results[name] = JSON.parse(await readFile(`${args.out}/${name}/metrics.json`, 'utf8')).eval);
  let start = args.vae ? { vae: args.vae } : { init: args.init! };
  if (args.flowWarmup) {
    await trainLeffa({
      ...common,
      ...start,
      out: `${args.out}/warmup`,
      steps: args.flowWarmup,
      lr: args.warmupLr ?? args.lr,
      leffa: 'off',
      flowSupervision: 1,
    });
    await metricsOf('warmup');
    start = { init: `${args.out}/warmup/checkpoint` };
  }
  const runs = { baseline: 'off', leffa: 'on' } as const;
  for (const [name, leffa] of Object.entries(runs)) {
    await trainLeffa({
      ...common,
      ...start,
      out: `${args.out}/${name}`,
      steps: args.steps,
      lr: args.lr,
      leffa,
      ...(args.leffaWeight !== undefined ? { leffaWeight: args.leffaWeight } : {}),
      ...(args.leffaDistance ? { leffaDistance: args.leffaDistance } : {}),
      ...(args.leffaNormalization ? { leffaNormalization: args.leffaNormalization } : {}),
    });
    await metricsOf(name);
  }
  const row = (name: string) => {
    const m = results[name] as { meanFlowEpe: number; ssim: number; psnr: number; l1: number };
    return `| ${name} | ${m.meanFlowEpe.toFixed(2)} | ${m.ssim.toFixed(3)} | ${m.psnr.toFixed(2)} | ${m.l1.toFixed(4)} |`;
  };
  const rows = [...(args.flowWarmup ? ['warmup'] : []), 'baseline', 'leffa'].map(row);
  const table = [
    '| run | flow EPE (px) | SSIM | PSNR (dB) | L1 |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
  await writeFile(`${args.out}/summary.md`, `${table}\n`);
  await writeFile(`${args.out}/summary.json`, `${JSON.stringify({ args, results }, null, 2)}\n`);
  console.log(table);
}
