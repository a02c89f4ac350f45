// Writes the generated op table into packages/core/README.md (between its markers); run by `npm run op-table`.
import { readFileSync, writeFileSync } from 'node:fs';
import { README, opTable, withTable } from '../packages/core/test/op-table.js';

const before = readFileSync(README, 'utf8');
const after = withTable(before, opTable());
if (after !== before) writeFileSync(README, after);
console.log(after === before ? `${README}: op table up to date` : `${README}: op table written`);
