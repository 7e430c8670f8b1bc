// Every PowerShell text rdpfix ships or generates, for the tests that hand it to PowerShell's own
// parser (test/powershell-parser.test.ts, test/powershell-51.test.ts): each example of
// test/examples/*.ts, every stage of every shipped recipe as pasted (--emit), and every
// scripts/ps/*.ps1 file. runPwshOver() parses them all in ONE pwsh process.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PsExample } from '../../scripts/lib/ps.ts';
import { emitRecipe, recipeStages } from '../../scripts/lib/recipe-emit.ts';
import { listRecipes, loadRecipe } from '../../scripts/lib/recipe.ts';
import { UsageError } from '../../scripts/lib/errors.ts';
import { runPwsh } from './pwsh.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PS_DIR = join(ROOT, 'scripts', 'ps');
const EXAMPLES_DIR = join(ROOT, 'test', 'examples');

export interface PsText { label: string; text: string }

export function psFiles(): PsText[] {
  return readdirSync(PS_DIR).filter((n) => n.endsWith('.ps1')).sort()
    .map((n) => ({ label: `scripts/ps/${n}`, text: readFileSync(join(PS_DIR, n), 'utf8') }));
}

export async function exampleScripts(): Promise<PsText[]> {
  const out: PsText[] = [];
  for (const n of readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.ts')).sort()) {
    const mod = (await import(pathToFileURL(join(EXAMPLES_DIR, n)).href)) as { examples: () => PsExample[] | Promise<PsExample[]> };
    for (const ex of await mod.examples()) out.push({ label: `test/examples/${n} ${ex.label}`, text: ex.script });
  }
  return out;
}

/**
 * Every stage of every shipped recipe, as `run-recipe NAME --host 10.0.0.4 --emit [--stage K]`
 * prints it, plus azure-vm-cert as a dry run. A recipe that cannot be pasted (no server step, or a
 * conditional server step) is refused by emitRecipe with a UsageError; those are returned as
 * `refused` so the caller can see them, never silently dropped.
 */
export async function recipeScripts(): Promise<{ scripts: PsText[]; refused: string[] }> {
  const scripts: PsText[] = [];
  const refused: string[] = [];
  for (const name of listRecipes()) {
    const recipe = loadRecipe(name);
    const stages = recipeStages(recipe).length;
    for (let stage = 1; stage <= stages; stage++) {
      try {
        scripts.push({ label: `recipe ${name} stage ${stage}`, text: await emitRecipe(recipe, { host: '10.0.0.4:3389', stage }) });
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        refused.push(`${name} stage ${stage}: ${e.message}`);
      }
    }
  }
  scripts.push({ label: 'recipe azure-vm-cert stage 1 dry run', text: await emitRecipe(loadRecipe('azure-vm-cert'), { host: '10.0.0.4:3389', stage: 1, dryRun: true }) });
  return { scripts, refused };
}

/**
 * Write the texts to temp files and run `driver` once under pwsh. The driver sees `$Files`, an
 * array of @{ label; path }, and must print one JSON document (its stdout is parsed and returned).
 * The texts are written as UTF-8 and read back with [System.IO.File]::ReadAllText(path, UTF8).
 */
export function runPwshOver<T>(texts: PsText[], driver: string, timeoutMs = 120_000): T {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-ps-corpus-'));
  try {
    const manifest = texts.map((t, i) => {
      const path = join(dir, `${i}.txt`);
      writeFileSync(path, t.text, 'utf8');
      return { label: t.label, path };
    });
    const manifestPath = join(dir, 'manifest.json');
    writeFileSync(manifestPath, JSON.stringify(manifest), 'utf8');
    const outPath = join(dir, 'out.json');
    const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
    const script = `$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Files = @([System.IO.File]::ReadAllText(${q(manifestPath)}, [System.Text.Encoding]::UTF8) | ConvertFrom-Json)
$Json = & {
${driver}
}
[System.IO.File]::WriteAllText(${q(outPath)}, ($Json -join "\`n"), (New-Object System.Text.UTF8Encoding($false)))
`;
    const r = runPwsh(script, timeoutMs);
    if (r.code !== 0) throw new Error(`pwsh driver failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
    return JSON.parse(readFileSync(outPath, 'utf8')) as T;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
