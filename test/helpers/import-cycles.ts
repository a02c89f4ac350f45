// Import cycles among the TypeScript files of one source folder, from their relative import/export statements.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// `import|export [type] [... from] './x.js'`, side-effect imports included; dynamic import() is not a load-time edge.
const STATEMENT = /(?:^|[;}\n])\s*(import|export)\s+(type\s+)?([^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/g;
const COMMENT = /\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm;

export interface ImportCycle {
  /** Files of one strongly connected component, relative to the folder, sorted. */
  files: string[];
  /** Whether every import inside the component is type-only (erased at compile time). */
  typeOnly: boolean;
}

const tsFiles = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? tsFiles(path) : path.endsWith('.ts') ? [path] : [];
  });

function resolveImport(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec).replace(/\.js$/, '');
  return [`${base}.ts`, join(base, 'index.ts')].find((p) => existsSync(p)) ?? null;
}

/** `{ type A, type B }` imports only types, like `import type`. */
const onlyTypes = (clause: string | undefined): boolean => {
  const braces = clause?.match(/^\s*\{([^}]*)\}\s*from\s*$/);
  return !!braces && braces[1]!.split(',').every((s) => s.trim() === '' || /^type\s/.test(s.trim()));
};

/** Relative imports between the files under `dir`: absolute path of each file to the files it imports. */
function importGraph(root: string): Map<string, { to: string; typeOnly: boolean }[]> {
  const edges = new Map<string, { to: string; typeOnly: boolean }[]>();
  for (const file of tsFiles(root)) {
    const text = readFileSync(file, 'utf8').replace(COMMENT, '');
    const out: { to: string; typeOnly: boolean }[] = [];
    for (const [, , typeKw, clause, spec] of text.matchAll(STATEMENT)) {
      const to = resolveImport(file, spec!);
      if (to?.startsWith(root)) out.push({ to, typeOnly: !!typeKw || onlyTypes(clause) });
    }
    edges.set(file, out);
  }
  return edges;
}

/** Every import under `dir` as `from -> to` (paths relative to `dir`), with whether it is type-only. */
export function importEdges(dir: string): { from: string; to: string; typeOnly: boolean }[] {
  const root = resolve(dir);
  return [...importGraph(root)].flatMap(([from, out]) =>
    out.map((e) => ({ from: relative(root, from), to: relative(root, e.to), typeOnly: e.typeOnly })),
  );
}

/** Every strongly connected component with more than one file (or a file importing itself) under `dir`. */
export function importCycles(dir: string): ImportCycle[] {
  const root = resolve(dir);
  const edges = importGraph(root);
  // Tarjan's algorithm (recursive: source folders are shallow enough).
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: ImportCycle[] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const { to } of edges.get(v) ?? []) {
      if (!index.has(to)) visit(to);
      if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, low.get(to)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set<string>();
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.add(w);
    } while (w !== v);
    const inner = [...component].flatMap((f) => edges.get(f)!.filter((e) => component.has(e.to)));
    if (component.size > 1 || inner.length > 0) {
      cycles.push({
        files: [...component].map((f) => relative(root, f)).sort(),
        typeOnly: inner.every((e) => e.typeOnly),
      });
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return cycles;
}
