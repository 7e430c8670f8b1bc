// Every script's --help exits 0 and prints usage; start.ts is the npm start entry point.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));
const scripts = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts') && f !== 'start.ts').sort();
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

const help = suite('--help');

for (const s of scripts) {
  help(`${s} --help exits 0 and shows usage`, () => {
    const r = cli([join('scripts', s), '--help']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /Options:/);
  });
}

help('every script is in the README table', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  for (const s of scripts) assert.ok(readme.includes(`scripts/${s}`), `README mentions scripts/${s}`);
});

// ---

const start = suite('npm start');

start('start.ts runs and exits 0', () => {
  const r = cli(['scripts/start.ts']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(r.stdout.length > 0);
});

help.run();
start.run();
