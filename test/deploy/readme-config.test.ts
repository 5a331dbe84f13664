import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';

// The README's Configuration table is what operators read: it must list exactly the variables
// src/config.ts reads, and where it gives a literal default, that must be the server's default.

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The table's rows: variable, default column, meaning. */
function configurationTable(text: string): { name: string; fallback: string; meaning: string }[] {
  const start = text.indexOf('\n## Configuration\n');
  assert.ok(start >= 0, 'README has a Configuration section');
  const section = text.slice(start + 1, text.indexOf('\n## ', start + 1));
  return [...section.matchAll(/^\| `(\w+)` \| ([^|]+) \| (.+) \|$/gm)]
    .map((m) => ({ name: m[1]!, fallback: m[2]!.trim(), meaning: m[3]!.trim() }));
}

/** Names in one list and not the other, both ways. */
function disagreement(table: string[], code: readonly string[]): { notInCode: string[]; notInTable: string[] } {
  return {
    notInCode: table.filter((name) => !code.includes(name)),
    notInTable: code.filter((name) => !table.includes(name)),
  };
}

describe('README configuration table', () => {
  const rows = configurationTable(readme);

  it('lists every variable src/config.ts reads, and no other, once each', () => {
    const names = rows.map((row) => row.name);
    assert.deepEqual(disagreement(names, CONFIG_VARIABLES), { notInCode: [], notInTable: [] });
    assert.equal(new Set(names).size, names.length, 'no variable twice');
    for (const row of rows) assert.ok(row.meaning.length > 10, `${row.name} says what it means`);
  });

  it('fails that check when one is missing or extra (the check really checks)', () => {
    const names = rows.map((row) => row.name).filter((name) => name !== 'KEEPALIVE_MS');
    assert.deepEqual(disagreement([...names, 'MAX_USERS'], CONFIG_VARIABLES), { notInCode: ['MAX_USERS'], notInTable: ['KEEPALIVE_MS'] });
  });

  it('gives the server\'s own default wherever it names a literal one', () => {
    const defaults = loadConfig({});
    let literal = 0;
    for (const row of rows) {
      const value = /^`([^`]+)`$/.exec(row.fallback)?.[1];
      if (value === undefined || !/^[\w.:-]+$/.test(value) || CONFIG_VARIABLES.includes(value)) continue;
      literal++;
      // Setting a variable to its default must change nothing.
      assert.deepEqual(loadConfig({ [row.name]: value }), defaults, `${row.name}: README says the default is ${value}`);
    }
    assert.ok(literal > 20, 'most rows give a literal default');
    assert.notDeepEqual(loadConfig({ PORT: '9999' }), defaults, 'a different value does change the config');
  });
});
