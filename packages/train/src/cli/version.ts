import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The version of @leffa-webgpu/train, from its package.json: one folder up from the build (dist/cli.js), two
 * from the TypeScript sources (src/cli/version.ts).
 */
export function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === '@leffa-webgpu/train' && typeof pkg.version === 'string') return pkg.version;
  }
  throw new Error("leffa: @leffa-webgpu/train's package.json was not found next to the CLI");
}
