// The shape of the code, checked: no script imports another script and nothing in scripts/lib
// imports from scripts/; every line of PowerShell the project emits lives in scripts/ps/*.ps1 (no
// multi-line PowerShell in a TypeScript template string); and every generated script includes its
// functions byte for byte from those files, with values only in its $P block.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePsFile, PS_DIR, readPsFile } from '../scripts/lib/ps-loader.ts';
import type { PsExample } from '../scripts/lib/ps.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const scripts = join(root, 'scripts');
const tsFiles = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? tsFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []));
const imports = (file: string) => [...readFileSync(file, 'utf8').matchAll(/(?:from\s+|import\s*\(\s*)'([^']+)'/g)].map((m) => m[1]!);

const graph = suite('imports');

graph('no script in scripts/ imports another script (shared code lives in scripts/lib/)', () => {
  const bad: string[] = [];
  for (const f of readdirSync(scripts).filter((n) => n.endsWith('.ts'))) {
    for (const spec of imports(join(scripts, f))) if (/^\.\/[^/]+\.ts$/.test(spec)) bad.push(`${f} imports ${spec}`);
  }
  assert.equal(bad, []);
});

graph('nothing in scripts/lib/ imports from scripts/', () => {
  const bad: string[] = [];
  for (const f of tsFiles(join(scripts, 'lib'))) {
    for (const spec of imports(f)) if (spec.startsWith('../')) bad.push(`${relative(root, f)} imports ${spec}`);
  }
  assert.equal(bad, []);
});

const ps = suite('PowerShell lives in scripts/ps');

// A template literal over several lines with PowerShell in it: variables, param blocks, cmdlets.
const PS_LIKE = /\[CmdletBinding|\$PSCmdlet|\$Result\b|\$P\.[A-Z]|-ErrorAction\b|\bfunction [A-Z][a-z]+-Rdp|\b(?:Get|Set|New|Remove|Write|Invoke|Test)-[A-Z][a-z]+/;

ps('no multi-line PowerShell template string is left in scripts/**/*.ts', () => {
  const bad: string[] = [];
  for (const f of tsFiles(scripts)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/`((?:[^`\\]|\\[\s\S])*)`/g)) {
      const body = m[1]!;
      if (!body.includes('\n') || !PS_LIKE.test(body)) continue;
      const line = text.slice(0, m.index).split('\n').length;
      bad.push(`${relative(root, f)}:${line}: ${body.split('\n')[0]!.slice(0, 60)}`);
    }
  }
  assert.equal(bad, []);
});

async function examples(): Promise<Array<{ script: string; ex: PsExample }>> {
  const out: Array<{ script: string; ex: PsExample }> = [];
  const dir = join(root, 'test', 'examples');
  for (const f of existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.ts')) : []) {
    const mod = (await import(join(dir, f))) as { examples: () => PsExample[] | Promise<PsExample[]> };
    for (const ex of await mod.examples()) out.push({ script: f.replace(/\.ts$/, ''), ex });
  }
  return out;
}

ps('examples of every PowerShell-generating script live in test/examples, none in scripts/', async () => {
  const left = readdirSync(scripts).filter((f) => f.endsWith('.ts') && /export (async )?function psExamples/.test(readFileSync(join(scripts, f), 'utf8')));
  assert.equal(left, []);
  assert.ok((await examples()).length > 0);
});

ps('every generated script includes its functions byte for byte from scripts/ps, and values only through $P', async () => {
  const defs = new Map<string, string>();
  for (const f of readdirSync(PS_DIR).filter((n) => n.endsWith('.ps1'))) for (const fn of readPsFile(f.replace(/\.ps1$/, '')).functions) defs.set(fn.name, fn.text);
  const bad: string[] = [];
  for (const { script, ex } of await examples()) {
    const key = `${script}/${ex.label}`;
    // buildScript's shape: header, the $P block, the functions, then `try {` CALL `} catch {` and the epilogue.
    const catchAt = ex.script.lastIndexOf('\n} catch {\n    $Result = [ordered]@{');
    const tryAt = ex.script.lastIndexOf('\ntry {\n', catchAt);
    const params = /^\$P = \[ordered\]@\{\n[\s\S]*?\n\}(?=\n\$Result = \[ordered\]@\{ step = )/m.exec(ex.script);
    if (catchAt < 0 || tryAt < 0 || !params) {
      // The expiry task runs later from a scheduled task's command line: minified functions of
      // toggle-nla.ps1 and one constant call, with the two recorded values prepended on the target
      // (test/toggle-nla.test.ts checks it). Every other script is built by buildScript.
      if (!(script === 'toggle-nla' && ex.label === 'expiry-task')) bad.push(`${key}: not built by buildScript`);
      continue;
    }
    const functions = ex.script.slice(params.index + params[0].length, tryAt);
    for (const fn of parsePsFile(key, functions, { lenient: true }).functions) if (defs.get(fn.name) !== fn.text) bad.push(`${key}: ${fn.name} is not the scripts/ps text`);
    const body = ex.script.slice(tryAt + 7, catchAt).split('\n');
    // First the host check (scripts/ps/windows.ps1 Assert-RdpHost), a constant line.
    if (!/^Assert-RdpHost( -Elevated)?$/.test(body[0] ?? '')) bad.push(`${key}: does not start with the host check`);
    for (const [i, line] of body.slice(1).entries()) {
      // A record-writing step's last line completes its target record (scripts/ps/record.ps1), a constant line.
      if (i > 0 && line === 'Complete-RdpTargetRecord -Result $Result') continue;
      // The call line psCall generates: one entry function, every argument a $P value or a constant switch, no literal.
      if (!/^\$Result = [A-Z][a-z]+-Rdp[A-Za-z]+( -([A-Za-z]+)(:| )\$P\.\2| -[A-Z][A-Za-z]+| -WhatIf:\$P\.DryRun)*$/.test(line)) bad.push(`${key}: runs ${JSON.stringify(line.slice(0, 80))}`);
    }
  }
  assert.equal(bad, []);
});

graph.run();
ps.run();
