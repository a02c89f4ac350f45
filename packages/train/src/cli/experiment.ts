import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { LeffaTask } from '../leffa/synthetic-source.js';
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
  evalExamples: number;
}

/**
 * The Leffa ablation: the same tiny model trained twice from the same seed and data, with and without the
 * Leffa loss, then both evaluated on the same held-out synthetic examples. Reports the attention-flow
 * end-point error (what the loss is meant to improve) and the image metrics, side by side.
 */
export async function experiment(args: ExperimentArgs): Promise<void> {
  if (!args.vae === !args.init) throw new Error('experiment: give exactly one of --vae (train both runs from scratch) or --init (fine-tune both from a Leffa checkpoint)');
  await mkdir(args.out, { recursive: true });
  const runs = { baseline: 'off', leffa: 'on' } as const;
  const results: Record<string, unknown> = {};
  for (const [name, leffa] of Object.entries(runs)) {
    await trainLeffa({
      task: args.task, out: `${args.out}/${name}`, steps: args.steps, batch: args.batch, height: args.height, width: args.width,
      lr: args.lr, seed: args.seed, leffa, finetuneAfter: 0, pool: args.pool, saveEvery: 100, sampleEvery: 0, evalExamples: args.evalExamples,
      ...(args.vae ? { vae: args.vae } : {}), ...(args.init ? { init: args.init } : {}), ...(args.leffaWeight !== undefined ? { leffaWeight: args.leffaWeight } : {}),
    });
    results[name] = JSON.parse(await readFile(`${args.out}/${name}/metrics.json`, 'utf8')).eval;
  }
  const row = (name: string) => {
    const m = results[name] as { meanFlowEpe: number; ssim: number; psnr: number; l1: number };
    return `| ${name} | ${m.meanFlowEpe.toFixed(2)} | ${m.ssim.toFixed(3)} | ${m.psnr.toFixed(2)} | ${m.l1.toFixed(4)} |`;
  };
  const table = ['| run | flow EPE (px) | SSIM | PSNR (dB) | L1 |', '| --- | ---: | ---: | ---: | ---: |', row('baseline'), row('leffa')].join('\n');
  await writeFile(`${args.out}/summary.md`, `${table}\n`);
  await writeFile(`${args.out}/summary.json`, `${JSON.stringify({ args, results }, null, 2)}\n`);
  console.log(table);
}
