// The publishable packages carry what npm users need: the MIT licence text, licence/repository/engines/publish
// metadata, one shared version with a CHANGELOG entry, and a tarball that actually contains LICENSE.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const rootLicense = readFileSync(join(root, 'LICENSE'), 'utf8');

interface Pkg {
  name: string;
  version: string;
  private?: boolean;
  license?: string;
  repository?: { type: string; url: string; directory: string };
  publishConfig?: { access?: string };
  engines?: { node?: string };
  files?: string[];
  dependencies?: Record<string, string>;
}

const dirs = readdirSync(join(root, 'packages')).filter((d) => existsSync(join(root, 'packages', d, 'package.json')));
const pkgs = dirs
  .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) as Pkg }))
  .filter(({ pkg }) => !pkg.private);

describe('publishable packages', () => {
  it('are the six workspace packages', () => {
    expect(pkgs.map(({ pkg }) => pkg.name).sort()).toEqual([
      '@leffa-webgpu/core',
      '@leffa-webgpu/data',
      '@leffa-webgpu/kernels-wgsl',
      '@leffa-webgpu/models',
      '@leffa-webgpu/pipelines',
      '@leffa-webgpu/train',
    ]);
  });

  it('the root LICENSE is the MIT licence', () => {
    expect(rootLicense.startsWith('MIT License\n')).toBe(true);
    expect(rootLicense).toContain('Permission is hereby granted, free of charge');
  });

  for (const { dir, pkg } of pkgs) {
    it(`${pkg.name}: licence, repository, engines and publish metadata`, () => {
      expect(pkg.license).toBe('MIT');
      expect(pkg.repository).toEqual({
        type: 'git',
        url: 'git+https://github.com/leffa-webgpu/leffa-webgpu.git',
        directory: `packages/${dir}`,
      });
      expect(pkg.publishConfig).toEqual({ access: 'public' });
      expect(pkg.engines).toEqual({ node: '>=20.0.0' });
      expect(readFileSync(join(root, 'packages', dir, 'LICENSE'), 'utf8')).toBe(rootLicense);
      expect(pkg.files).toContain('LICENSE');
    });

    it(`${pkg.name}: shares the release version, pins its siblings to it, has a CHANGELOG entry`, () => {
      expect(pkg.version).toBe(pkgs[0]!.pkg.version);
      for (const [dep, range] of Object.entries(pkg.dependencies ?? {})) {
        if (dep.startsWith('@leffa-webgpu/')) expect(range, dep).toBe(pkg.version);
      }
      const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8');
      expect(changelog).toMatch(new RegExp(`^## \\[${pkg.version.replace(/\./g, '\\.')}\\]`, 'm'));
    });

    it(`${pkg.name}: the npm tarball contains LICENSE and package.json`, () => {
      const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
        cwd: join(root, 'packages', dir),
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
      expect(files).toContain('LICENSE');
      expect(files).toContain('package.json');
    });
  }
});
