// The op table in packages/core/README.md is the one opRegistry generates (`npm run op-table` rewrites it).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BEGIN, END, README, opTable, withTable } from './op-table.js';

describe('README op table', () => {
  const readme = readFileSync(README, 'utf8');

  it('is up to date with opRegistry (run `npm run op-table`)', () => {
    expect(withTable(readme, opTable())).toBe(readme);
  });

  it('lists every registered op once, between its markers', () => {
    const table = readme.slice(readme.indexOf(BEGIN), readme.indexOf(END));
    const rows = table.split('\n').filter((line) => /^\| `/.test(line));
    expect(rows.length).toBeGreaterThan(50);
    expect(new Set(rows.map((r) => r.split('|')[1])).size).toBe(rows.length);
    // A stale table is caught: dropping a row changes the text.
    expect(withTable(readme, opTable().replace(/\n\| `exp` .*/, ''))).not.toBe(readme);
  });
});
