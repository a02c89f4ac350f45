// No package has an import loop: layers import downwards only (in core: tensor <- forward <- autograd <- ops).
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { importCycles, importEdges } from '../helpers/import-cycles.js';

const packages = fileURLToPath(new URL('../../packages', import.meta.url));

/**
 * Type-only loops that are allowed, with the reason. A Tensor records the graph node that produced it and a node
 * lists its input Tensors: two mutually recursive types, erased at compile time, so nothing loads in a loop.
 */
const ALLOWED_TYPE_LOOPS: Record<string, string[][]> = {
  core: [['autograd/node.ts', 'tensor/tensor.ts']],
};

describe('import cycles', () => {
  const dirs = readdirSync(packages).filter((d) => existsSync(join(packages, d, 'src')));

  it('covers every package', () => {
    expect(dirs).toEqual(expect.arrayContaining(['kernels-wgsl', 'core', 'models', 'train']));
  });

  it.each(dirs)('packages/%s/src has none', (dir) => {
    const cycles = importCycles(join(packages, dir, 'src'));
    const allowed = ALLOWED_TYPE_LOOPS[dir] ?? [];
    const unexpected = cycles.filter((c) => !(c.typeOnly && allowed.some((a) => a.join() === c.files.join())));
    expect(unexpected.map((c) => `${c.typeOnly ? 'type-only: ' : ''}${c.files.join(' -> ')}`)).toEqual([]);
    // An allowance that no longer matches a loop is stale.
    for (const a of allowed) expect(cycles.map((c) => c.files.join())).toContain(a.join());
  });

  it('core imports downwards: tensor <- forward <- autograd <- ops', () => {
    const rank: Record<string, number> = { device: 0, tensor: 1, forward: 2, autograd: 3, ops: 4 };
    const layer = (file: string) => rank[file.split('/')[0]!];
    const upwards = importEdges(join(packages, 'core', 'src'))
      .filter(
        (e) => !e.typeOnly && layer(e.from) !== undefined && layer(e.to) !== undefined && layer(e.to)! > layer(e.from)!,
      )
      .map((e) => `${e.from} -> ${e.to}`);
    expect(upwards).toEqual([]);
  });

  describe('the analysis', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'import-cycles-'));
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));
    const write = (files: Record<string, string>) => {
      const dir = mkdtempSync(join(tmp, 'case-'));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
      return dir;
    };

    it('finds a runtime loop through three files, and nothing in a chain', () => {
      const loop = write({
        'a.ts': "import { b } from './b.js';\nexport const a = b;\n",
        'b.ts': "export { c as b } from './c.js';\n",
        'c.ts': "import './a.js';\nexport const c = 1;\n",
        'd.ts': "import { a } from './a.js';\n",
      });
      expect(importCycles(loop)).toEqual([{ files: ['a.ts', 'b.ts', 'c.ts'], typeOnly: false }]);
      const chain = write({
        'a.ts': "import { b } from './b.js';\n",
        'b.ts': '// import { a } from "./a.js";\nexport const b = 1;\n',
      });
      expect(importCycles(chain)).toEqual([]);
    });

    it('tells type-only loops from runtime ones', () => {
      const typeOnly = write({
        'a.ts': "import type { B } from './b.js';\nexport interface A { b: B }\n",
        'b.ts': "import { type A } from './a.js';\nexport interface B { a: A }\n",
      });
      expect(importCycles(typeOnly)).toEqual([{ files: ['a.ts', 'b.ts'], typeOnly: true }]);
      const mixed = write({
        'a.ts': "import type { B } from './b.js';\nexport const a = 1;\n",
        'b.ts': "import { type X, a } from './a.js';\nexport type B = number;\n",
      });
      expect(importCycles(mixed)).toEqual([{ files: ['a.ts', 'b.ts'], typeOnly: false }]);
    });
  });
});
