import * as T from '@leffa-webgpu/core';
import { beforeEach } from 'vitest';

/**
 * Forces kernel variants for a whole test run (scripts/gpu-check.sh runs the suites once per variant):
 * LEFFA_FORCE_KERNELS="matmul=tiled,conv=register,convAlgorithm=winograd,convLoads=scalar,sort=workgroup,rowLanes=64" (any subset). Applied
 * before every test, so a test that picks a variant in beforeAll runs the forced one instead; a test that
 * picks one inside its body still gets its own. Unset: nothing is forced.
 */
const SETTERS: Record<string, { values: readonly string[]; set: (v: string) => void }> = {
  matmul: { values: ['broadcast', 'tiled', 'register'], set: (v) => T.setMatmulVariant(v as T.MatmulVariant) },
  conv: { values: ['register', 'broadcast'], set: (v) => T.setConvVariant(v as T.ConvVariant) },
  convAlgorithm: {
    values: ['direct', 'winograd', 'winograd4', 'sliding'],
    set: (v) => T.setConvAlgorithm(v as T.ConvAlgorithm),
  },
  convLoads: { values: ['vector', 'scalar'], set: (v) => T.setConvVectorLoads(v === 'vector') },
  sort: { values: ['fused', 'workgroup'], set: (v) => T.setSortSchedule(v as T.SortSchedule) },
  rowLanes: { values: ['8', '64'], set: (v) => T.setRowLanes(Number(v) as 8 | 64) },
};

const spec = process.env.LEFFA_FORCE_KERNELS?.trim();
if (spec) {
  const forced = spec.split(',').map((entry) => {
    const [kind, value] = entry.split('=').map((s) => s.trim()) as [string, string | undefined];
    const setter = SETTERS[kind];
    if (!setter || !value || !setter.values.includes(value)) {
      throw new Error(
        `LEFFA_FORCE_KERNELS: '${entry}' is not one of ${Object.entries(SETTERS)
          .map(([k, s]) => `${k}=${s.values.join('|')}`)
          .join(', ')}`,
      );
    }
    return () => setter.set(value);
  });
  beforeEach(() => {
    for (const apply of forced) apply();
  });
}
