// Every generated PowerShell script in the project (every script × representative options, as
// each script's psExamples() declares them) must parse with the real grammar, with no ERROR or
// MISSING node, and match its golden file. New scripts are picked up automatically.
// UPDATE_GOLDEN=1 npm test -- generated-scripts   rewrites the golden files after a deliberate change.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { channelCommand, parseTarget } from '../scripts/lib/channels.ts';
import type { PsExample } from '../scripts/lib/ps.ts';
import { parseProblems } from './helpers/powershell.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const goldenDir = join(root, 'test', 'golden');

const all = suite('generated PowerShell');

let collected: Promise<Array<{ script: string; ex: PsExample }>> | undefined;
const collect = () => (collected ??= collectOnce());

async function collectOnce(): Promise<Array<{ script: string; ex: PsExample }>> {
  const out: Array<{ script: string; ex: PsExample }> = [];
  for (const f of readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts')).sort()) {
    const mod = (await import(join(root, 'scripts', f))) as { psExamples?: () => PsExample[] | Promise<PsExample[]> };
    if (typeof mod.psExamples !== 'function') continue;
    for (const ex of await mod.psExamples()) out.push({ script: f.replace(/\.ts$/, ''), ex });
  }
  // The channel loaders are PowerShell we generate too.
  const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf16le');
  const w = channelCommand(parseTarget('winrm://vm1'), '');
  out.push({ script: 'channels', ex: { label: 'winrm-loader', script: decode(w.argv[4]!) } });
  const s = channelCommand(parseTarget('ssh://a@vm1'), '');
  out.push({ script: 'channels', ex: { label: 'ssh-loader', script: decode(s.argv.at(-1)!.split(' ').at(-1)!) } });
  return out;
}

all('every script parses with no ERROR or MISSING node and matches its golden file', async () => {
  const examples = await collect();
  const failures: string[] = [];
  const labels = new Set<string>();
  for (const { script, ex } of examples) {
    const key = `${script}/${ex.label}`;
    if (labels.has(key)) failures.push(`${key}: duplicate label`);
    labels.add(key);
    const problems = await parseProblems(ex.script);
    if (problems.length) failures.push(`${key}:\n    ${problems.slice(0, 5).join('\n    ')}`);
    const golden = join(goldenDir, script, `${ex.label}.ps1`);
    if (process.env.UPDATE_GOLDEN === '1') {
      mkdirSync(dirname(golden), { recursive: true });
      writeFileSync(golden, ex.script);
    } else if (!existsSync(golden)) {
      failures.push(`${key}: no golden file ${golden} (run with UPDATE_GOLDEN=1 after reviewing the script)`);
    } else if (readFileSync(golden, 'utf8') !== ex.script) {
      failures.push(`${key}: differs from its golden file (review, then UPDATE_GOLDEN=1)`);
    }
  }
  assert.ok(examples.length >= 2, 'found the generated scripts');
  if (failures.length) assert.unreachable(`${failures.length} problem(s):\n  ${failures.join('\n  ')}`);
});

all('golden files without a generating example are reported (no stale goldens)', async () => {
  const keys = new Set((await collect()).map(({ script, ex }) => `${script}/${ex.label}.ps1`));
  const stale: string[] = [];
  if (existsSync(goldenDir)) {
    for (const d of readdirSync(goldenDir)) for (const f of readdirSync(join(goldenDir, d))) if (!keys.has(`${d}/${f}`)) stale.push(`${d}/${f}`);
  }
  assert.equal(stale, []);
});

all.run();
