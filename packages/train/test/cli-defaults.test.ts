// The CLI's --version, and parse / densepose running on the shipped models when --ckpt is left out (as pose does).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from '../src/cli/train-schp.js';
import { densePose } from '../src/cli/train-densepose.js';
import { syntheticPoseExample, writePng } from '@leffa-webgpu/data';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'cli-defaults-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const version = (JSON.parse(readFileSync(join(repo, 'packages/train/package.json'), 'utf8')) as { version: string })
  .version;
const builtCli = join(repo, 'packages/train/dist/cli.js');

beforeAll(async () => {
  await T.init();
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: repo,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const cli = (...args: string[]) => run(['--import', 'tsx', 'packages/train/src/cli/main.ts', ...args]);

const files = (dir: string): Map<string, Buffer> => {
  const out = new Map<string, Buffer>();
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else out.set(`${rel}${e.name}`, readFileSync(join(d, e.name)));
    }
  };
  walk(dir, '');
  return out;
};

describe('leffa --version', () => {
  it('prints the version in packages/train/package.json (from the sources)', async () => {
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
  });

  // The build resolves package.json from dist/, one folder up instead of two; scripts/test.sh builds before vitest.
  it.skipIf(!existsSync(builtCli))('prints the same version from the build (dist/cli.js)', async () => {
    const r = await run([builtCli, '--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${version}\n`);
  });
});

describe('parse and densepose default --ckpt to the shipped models', () => {
  const image = join(tmp, 'person.png');
  beforeAll(async () => {
    const e = syntheticPoseExample(900_000_000, 128, 96);
    await writePng(image, { width: 96, height: 128, data: e.image });
  });

  it('parse without --ckpt writes what parse with shipped:schp-small writes', async () => {
    const out = join(tmp, 'parse-default');
    const r = await cli('parse', '--image', image, '--out', out);
    expect(r.code, r.stderr).toBe(0);
    const explicit = join(tmp, 'parse-shipped');
    await parse({ image, ckpt: 'shipped:schp-small', out: explicit, flip: false, weights: 'auto' });
    const got = files(out);
    expect(got.has('parsing.png')).toBe(true);
    expect(got.size).toBeGreaterThan(2); // parsing.png and at least background plus one body class mask
    expect(got).toEqual(files(explicit));
  }, 120_000);

  it('densepose without --ckpt writes what densepose with shipped:densepose-small writes', async () => {
    const out = join(tmp, 'densepose-default');
    const r = await cli('densepose', '--image', image, '--out', out);
    expect(r.code, r.stderr).toBe(0);
    const explicit = join(tmp, 'densepose-shipped');
    await densePose({ image, ckpt: 'shipped:densepose-small', out: explicit });
    const got = files(out);
    expect([...got.keys()].sort()).toEqual(['densepose-iuv.png', 'densepose-raw.png', 'densepose.png']);
    expect(got).toEqual(files(explicit));
  }, 120_000);

  it('--help shows the shipped defaults', async () => {
    for (const [cmd, name] of [
      ['parse', 'shipped:schp-small'],
      ['densepose', 'shipped:densepose-small'],
    ] as const) {
      const r = await cli(cmd, '--help');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.replace(/\s+/g, ' ')).toContain(`(default: "${name}")`);
    }
  });
});
