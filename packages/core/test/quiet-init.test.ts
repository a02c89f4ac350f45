// A library process (import core, init, run an op, read back) writes nothing to stderr except the two lines Dawn
// itself prints while it enumerates adapters on drivers reporting unbounded dynamic buffers (lavapipe, RADV):
// they come from requestAdapter, before any device or limit is requested, so no request of ours can avoid them.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DAWN_LIMIT_CLAMP_WARNING } from '../../train/src/cli/dawn-stderr.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('init() in a library process', () => {
  it('prints nothing of its own on stderr', () => {
    const script = `
      const T = await import('./packages/core/src/index.ts');
      await T.init();
      const a = T.tensor([1, 2, 3], [3]);
      const b = T.matmul(a.reshape([1, 3]), a.reshape([3, 1]));
      console.log(JSON.stringify(Array.from(await b.data())));
    `;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe('[14]');
    const own = run.stderr.split('\n').filter((line) => line !== '' && !DAWN_LIMIT_CLAMP_WARNING.test(line));
    expect(own).toEqual([]);
  }, 60_000);
});
