// Every generated PowerShell script in the project (every script x representative options, as
// test/examples/<script>.ts declares them)
// must parse with the real grammar, with no ERROR or MISSING node, and match its golden file.
// A golden guards what the TypeScript decides: the functions included (the .ps1 files are their
// source, so no golden repeats them), the $P block and the call. Scripts that are not built by
// buildScript (the channel loaders) are kept whole.
// UPDATE_GOLDEN=1 npx tsx test/generated-scripts.test.ts rewrites them after a deliberate change.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  const exDir = join(root, 'test', 'examples');
  const fromTests = existsSync(exDir) ? readdirSync(exDir).filter((f) => f.endsWith('.ts')).sort() : [];
  for (const f of fromTests) {
    const mod = (await import(join(exDir, f))) as { examples: () => PsExample[] | Promise<PsExample[]> };
    for (const ex of await mod.examples()) out.push({ script: f.replace(/\.ts$/, ''), ex });
  }
  // The channel loaders are PowerShell we generate too.
  const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf16le');
  const w = channelCommand(parseTarget('winrm://vm1'), '');
  out.push({ script: 'channels', ex: { label: 'winrm-loader', script: decode(w.argv[4]!) } });
  const s = channelCommand(parseTarget('ssh://a@vm1'), '');
  out.push({ script: 'channels', ex: { label: 'ssh-loader', script: decode(s.argv.at(-1)!.split(' ').at(-1)!) } });
  return out;
}

/** What a golden keeps of a built script: the function names, the $P block and what runs inside try. */
function goldenOf(script: string): string {
  // buildScript's shape: the $P block ends where the default result begins; the step runs in the last try.
  const params = /^\$P = \[ordered\]@\{\n[\s\S]*?\n\}(?=\n\$Result = \[ordered\]@\{ step = )/m.exec(script);
  const catchAt = script.lastIndexOf('\n} catch {\n    $Result = [ordered]@{');
  const tryAt = script.lastIndexOf('\ntry {\n', catchAt);
  if (!params || catchAt < 0 || tryAt < 0) return script;
  const region = script.slice(params.index + params[0].length, tryAt);
  const functions = [...region.matchAll(/^function ([A-Za-z]+-[A-Za-z0-9]+) \{$/gm)].map((m) => m[1]);
  return [`# functions (${functions.length}): ${functions.join(', ')}`, params[0], '# call:', script.slice(tryAt + 7, catchAt), ''].join('\n');
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
    const golden = join(goldenDir, script, `${ex.label}.golden`);
    const expected = goldenOf(ex.script);
    if (process.env.UPDATE_GOLDEN === '1') {
      mkdirSync(dirname(golden), { recursive: true });
      writeFileSync(golden, expected);
      rmSync(join(goldenDir, script, `${ex.label}.ps1`), { force: true });
    } else if (!existsSync(golden)) {
      failures.push(`${key}: no golden file ${golden} (run with UPDATE_GOLDEN=1 after reviewing the script)`);
    } else if (readFileSync(golden, 'utf8') !== expected) {
      failures.push(`${key}: differs from its golden file (review, then UPDATE_GOLDEN=1)`);
    }
  }
  assert.ok(examples.length >= 2, 'found the generated scripts');
  if (failures.length) assert.unreachable(`${failures.length} problem(s):\n  ${failures.join('\n  ')}`);
});

all('golden files without a generating example are reported (no stale goldens)', async () => {
  const keys = new Set((await collect()).map(({ script, ex }) => `${script}/${ex.label}.golden`));
  const stale: string[] = [];
  if (existsSync(goldenDir)) {
    for (const d of readdirSync(goldenDir)) for (const f of readdirSync(join(goldenDir, d))) if (!keys.has(`${d}/${f}`)) stale.push(`${d}/${f}`);
  }
  assert.equal(stale, []);
});

all.run();
