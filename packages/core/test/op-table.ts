// The op table of packages/core/README.md, generated from opRegistry: what each registered op takes, whether it
// has a backward rule, and where its PyTorch parity test and its gradcheck live. Written by `npm run op-table`.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '@leffa-webgpu/core';
import { OP_CASES, OP_CASES_EXCLUDED } from './op-cases.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
export const README = join(root, 'packages/core/README.md');
export const BEGIN = '<!-- op-table: generated from opRegistry by `npm run op-table`; do not edit by hand -->';
export const END = '<!-- op-table end -->';

/** The forward's parameters after the context, as its source spells them (`name?` where it has a default). */
function forwardArguments(forward: (...args: never[]) => unknown): string[] {
  const src = forward.toString();
  const params: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of src.slice(src.indexOf('(') + 1)) {
    if (ch === ')' && depth === 0) break;
    if ('([{'.includes(ch)) depth++;
    if (')]}'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      params.push(current);
      current = '';
    } else current += ch;
  }
  params.push(current);
  return params
    .map((p) => p.trim())
    .filter(Boolean)
    .slice(1)
    .map((p) => (p.includes('=') ? `${p.slice(0, p.indexOf('=')).trim()}?` : p));
}

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

// Op-level parity files (golden groups of op cases) first; model parity files only where none calls the op.
const parityDir = join(root, 'test/parity');
const parityFiles = readdirSync(parityDir)
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => ({ path: `test/parity/${f}`, text: readFileSync(join(parityDir, f), 'utf8') }))
  .map((f) => ({ ...f, model: !f.text.includes('replayGoldenGroup(') }));

function parityOf(api: string): string {
  // T.api passed or called, a bare or method call api( (Math.api( is not ours).
  const uses = [new RegExp(`\\bT\\.${api}\\b`), new RegExp(`(?<!Math)(?:\\.|(?<![\\w$.]))${api}\\(`)];
  const hits = parityFiles.filter((f) => uses.some((re) => re.test(f.text)));
  const ops = hits.filter((f) => !f.model);
  return (ops.length > 0 ? ops : hits).map((f) => `\`${f.path}\``).join(', ') || 'none';
}

export function opTable(): string {
  const rows = [...T.opRegistry].map(([name, def]) => {
    const c = OP_CASES[name];
    const api = c?.api ?? camel(name);
    const gradcheck = !def.backward
      ? 'not differentiable'
      : c
        ? '`packages/core/test/op-gradcheck.test.ts`'
        : `not checked: ${OP_CASES_EXCLUDED[name] ?? 'no case'}`;
    const args = forwardArguments(def.forward as (...args: never[]) => unknown).join(', ');
    return `| \`${name}\` | \`${api}\` | ${args} | ${def.backward ? 'yes' : 'no'} | ${parityOf(api)} | ${gradcheck} |`;
  });
  return [
    '| registered op | public function | forward arguments | backward | PyTorch parity | gradcheck |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** `readme` with the text between the markers replaced by `table`. */
export function withTable(readme: string, table: string): string {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`op-table: ${README} lacks the markers ${BEGIN} ... ${END}`);
  return `${readme.slice(0, begin + BEGIN.length)}\n${table}\n${readme.slice(end)}`;
}
