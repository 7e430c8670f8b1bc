// Paste-able recipe stages (run-recipe --emit): each stage is one self-contained PowerShell script
// with the server-side steps up to the first check that may stop the recipe; the admin checks from
// the workstation before pasting the next. Each step's own script is what that script's --emit
// prints; around them, scripts/ps/composite.ps1 collects the results and prints one summary line.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { UsageError } from './errors.ts';
import { assertAscii, psValue, RESULT_END } from './ps.ts';
import { readPsFile } from './ps-loader.ts';
import { scriptsDir, type Recipe, type RecipeStep } from './recipe.ts';
import { recipeParams, stepArgv } from './runner.ts';

/**
 * Run a script with --emit and return the PowerShell it prints (exactly what would run). Anything
 * that is not a generated script (a usage error, help text) is an error, never emitted.
 */
async function emitStep(step: RecipeStep, argv: string[]): Promise<string> {
  const args = argv.filter((a) => a !== '--json' && !a.startsWith('--target='));
  const at = args.indexOf('--');
  if (at >= 0) args.splice(at, 0, '--emit');
  else args.push('--emit');
  const script = join(scriptsDir(), `${step.script}.ts`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      const why = err.trim().split('\n').at(-1) || out.trim().split('\n')[0] || `exit code ${code}`;
      if (code !== 0) return reject(new UsageError(`step "${step.name}": ${step.script} --emit failed: ${why}`));
      if (!out.startsWith('# rdpfix ') || !out.includes(RESULT_END)) {
        return reject(new UsageError(`step "${step.name}": ${step.script} --emit printed something that is not a generated script (${JSON.stringify(out.slice(0, 60))})`));
      }
      resolve(out);
    });
  });
}

/**
 * A recipe as paste-able stages. A pasted script cannot probe from the client, so each check that
 * may stop the recipe (stop_when) ends a stage: stage 1 is the least drastic fix, and the admin
 * checks from the workstation before pasting stage 2. Stages without a server step are merged
 * into the next one.
 */
export function recipeStages(recipe: Recipe): RecipeStep[][] {
  const stages: RecipeStep[][] = [[]];
  for (const step of recipe.steps) {
    stages.at(-1)!.push(step);
    if (step.kind === 'check' && step.stopWhen.length && stages.at(-1)!.some((s) => s.on === 'server')) stages.push([]);
  }
  const last = stages.at(-1)!;
  if (!last.some((s) => s.on === 'server') && stages.length > 1) stages.splice(-2, 2, [...stages.at(-2)!, ...last]);
  return stages.filter((st) => st.length);
}

export interface EmitOptions {
  /** HOST:PORT for one host; for a fleet, the hosts file (the server steps do not depend on the host). */
  host?: string;
  hostsFile?: string;
  params?: Record<string, string>;
  /** 1-based stage to print (default 1). */
  stage?: number;
  dryRun?: boolean;
}

/** The summary of a pasted run: the last line of output, at most this many bytes (Run Command keeps 4,096; Intune 2,048). */
export const SUMMARY_LIMIT = 2000;

/**
 * One self-contained PowerShell script with the server-side steps of one stage of the recipe, in
 * order, for pasting (or Run Command). Each step's own generated script runs in its own scope; the
 * composite stops at the first failed step, then prints one summary line. Client steps and
 * checks are printed as what to run from the workstation.
 */
export async function emitRecipe(recipe: Recipe, o: EmitOptions): Promise<string> {
  const stages = recipeStages(recipe);
  if (!recipe.steps.some((s) => s.on === 'server')) {
    throw new UsageError(`recipe ${recipe.name} has no server-side step: there is nothing to paste on the server; run it from the client instead (npx tsx scripts/run-recipe.ts ${recipe.name} --host HOST)`);
  }
  const n = o.stage ?? 1;
  if (n < 1 || n > stages.length) throw new UsageError(`--stage ${n}: recipe ${recipe.name} has ${stages.length} stage${stages.length > 1 ? 's' : ''}`);
  const steps = stages[n - 1]!;
  const params = recipeParams(recipe, o.params);
  const host = o.host ?? 'HOST';
  const where = o.hostsFile ? `every host in ${o.hostsFile}` : `host ${host}`;
  const clientHost = o.hostsFile ? 'HOST' : host;
  const again = (k: number) => `npx tsx scripts/run-recipe.ts ${recipe.name} ${o.hostsFile ? `--hosts ${o.hostsFile}` : `--host ${host}`} --emit --stage ${k}${o.dryRun ? ' --dry-run' : ''}`;
  const clientLine = (step: RecipeStep) => {
    const visible = stepArgv(step, { host: clientHost, target: 'local', dryRun: !!o.dryRun, params }).filter((a) => a !== '--json' && a !== '--');
    return `npx tsx scripts/${step.script}.ts ${visible.join(' ')}`.trimEnd();
  };
  const serverSteps = steps.filter((s) => s.on === 'server');
  const serverNames = serverSteps.map((s) => s.name);
  const stopCheck = steps.at(-1)?.kind === 'check' && steps.at(-1)!.stopWhen.length ? steps.at(-1)! : null;
  const next = n < stages.length
    ? `From your workstation run: ${stopCheck ? clientLine(stopCheck) : 'the checks above'}. If it reports ${stopCheck?.stopWhen.join(' or ') ?? 'healthy'}, you are done; otherwise print and run stage ${n + 1}: ${again(n + 1)}`
    : steps.some((s) => s.kind === 'check')
      ? `From your workstation run: ${clientLine(steps.filter((s) => s.kind === 'check').at(-1)!)}`
      : 'Done.';

  const parts: string[] = [
    `# rdpfix recipe ${recipe.name}, stage ${n} of ${stages.length}: ${recipe.summary.replace(/\s+/g, ' ')}`,
    `# Generated by rdpfix for ${where}${o.dryRun ? ' (dry run: every step only inspects and reports what it would change)' : ''}.`,
    '# Run it in an elevated Windows PowerShell 5.1+ console on the server, or paste it into Azure Run command',
    `# (RunPowerShellScript). This stage runs: ${serverNames.join('; ')}.`,
    '# It stops at the first failed step. Every step prints its JSON result between ##rdpfix-result-begin##',
    `# and ##rdpfix-result-end##; the last line is one summary (at most ${SUMMARY_LIMIT} bytes) with every step's status.`,
    n < stages.length ? `# It then stops so that you can check from your workstation; stage ${n + 1} is the next, more drastic fix.` : '# This is the last stage.',
    "# Changes made by a pasted script are not in your workstation's rdpfix journal: each changing step",
    '# prints where its backup is on this server and the command that restores it.',
    "$ErrorActionPreference = 'Stop'",
    // Every value the composite uses is here, quoted once; the code below only refers to it.
    '$R = ' +
      psValue({
        Head: { rdpfix: 'summary', recipe: recipe.name, stage: `${n}/${stages.length}` },
        Done: n < stages.length ? 'check-now' : 'completed',
        Next: next,
        FailedNext: 'A step failed: read its result above; the backup and restore lines of the steps that changed something say how to put it back.',
        Steps: serverSteps.map((st) => ({ Id: st.id, Warning: `rdpfix: step ${recipe.steps.indexOf(st) + 1} (${st.name}) failed; stopping.` })),
      }),
    readPsFile('composite').functions.map((f) => f.text).join('\n\n'),
    '$rdpfixSteps = New-Object System.Collections.ArrayList',
    '$rdpfixGo = $true',
    '',
  ];
  for (const step of steps) {
    const num = recipe.steps.indexOf(step) + 1;
    if (step.on === 'client') {
      parts.push(`# Step ${num} (${step.kind === 'check' ? 'check' : 'client'}): ${step.name}`);
      parts.push(`#   From your workstation run: ${clientLine(step)}`);
      if (step.stopWhen.length) parts.push(`#   If it reports ${step.stopWhen.join(' or ')}, you are done: the later stages are not needed.`);
      if (step.expect.length) parts.push(`#   It should report ${step.expect.join(' or ')}.`);
      parts.push('');
      continue;
    }
    if (step.when) throw new UsageError(`step "${step.name}" runs only when ${step.when.step} is ${step.when.is.join(' or ')}: a pasted script cannot decide that; run the recipe with --target instead`);
    const k = serverSteps.indexOf(step);
    const argv = stepArgv(step, { host, target: 'local', dryRun: !!o.dryRun, params });
    const ps = await emitStep(step, argv);
    parts.push(
      `# Step ${num} (server): ${step.name}`,
      'if ($rdpfixGo) {',
      '$rdpfixOut = @(try { & {',
      ps.replace(/\s+$/, ''),
      "} } catch { 'rdpfix: the step stopped: ' + $_.Exception.Message })",
      '$rdpfixOut',
      `$rdpfixStep = Get-RdpStepResult -Output $rdpfixOut -Id $R.Steps[${k}].Id`,
      '[void]$rdpfixSteps.Add($rdpfixStep)',
      "if ($rdpfixStep.status -eq 'failed') {",
      '    $rdpfixGo = $false',
      `    Write-Warning -Message $R.Steps[${k}].Warning`,
      '}',
      '} else {',
      `    [void]$rdpfixSteps.Add([ordered]@{ id = $R.Steps[${k}].Id; status = 'not-run' })`,
      '}',
      '',
    );
  }
  parts.push(
    '$rdpfixHead = $R.Head',
    '$rdpfixHead.result = if ($rdpfixGo) { $R.Done } else { \'failed\' }',
    '$rdpfixHead.next = if ($rdpfixGo) { $R.Next } else { $R.FailedNext }',
    `Write-RdpSummary -Steps $rdpfixSteps -Head $rdpfixHead -MaxBytes ${SUMMARY_LIMIT}`,
    '',
  );
  return assertAscii(parts.join('\n'), `recipe ${recipe.name} stage ${n}`);
}

