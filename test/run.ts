// The test command (`npm test`): typecheck, then every test/**/*.test.ts in its own process (a
// crash or a leaked handle in one file cannot hide another's result), then one plain closing line
// "N passed, N failed, N skipped" that CI reads.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const only = process.argv.slice(2);

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (n === 'fixtures' || n === 'golden' || n === 'node_modules') return [];
    if (statSync(p).isDirectory()) return findTests(p);
    return n.endsWith('.test.ts') ? [p] : [];
  });
}

interface Outcome { passed: number; failed: number; skipped: number; output: string; code: number | null }

function run(cmd: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: root, env: { ...process.env, FORCE_COLOR: '0' } });
    let output = '';
    p.stdout.on('data', (d) => (output += d));
    p.stderr.on('data', (d) => (output += d));
    p.on('close', (code) => {
      // uvu's summary: "Total: N / Passed: N / Skipped: N"; our lab gate prints "skip: ...".
      const num = (label: string) => [...output.matchAll(new RegExp(`${label}:\\s+(\\d+)`, 'g'))].reduce((a, m) => a + Number(m[1]), 0);
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped') + (output.match(/^skip: /gm) ?? []).length;
      let failed = total - passed - num('Skipped');
      if (code !== 0 && failed === 0) failed = 1; // crashed before or after its tests
      resolve({ passed, failed, skipped, output, code });
    });
  });
}

const files = findTests(join(root, 'test')).sort().filter((f) => !only.length || only.some((o) => f.includes(o)));
let passed = 0, failed = 0, skipped = 0;
const t0 = Date.now();

if (!only.length) {
  const tc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', '.']);
  if (tc.code === 0) { passed++; console.log('✓ typecheck'); }
  else { failed++; console.log('✘ typecheck\n' + tc.output); }
}

for (const f of files) {
  const t = Date.now();
  const r = await run(process.execPath, ['--import', 'tsx', f]);
  passed += r.passed; failed += r.failed; skipped += r.skipped;
  const name = relative(root, f);
  const secs = ((Date.now() - t) / 1000).toFixed(1);
  if (r.failed) console.log(`✘ ${name} (${r.passed} passed, ${r.failed} failed, ${secs}s)\n${r.output}`);
  else {
    console.log(`✓ ${name} (${r.passed} passed${r.skipped ? `, ${r.skipped} skipped` : ''}, ${secs}s)`);
    for (const l of r.output.split('\n')) if (l.startsWith('skip: ')) console.log(`  ${l}`);
  }
}
console.log(`(${((Date.now() - t0) / 1000).toFixed(1)}s)`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
