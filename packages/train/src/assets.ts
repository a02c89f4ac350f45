import { existsSync, readFileSync } from 'node:fs';
import { LEFFA_CONFIGS, type LeffaConfig } from '@leffa-webgpu/models';
import { fileURLToPath } from 'node:url';

/**
 * Folder of the checkpoints shipped with the package (tiny models trained here on synthetic data). Works from
 * the TypeScript sources (src/...) and from the build (dist/...).
 */
export function assetsDir(): string {
  for (const rel of ['../assets/', '../../assets/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Error('leffa: the package assets folder (shipped checkpoints) was not found');
}

export const shippedCheckpoint = (name: 'leffa-tiny-tryon' | 'leffa-tiny-pose' | 'openpose-small' | 'schp-small') => `${assetsDir()}${name}`;

/** A checkpoint folder, with `shipped:NAME` naming one of the package's shipped checkpoints. */
export function resolveCheckpoint(ckpt: string): string {
  const m = /^shipped:(.+)$/.exec(ckpt);
  if (!m) return ckpt;
  const dir = shippedCheckpoint(m[1] as Parameters<typeof shippedCheckpoint>[0]);
  if (!existsSync(`${dir}/state.json`)) {
    throw new Error(`${ckpt}: this package ships no such checkpoint (looked in ${dir}); train one (see packages/train/README.md) and pass its folder instead`);
  }
  return dir;
}

/**
 * The Leffa architecture a checkpoint folder was written with (training runs keep it in their options,
 * exports as `config`); checkpoints that do not say are the tiny config.
 */
export function leffaConfigOf(dir: string): LeffaConfig {
  const state = JSON.parse(readFileSync(`${dir}/state.json`, 'utf8')) as { extra?: { config?: LeffaConfig; options?: { config?: LeffaConfig } } };
  return state.extra?.config ?? state.extra?.options?.config ?? LEFFA_CONFIGS.tiny;
}
