import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DAWN_LIMIT_CLAMP_WARNING } from '../src/cli/dawn-stderr.js';

const repo = new URL('../../../', import.meta.url).pathname;
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
const tmp = mkdtempSync(join(tmpdir(), 'leffa-cli-stderr-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[], onSpawn?: (pid: number) => void) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => {
      const child = spawn(process.execPath, args, { cwd: repo, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
      onSpawn?.(child.pid!);
    },
  );
}

const cli = (...args: string[]) => ['--import', 'tsx', 'packages/train/src/cli/main.ts', ...args];

describe('CLI stderr', () => {
  it("the filter matches exactly Dawn's two clamp warnings", () => {
    for (const kind of ['Uniform', 'Storage']) {
      expect(
        DAWN_LIMIT_CLAMP_WARNING.test(
          `Warning: maxDynamic${kind}BuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.`,
        ),
      ).toBe(true);
    }
    expect(
      DAWN_LIMIT_CLAMP_WARNING.test(
        'Warning: maxBufferSize artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.',
      ),
    ).toBe(false);
    expect(
      DAWN_LIMIT_CLAMP_WARNING.test(
        'leffa: Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1 to 16 to fit dynamic offset allocation limit.',
      ),
    ).toBe(false);
  });

  it('a clean run prints nothing on stderr, though Dawn warns in a plain process on this adapter', async () => {
    // What a library user's process sees (Dawn's adapter enumeration on drivers such as lavapipe).
    const plain = await run([
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "const T = await import('@leffa-webgpu/core'); await T.init(); console.log('ready');",
    ]);
    expect(plain.stdout.trim()).toBe('ready');
    const warned = plain.stderr.split('\n').filter((l) => DAWN_LIMIT_CLAMP_WARNING.test(l));
    const out = join(tmp, 'pose');
    const r = await run(cli('pose', '--image', 'packages/train/docs/schp-small-samples.png', '--out', out));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote .*keypoints\.json/);
    expect(r.stderr).toBe('');
    // Only meaningful where Dawn does warn: the CI adapter (lavapipe) does.
    if (process.env.CI || warned.length) expect(warned).toHaveLength(2);
  });

  it('errors still reach stderr with the exit code', async () => {
    const r = await run(cli('pose', '--image', join(tmp, 'missing.png'), '--out', join(tmp, 'x')));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^leffa: .*missing\.png/);
    expect(r.stderr).not.toMatch(/artificially reduced/);
  });

  it('SIGTERM to the CLI stops the worker too and is reported as the exit signal', async () => {
    const out = join(tmp, 'vae');
    let launcher = 0;
    const done = run(
      cli('train-vae', '--out', out, '--steps', '100000', '--batch', '2', '--size', '32x32'),
      (pid) => (launcher = pid),
    );
    // The worker takes the run lock (its PID) once it starts training.
    const lock = join(out, '.lock');
    for (let i = 0; i < 600 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 100));
    const worker = Number(JSON.parse(readFileSync(lock, 'utf8')).pid);
    expect(worker).not.toBe(launcher);
    process.kill(launcher, 'SIGTERM');
    const r = await done;
    expect(r.signal).toBe('SIGTERM');
    const alive = () => {
      try {
        process.kill(worker, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 50 && alive(); i++) await new Promise((res) => setTimeout(res, 100));
    expect(alive()).toBe(false);
  });
});
