// The usage copies in the documentation are the scripts' real --help: every fenced block that
// starts with a script's usage line and has an "Options:" section must equal that script's --help.
// After changing a script's options: UPDATE_DOCS=1 npx tsx test/docs-usage.test.ts, then review.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));
const docs = ['README.md', ...(existsSync(join(root, 'docs')) ? readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f)) : [])];
const BLOCK = /^```\n(npx tsx scripts\/([a-z0-9-]+)\.ts[^\n]*\n[\s\S]*?)```$/gm;

const helpCache = new Map<string, string>();
function help(script: string): string {
  if (!helpCache.has(script)) {
    // Piped, yargs wraps at the width the scripts choose for no terminal: the same on every machine.
    const r = spawnSync(process.execPath, ['--import', 'tsx', join('scripts', `${script}.ts`), '--help'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${script} --help failed: ${r.stderr}`);
    helpCache.set(script, r.stdout.replace(/\s+$/, '') + '\n');
  }
  return helpCache.get(script)!;
}

const usage = suite('usage in the docs');
const documented: string[] = [];

for (const doc of docs) {
  usage(`${doc}: every usage block is the script's current --help`, () => {
    const file = join(root, doc);
    const text = readFileSync(file, 'utf8');
    // Recorded before comparing, so one stale block does not also read as a missing one.
    documented.push(...[...text.matchAll(BLOCK)].filter((m) => /^Options:$/m.test(m[1]!)).map((m) => m[2]!));
    const updated = text.replace(BLOCK, (whole, body: string, script: string) => {
      if (!/^Options:$/m.test(body)) return whole;
      const real = help(script);
      if (process.env.UPDATE_DOCS) return '```\n' + real + '```';
      assert.fixture(body, real, `${doc}: the usage of ${script}`);
      return whole;
    });
    if (process.env.UPDATE_DOCS && updated !== text) writeFileSync(file, updated);
  });
}

usage('every script has its usage documented', () => {
  const scripts = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts') && f !== 'start.ts').map((f) => f.replace(/\.ts$/, ''));
  for (const s of scripts) assert.ok(documented.includes(s), `no usage block for ${s} in ${docs.join(', ')}`);
});

usage.run();
