import { existsSync } from 'node:fs';
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

export const shippedCheckpoint = (
  name: 'leffa-tiny-tryon' | 'leffa-tiny-pose' | 'openpose-small' | 'schp-small' | 'densepose-small',
) => `${assetsDir()}${name}`;

/** A checkpoint folder, with `shipped:NAME` naming one of the package's shipped checkpoints. */
export function resolveCheckpoint(ckpt: string): string {
  const m = /^shipped:(.+)$/.exec(ckpt);
  if (!m) return ckpt;
  const dir = shippedCheckpoint(m[1] as Parameters<typeof shippedCheckpoint>[0]);
  if (!existsSync(`${dir}/state.json`)) {
    throw new Error(
      `${ckpt}: this package ships no such checkpoint (looked in ${dir}); train one (see packages/train/README.md) and pass its folder instead`,
    );
  }
  return dir;
}
