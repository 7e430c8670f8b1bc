// Paste-able recipe stages (run-recipe --emit): each stage is one self-contained PowerShell script
// with the server-side steps up to the first check that may stop the recipe; the admin checks from
// the workstation before pasting the next. Each step's own script is what that script's --emit
// prints; around them, scripts/ps/composite.ps1 collects the results and prints one summary line.
import { spawn } from 'node:child_process';
import { UsageError } from './errors.ts';
import { assertAscii, psValue, RESULT_END } from './ps.ts';
import { parsePsFile, reachableFunctions, resolvePsFiles } from './ps-loader.ts';
import { scriptArgv, type Recipe, type RecipeStep } from './recipe.ts';
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
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, scriptArgv(step.script, args), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      // The script's whole message (yargs's can take two lines), without the fast path's notes.
      const said = err.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('rdpfix: ')).join(' ').replace(/^error: /, '');
      const why = said.slice(0, 400) || out.trim().split('\n')[0] || `exit code ${code}`;
      if (code !== 0) return reject(new UsageError(`step "${step.name}": ${step.script} --emit failed: ${why}`));
      if (!out.startsWith('# rdpfix ') || !out.includes(RESULT_END)) {
        return reject(new UsageError(`step "${step.name}": ${step.script} --emit printed something that is not a generated script (${JSON.stringify(out.slice(0, 60))})`));
      }
      resolve(out);
    });
  });
}

/** What the in-server handshake check (scripts/ps/handshake.ps1) can name from inside the server. */
export const IN_SERVER_CAUSES = ['healthy', 'no-listener', 'listener-hung', 'security-layer-mismatch', 'nla-required', 'certificate-key-unusable', 'certificate-expired', 'tls-version-mismatch', 'closed-by-server', 'not-rdp'] as const;

/**
 * Can the server answer this check itself? A probe-rdp or diagnose of the host alone (no options
 * about the path: MTU, UDP, latency) whose stop_when / expect outcomes are all causes the in-server
 * handshake check names. The path from the user's network stays a client check, printed at the end.
 */
export function inServerCheck(step: RecipeStep): boolean {
  if (step.kind !== 'check' || step.on !== 'client' || !['probe-rdp', 'diagnose'].includes(step.script)) return false;
  if (!step.args.every((a) => a === '{host}')) return false;
  const outcomes = [...step.stopWhen, ...step.expect];
  return outcomes.length > 0 && outcomes.every((o) => (IN_SERVER_CAUSES as readonly string[]).includes(o));
}

/**
 * A recipe as paste-able stages. A stage runs its server steps in order and the checks the server can
 * answer itself (inServerCheck) between them, stopping as soon as one says a stop_when outcome,
 * exactly as the runner does with the client probe. Only a check that may stop the recipe and
 * needs the client (the path from the user's network) ends a stage: the admin runs it from the
 * workstation before pasting the next. Stages without a server step are merged into the next one.
 */
export function recipeStages(recipe: Recipe): RecipeStep[][] {
  const stages: RecipeStep[][] = [[]];
  for (const step of recipe.steps) {
    stages.at(-1)!.push(step);
    if (step.kind === 'check' && step.stopWhen.length && !inServerCheck(step) && stages.at(-1)!.some((s) => s.on === 'server')) stages.push([]);
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
 * checks the server can answer run the in-server handshake check (scripts/ps/handshake.ps1), and
 * the composite stops as soon as one says a stop_when outcome, or at the first failed step; a step
 * whose `when` is not met is skipped with the reason. The last line is one summary. Client steps
 * and the client's view of the checks are printed as what to run from the workstation.
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
  // What runs in the script: the server steps and the checks the server answers, in recipe order.
  const ran = steps.filter((s) => s.on === 'server' || inServerCheck(s));
  const ranIds = new Set(ran.map((s) => s.id));
  const checks = ran.filter((s) => s.kind === 'check' && s.on === 'client');
  const stopCheck = steps.at(-1)?.kind === 'check' && steps.at(-1)!.stopWhen.length && !inServerCheck(steps.at(-1)!) ? steps.at(-1)! : null;
  const lastCheck = steps.filter((s) => s.kind === 'check').at(-1);
  const pathCheck = lastCheck ? ` From your workstation, check the path from your network too (the server cannot see it): ${clientLine(lastCheck)}` : '';
  const next = n < stages.length
    ? `From your workstation run: ${stopCheck ? clientLine(stopCheck) : 'the checks above'}. If it reports ${stopCheck?.stopWhen.join(' or ') ?? 'healthy'}, you are done; otherwise print and run stage ${n + 1}: ${again(n + 1)}`
    : lastCheck ? `From your workstation run: ${clientLine(lastCheck)}` : 'Done.';
  for (const step of ran) {
    if (step.when && !ranIds.has(step.when.step)) {
      throw new UsageError(`step "${step.name}" runs only when ${step.when.step} is ${step.when.is.join(' or ')}, which a pasted script cannot see (it runs on the workstation); run the recipe with --target instead`);
    }
  }
  const stepsValue = ran.map((st) => ({
    Id: st.id,
    Warning: `rdpfix: step ${recipe.steps.indexOf(st) + 1} (${st.name}) failed; stopping.`,
    StopWhen: [...st.stopWhen],
    Expect: [...st.expect],
    When: st.when ? { Step: st.when.step, Is: [...st.when.is] } : null,
    Continue: st.onFailure === 'continue',
    GoOn: `rdpfix: step ${recipe.steps.indexOf(st) + 1} (${st.name}) failed; the next fix runs (on_failure: continue).`,
  }));
  const functions = reachableFunctions(resolvePsFiles(['windows', 'composite']), ['Get-RdpStepResult', 'Write-RdpSummary', 'Test-RdpRecipeWhen', ...(checks.length ? ['Invoke-RdpRecipeCheck'] : [])]);
  // Each server step's own script (what its --emit prints), then its functions defined once for the
  // whole composite: the steps share most of them (two restart-termserv steps, the regeneration
  // inside clear-machinekeys), and Run Command's practical limit is about 150 KB. A function is
  // taken out of a step only where its text is exactly the shared one; the step's code then calls
  // the same text, defined one scope up.
  const shared = new Map<string, string>(functions.map((f) => [f.name, f.text]));
  const stepScripts = new Map<RecipeStep, string>();
  for (const step of ran.filter((x) => x.on === 'server')) {
    let ps = await emitStep(step, stepArgv(step, { host, target: 'local', dryRun: !!o.dryRun, params }));
    // Only the script's function section (after its $Result line, before its `try {`) is read:
    // its $P block may carry functions as quoted text (toggle-nla's expiry task).
    const from = ps.indexOf('\n$Result = [ordered]@{ step = ');
    const to = from < 0 ? -1 : ps.indexOf('\ntry {\n', from);
    if (from >= 0 && to > from) {
      const head = ps.slice(0, from);
      let section = ps.slice(from, to + 1);
      for (const fn of parsePsFile(step.script, section, { lenient: true }).functions) {
        const have = shared.get(fn.name);
        if (have !== undefined && have !== fn.text) continue;
        if (section.split(`\n${fn.text}\n`).length !== 2) continue;
        if (have === undefined) shared.set(fn.name, fn.text);
        section = section.replace(`\n${fn.text}\n`, '\n');
      }
      ps = head + section + ps.slice(to + 1);
    }
    stepScripts.set(step, ps);
  }

  const parts: string[] = [
    `# rdpfix recipe ${recipe.name}, stage ${n} of ${stages.length}: ${recipe.summary.replace(/\s+/g, ' ')}`,
    `# Generated by rdpfix for ${where}${o.dryRun ? ' (dry run: every step only inspects and reports what it would change)' : ''}.`,
    ...(Object.keys(recipe.params).length ? [`# Parameters: ${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(', ').replace(/[^\x20-\x7e]/g, '?')}.`] : []),
    '# Run it in an elevated Windows PowerShell 5.1+ console on the server, or paste it into Azure Run command',
    `# (RunPowerShellScript). This stage runs: ${ran.map((s) => (s.on === 'server' ? s.name : `${s.name} (the in-server check)`)).join('; ')}.`,
    ...(checks.length ? ['# Between the fixes the server checks itself: it opens its own RDP listener as a client does', '# (TCP, X.224, TLS) and stops as soon as that says healthy, so no more drastic fix runs than needed.'] : []),
    ...((): string[] => {
      const goOn = ran.filter((s) => s.onFailure === 'continue').map((s) => s.name);
      return goOn.length
        ? [`# It stops at the first failed step, except that a failure of ${goOn.join(' or ')} goes on to the next`, '# step (the recipe says so: the next, more drastic fix may still work).']
        : ['# It stops at the first failed step.'];
    })(),
    '# Every step prints its JSON result between ##rdpfix-result-begin##',
    `# and ##rdpfix-result-end##; the last line is one summary (at most ${SUMMARY_LIMIT} bytes) with every step's status.`,
    n < stages.length ? `# It then stops so that you can check from your workstation; stage ${n + 1} is the next, more drastic fix.` : '# This is the last stage.',
    "# Changes made by a pasted script are not in your workstation's rdpfix journal: each changing step",
    '# keeps a record next to its backup on this server and prints the command that restores it.',
    "$ErrorActionPreference = 'Stop'",
    // Every value the composite uses is here, quoted once; the code below only refers to it.
    '$R = ' +
      psValue({
        Head: { rdpfix: 'summary', recipe: recipe.name, stage: `${n}/${stages.length}` },
        Done: n < stages.length ? 'check-now' : 'completed',
        Next: next,
        HealthyNext: `The server's own check says healthy; the later fixes were not needed.${pathCheck}`,
        NotFixedNext: `Every fix ran and the server's own check still does not say ${lastCheck?.expect.join(' or ') || 'healthy'}: read the steps' results above; the backup and restore lines of the steps that changed something say how to put it back.${pathCheck}`,
        FailedNext: 'A step failed: read its result above; the backup and restore lines of the steps that changed something say how to put it back.',
        Steps: stepsValue,
      }),
    '# The functions of every step below, each defined once (the steps are their --emit scripts without them).',
    [...shared.values()].join('\n\n'),
    '$rdpfixSteps = New-Object System.Collections.ArrayList',
    '$rdpfixOutcome = @{}',
    '$rdpfixGo = $true',
    "$rdpfixEnd = ''",
    '',
  ];
  for (const step of steps) {
    const num = recipe.steps.indexOf(step) + 1;
    const k = ran.indexOf(step);
    if (k < 0) {
      parts.push(`# Step ${num} (${step.kind === 'check' ? 'check' : 'client'}): ${step.name}`);
      parts.push(`#   From your workstation run: ${clientLine(step)}`);
      if (step.stopWhen.length) parts.push(`#   If it reports ${step.stopWhen.join(' or ')}, you are done: the later stages are not needed.`);
      if (step.expect.length) parts.push(`#   It should report ${step.expect.join(' or ')}.`);
      parts.push('');
      continue;
    }
    // Not run: the composite stopped (healthy, or a step failed); skipped: its `when` is not met.
    const gate = [
      'if (-not $rdpfixGo) {',
      `    [void]$rdpfixSteps.Add([ordered]@{ id = $R.Steps[${k}].Id; status = 'not-run' })`,
      `} elseif (-not (Test-RdpRecipeWhen -Step $R.Steps[${k}] -Outcome $rdpfixOutcome)) {`,
      `    [void]$rdpfixSteps.Add([ordered]@{ id = $R.Steps[${k}].Id; status = 'skipped'; reason = (Test-RdpRecipeWhen -Step $R.Steps[${k}] -Outcome $rdpfixOutcome -Reason) })`,
      '} else {',
    ];
    if (step.on !== 'server') {
      parts.push(
        `# Step ${num} (check, on the server itself): ${step.name}`,
        `#   The in-server handshake check; from your workstation the same check is: ${clientLine(step)}`,
        ...gate,
        `$rdpfixStep = Invoke-RdpRecipeCheck -Id $R.Steps[${k}].Id`,
        '[void]$rdpfixSteps.Add($rdpfixStep)',
        `$rdpfixOutcome[$R.Steps[${k}].Id] = $rdpfixStep.cause`,
        `Write-Output ('rdpfix: step ${num} (the in-server check): ' + $rdpfixStep.cause + ' ' + $rdpfixStep.detail)`,
        "if ($rdpfixStep.status -eq 'failed') {",
        '    $rdpfixGo = $false',
        `    Write-Warning -Message $R.Steps[${k}].Warning`,
        `} elseif (@($R.Steps[${k}].StopWhen) -contains $rdpfixStep.cause) {`,
        '    $rdpfixGo = $false',
        "    $rdpfixEnd = 'healthy'",
        `} elseif (@($R.Steps[${k}].Expect).Count -gt 0 -and @($R.Steps[${k}].Expect) -notcontains $rdpfixStep.cause) {`,
        "    $rdpfixEnd = 'not-fixed'",
        '}',
        '}',
        '',
      );
      continue;
    }
    const ps = stepScripts.get(step)!;
    parts.push(
      `# Step ${num} (server): ${step.name}`,
      ...gate,
      '$rdpfixOut = @(try { & {',
      ps.replace(/\s+$/, ''),
      "} } catch { 'rdpfix: the step stopped: ' + $_.Exception.Message })",
      '$rdpfixOut',
      `$rdpfixStep = Get-RdpStepResult -Output $rdpfixOut -Id $R.Steps[${k}].Id`,
      '[void]$rdpfixSteps.Add($rdpfixStep)',
      `$rdpfixOutcome[$R.Steps[${k}].Id] = $(if ($rdpfixStep.Contains('cause') -and $rdpfixStep.cause) { $rdpfixStep.cause } else { $rdpfixStep.status })`,
      `if ($rdpfixStep.status -eq 'failed' -and $R.Steps[${k}].Continue -and -not $rdpfixStep.Contains('refused')) {`,
      `    Write-Warning -Message $R.Steps[${k}].GoOn`,
      "} elseif ($rdpfixStep.status -eq 'failed') {",
      '    $rdpfixGo = $false',
      "    $rdpfixEnd = 'failed'",
      `    Write-Warning -Message $R.Steps[${k}].Warning`,
      '}',
      '}',
      '',
    );
  }
  parts.push(
    '$rdpfixHead = $R.Head',
    "if (-not $rdpfixEnd) { $rdpfixEnd = $(if ($rdpfixGo) { $R.Done } else { 'failed' }) }",
    '$rdpfixHead.result = $rdpfixEnd',
    "if ($rdpfixEnd -eq 'healthy') { $rdpfixHead.next = $R.HealthyNext } elseif ($rdpfixEnd -eq 'not-fixed') { $rdpfixHead.next = $R.NotFixedNext } elseif ($rdpfixEnd -eq 'failed') { $rdpfixHead.next = $R.FailedNext } else { $rdpfixHead.next = $R.Next }",
    `Write-RdpSummary -Steps $rdpfixSteps -Head $rdpfixHead -MaxBytes ${SUMMARY_LIMIT}`,
    '',
  );
  return assertAscii(parts.join('\n'), `recipe ${recipe.name} stage ${n}`);
}
