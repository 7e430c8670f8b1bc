// run-recipe.ts: chain rdpfix scripts into a scenario fix sequence (recipes/*.yaml) for one host or
// a fleet. Use it once diagnose has named the cause (diagnose prints the recipe to run, and
// `diagnose --fix` calls this runner). It prints the plan, asks before changing anything, runs the
// steps in order, stops at the first failure (or as soon as a check says the host is healthy, so
// the least drastic fix that works is the one that stays), and journals the run so that `--resume`
// continues after a crash and `undo.ts --last --yes` (or `--rollback`) undoes every change it made.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeTarget, parseTarget, TARGET_HELP } from './lib/channels.ts';
import { isResolved, resolveHost } from './lib/dns.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { readHostsFile, type HostsLine } from './lib/hosts.ts';
import { journalDir, readRunFiles, type RunFileFields } from './lib/journal.ts';
import { chalk, confirm, printJson, statusWord, withSpinner } from './lib/output.ts';
import { psQuote, RESULT_END } from './lib/ps.ts';
import { listRecipes, loadRecipe, scriptsDir, stepArgs, type Recipe, type RecipeStep } from './lib/recipe.ts';
import { formatHostPort, validateHost, validateInt, validateLocalPath } from './lib/validate.ts';

export type StepStatus = 'ok' | 'changed' | 'would-change' | 'skipped' | 'failed';

export interface StepOutcome {
  id: string;
  name: string;
  script: string;
  on: 'server' | 'client';
  status: StepStatus;
  /** The script's cause (probe/diagnose) or its status: what stop_when / expect / when compare. */
  outcome: string;
  detail: string;
  ms: number;
  exitCode: number | null;
}

/** A run's saved state (journal/runs/RUN_ID.json, checked on read by lib/journal.ts). */
export interface RunState extends RunFileFields {
  /** How the run ended: 'fixed' (a check said healthy), 'completed', 'failed', 'dry-run'. */
  result?: 'fixed' | 'completed' | 'failed' | 'dry-run';
  steps: StepOutcome[];
}

/** Runs one step's script and returns its exit code and parsed --json document. */
export type StepExecutor = (
  step: RecipeStep,
  argv: string[],
  env: Record<string, string>,
) => Promise<{ exitCode: number | null; json: Record<string, unknown> | null; stderr: string }>;

/** Scripts whose run steps change state (and so get --dry-run in a dry run). */
const READ_ONLY = new Set(['inspect-server', 'probe-rdp', 'diagnose', 'test-vpn-latency']);
export function changesState(step: RecipeStep): boolean {
  if (step.kind === 'check' || READ_ONLY.has(step.script)) return false;
  // lower-mtu --probe alone only measures; with --auto (or --mtu, --revert) it sets the MTU.
  if (step.script === 'lower-mtu') return ['--auto', '--mtu', '--revert'].some((f) => step.args.includes(f));
  return true;
}

/**
 * The argv a step runs with (after the script path). Values can never be read as options: an
 * option's value is joined to it (`--for=-1h`), positional values go after `--`.
 */
export function stepArgv(step: RecipeStep, opts: { host: string; target: string; dryRun: boolean; params: Record<string, string> }): string[] {
  const hostname = opts.host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const { args, positionals } = stepArgs(step, { ...opts.params, host: opts.host, hostname });
  if (step.on === 'server') args.push(`--target=${opts.target}`);
  if (opts.dryRun && changesState(step)) args.push('--dry-run');
  args.push('--json');
  return positionals.length ? [...args, '--', ...positionals] : args;
}

/** The recipe's parameter defaults overlaid with the values given on the command line. */
export function recipeParams(recipe: Recipe, given: Record<string, string> = {}): Record<string, string> {
  const defaults = Object.entries(recipe.params).flatMap(([k, p]) => (p.default !== undefined ? [[k, p.default] as const] : []));
  return { ...Object.fromEntries(defaults), ...given };
}

/** Default executor: the script as its own process, exactly as a user would run it. */
export const spawnStep: StepExecutor = (step, argv, env) =>
  new Promise((resolve) => {
    const script = join(scriptsDir(), `${step.script}.ts`);
    const p = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), script, ...argv], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ exitCode: code, json: lastJson(out), stderr: err }));
  });

function lastJson(text: string): Record<string, unknown> | null {
  const lines = text.trim().split('\n').reverse();
  for (const l of lines) {
    try {
      const v = JSON.parse(l) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // not this line
    }
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- run state (resume)

function runsDir(dir?: string): string {
  return join(journalDir(dir), 'runs');
}

export function saveRun(state: RunState, dir?: string): void {
  const d = runsDir(dir);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const tmp = join(d, `.${state.runId}.${randomBytes(3).toString('hex')}.tmp`);
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, join(d, `${state.runId}.json`));
}

/** Every valid saved run, oldest first (a damaged or foreign file is skipped: lib/journal.ts names it). */
export function loadRuns(dir?: string): RunState[] {
  return readRunFiles<RunState>(dir).runs;
}

/** The run to resume: by id, or the newest unfinished one. */
export function findResumable(id: string | true, dir?: string): RunState {
  const { runs, damaged } = readRunFiles<RunState>(dir);
  const run = id === true ? runs.filter((r) => !r.finished).at(-1) : runs.find((r) => r.runId === id);
  const skipped = damaged.length ? ` (skipped ${damaged.length} damaged run file${damaged.length > 1 ? 's' : ''}: ${damaged.map((d) => `${d.file}: ${d.why}`).join('; ')})` : '';
  if (!run) throw new UsageError(`${id === true ? 'no unfinished recipe run to resume' : `no recipe run with id ${JSON.stringify(id)}`}${skipped}`);
  if (run.finished) throw new UsageError(`run ${run.runId} already finished (${run.result})`);
  return run;
}

// ---------------------------------------------------------------- the runner

export interface RunOptions {
  host: string;
  target: string;
  dryRun: boolean;
  params?: Record<string, string>;
  journal?: string;
  /** Continue this saved run (steps already finished are not run again). */
  resume?: RunState;
  /** Called before and after each step (human output). */
  onStep?: (step: RecipeStep, index: number, outcome?: StepOutcome) => void;
  exec?: StepExecutor;
  /** Wrap a step's execution (spinner). */
  wrap?: <T>(title: string, work: () => Promise<T>) => Promise<T>;
}

function outcomeOf(json: Record<string, unknown> | null): string {
  if (!json) return 'failed';
  if (typeof json.cause === 'string') return json.cause;
  return typeof json.status === 'string' ? json.status : 'failed';
}

function detailOf(json: Record<string, unknown> | null, stderr: string): string {
  if (!json) return stderr.trim().split('\n').at(-1)?.slice(0, 200) || 'no JSON result';
  for (const k of ['summary', 'verdict', 'message', 'error', 'reason']) if (typeof json[k] === 'string') return (json[k] as string).slice(0, 200);
  if (typeof json.cause === 'string') return `cause: ${json.cause}`;
  return '';
}

export async function runRecipe(recipe: Recipe, o: RunOptions): Promise<RunState> {
  const exec = o.exec ?? spawnStep;
  const wrap = o.wrap ?? (<T,>(_t: string, w: () => Promise<T>) => w());
  const params = recipeParams(recipe, o.params);
  if (!o.resume) await assertResolves(o.host);
  const state: RunState = o.resume ?? {
    runId: `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${recipe.name}-${randomBytes(3).toString('hex')}`,
    recipe: recipe.name,
    recipeFile: recipe.file,
    host: o.host,
    target: o.target,
    dryRun: o.dryRun,
    params,
    started: new Date().toISOString(),
    steps: [],
  };
  saveRun(state, o.journal);
  const env: Record<string, string> = { RDPFIX_RUN_ID: state.runId, RDPFIX_JOURNAL: journalDir(o.journal) };
  const byId = new Map(state.steps.map((s) => [s.id, s]));
  let wouldChangeBefore = state.steps.some((s) => s.status === 'would-change');

  for (const [i, step] of recipe.steps.entries()) {
    if (byId.has(step.id)) continue; // finished before a crash: resume after it
    o.onStep?.(step, i);
    const t0 = performance.now();
    const finish = (status: StepStatus, outcome: string, detail: string, exitCode: number | null = null): StepOutcome => {
      const r: StepOutcome = { id: step.id, name: step.name, script: step.script, on: step.on, status, outcome, detail, ms: Math.round(performance.now() - t0), exitCode };
      state.steps.push(r);
      byId.set(step.id, r);
      saveRun(state, o.journal);
      o.onStep?.(step, i, r);
      return r;
    };

    if (step.when) {
      const prev = byId.get(step.when.step);
      if (!prev || !step.when.is.includes(prev.outcome)) {
        finish('skipped', 'skipped', `only when ${step.when.step} is ${step.when.is.join(' or ')} (it was ${prev?.outcome ?? 'not run'})`);
        continue;
      }
    }
    if (step.platform && step.platform !== process.platform) {
      finish('skipped', 'skipped', `a ${step.platform === 'win32' ? 'Windows' : step.platform}-client step; this machine is ${process.platform}`);
      continue;
    }

    const argv = stepArgv(step, { host: state.host, target: state.target, dryRun: state.dryRun, params: state.params });
    const r = await wrap(`${i + 1}. ${step.name}`, () => exec(step, argv, env));
    const outcome = outcomeOf(r.json);
    const detail = detailOf(r.json, r.stderr);
    const scriptStatus = (typeof r.json?.status === 'string' ? r.json.status : 'failed') as StepStatus;

    if (step.kind === 'check') {
      if (r.json === null || r.exitCode === 2) {
        finish('failed', 'failed', detail, r.exitCode);
        break;
      }
      if (state.dryRun) {
        // Check mode is a simulation: later checks depend on changes that were not made.
        finish('ok', outcome, wouldChangeBefore ? `${outcome} now; depends on the steps above that would change` : outcome, r.exitCode);
        continue;
      }
      if (step.stopWhen.includes(outcome)) {
        finish('ok', outcome, `${outcome}: stopping here, the fix so far is enough`, r.exitCode);
        state.result = 'fixed';
        break;
      }
      if (step.expect.length && !step.expect.includes(outcome)) {
        finish('failed', outcome, `expected ${step.expect.join(' or ')}, got ${outcome}${detail && detail !== `cause: ${outcome}` ? ` (${detail})` : ''}`, r.exitCode);
        break;
      }
      finish('ok', outcome, step.stopWhen.length ? `${outcome}: not fixed yet, continuing` : outcome, r.exitCode);
      continue;
    }

    const status: StepStatus = r.exitCode === 2 || r.json === null ? 'failed' : scriptStatus;
    const done = finish(['ok', 'changed', 'would-change', 'skipped', 'failed'].includes(status) ? status : 'failed', outcome, detail, r.exitCode);
    if (done.status === 'would-change') wouldChangeBefore = true;
    if (done.status === 'failed') break;
    if (step.stopWhen.includes(outcome)) {
      state.result = 'fixed';
      break;
    }
  }

  const failed = state.steps.some((s) => s.status === 'failed');
  state.result = failed ? 'failed' : state.dryRun ? 'dry-run' : (state.result ?? 'completed');
  state.finished = new Date().toISOString();
  saveRun(state, o.journal);
  return state;
}

// ---------------------------------------------------------------- --emit: paste-able scripts

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

/** PowerShell shared by every composite: collect each step's result, print one summary line last. */
const COMPOSITE_FUNCTIONS = `function Get-RdpfixStepResult {
    # The step's JSON result is the line before the last end marker of its output.
    param([object[]]$Output, [string]$Id)
    $r = [ordered]@{ id = $Id; status = 'failed' }
    $end = -1
    for ($i = $Output.Count - 1; $i -ge 0; $i--) {
        if ([string]$Output[$i] -eq '${RESULT_END}') { $end = $i; break }
    }
    if ($end -lt 1) { $r.error = 'the step printed no result'; return $r }
    try { $j = [string]$Output[$end - 1] | ConvertFrom-Json } catch { $r.error = 'the step result is not JSON'; return $r }
    if ($j.PSObject.Properties['status']) { $r.status = [string]$j.status }
    foreach ($k in @('error', 'backup', 'restore')) {
        if ($j.PSObject.Properties[$k] -and $j.$k) { $r[$k] = (@($j.$k) | ForEach-Object { [string]$_ }) -join ' ; ' }
    }
    return $r
}
function Write-RdpfixSummary {
    # One JSON line of at most ${SUMMARY_LIMIT} bytes, whatever the steps said: details are cut
    # shorter until it fits, every step's id and status always stay.
    param([object[]]$Steps, [System.Collections.IDictionary]$Head)
    $line = ''
    foreach ($keep in @(600, 200, 60, 0)) {
        $list = @(foreach ($s in $Steps) {
            $o = [ordered]@{ id = $s.id; status = $s.status }
            if ($keep -gt 0) {
                foreach ($k in @('error', 'backup', 'restore')) {
                    if ($s.Contains($k)) {
                        $v = [string]$s[$k]
                        if ($v.Length -gt $keep) { $v = $v.Substring(0, $keep - 3) + '...' }
                        $o[$k] = $v
                    }
                }
            }
            $o
        })
        $doc = [ordered]@{}
        foreach ($k in $Head.Keys) { if ($k -ne 'next') { $doc[$k] = $Head[$k] } }
        $doc.steps = $list
        if ($Head.Contains('next')) {
            $doc.next = [string]$Head['next']
            if ($keep -eq 0 -and $doc.next.Length -gt 300) { $doc.next = $doc.next.Substring(0, 297) + '...' }
        }
        $line = $doc | ConvertTo-Json -Compress -Depth 5
        if ([System.Text.Encoding]::UTF8.GetByteCount($line) -le ${SUMMARY_LIMIT}) { break }
    }
    Write-Output $line
}`;

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
  const serverNames = steps.filter((s) => s.on === 'server').map((s) => s.name);
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
    COMPOSITE_FUNCTIONS,
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
    const argv = stepArgv(step, { host, target: 'local', dryRun: !!o.dryRun, params });
    const ps = await emitStep(step, argv);
    parts.push(
      `# Step ${num} (server): ${step.name}`,
      'if ($rdpfixGo) {',
      '$rdpfixOut = @(try { & {',
      ps.replace(/\s+$/, ''),
      '} } catch { "rdpfix: the step stopped: $($_.Exception.Message)" })',
      '$rdpfixOut',
      `$rdpfixStep = Get-RdpfixStepResult -Output $rdpfixOut -Id ${psQuote(step.id)}`,
      '[void]$rdpfixSteps.Add($rdpfixStep)',
      "if ($rdpfixStep.status -eq 'failed') {",
      '    $rdpfixGo = $false',
      `    Write-Warning ${psQuote(`rdpfix: step ${num} (${step.name}) failed; stopping.`)}`,
      '}',
      '} else {',
      `    [void]$rdpfixSteps.Add([ordered]@{ id = ${psQuote(step.id)}; status = 'not-run' })`,
      '}',
      '',
    );
  }
  parts.push(
    `$rdpfixHead = [ordered]@{ rdpfix = 'summary'; recipe = ${psQuote(recipe.name)}; stage = ${psQuote(`${n}/${stages.length}`)} }`,
    `$rdpfixHead.result = if ($rdpfixGo) { ${psQuote(n < stages.length ? 'check-now' : 'completed')} } else { 'failed' }`,
    `$rdpfixHead.next = if ($rdpfixGo) { ${psQuote(next)} } else { ${psQuote("A step failed: read its result above; the backup and restore lines of the steps that changed something say how to put it back.")} }`,
    'Write-RdpfixSummary -Steps $rdpfixSteps -Head $rdpfixHead',
    '',
  );
  return parts.join('\n');
}

// ---------------------------------------------------------------- fleet

export interface FleetHost {
  host: string;
  target: string;
  line: number;
}

/**
 * The fleet's hosts (lib/hosts.ts): a line without a TARGET uses the --target value, with `{host}`
 * replaced by the host name (e.g. 'winrm://{host}').
 */
export function fleetHosts(lines: HostsLine[], file: string, targetTemplate: string): FleetHost[] {
  return lines.map((l) => {
    const target = l.target ?? targetTemplate.replaceAll('{host}', l.host.includes(':') ? `[${l.host}]` : l.host);
    try {
      parseTarget(target);
    } catch (e) {
      throw new UsageError(`${file}:${l.line}: ${(e as Error).message}`);
    }
    return { host: formatHostPort(l), target, line: l.line };
  });
}

/** Run the recipe on every host, at most `parallel` at once; one host failing never stops the others. */
export async function runFleet(recipe: Recipe, hosts: FleetHost[], parallel: number, o: Omit<RunOptions, 'host' | 'target' | 'resume'>): Promise<RunState[]> {
  const results: RunState[] = new Array(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      const h = hosts[i]!;
      try {
        results[i] = await runRecipe(recipe, { ...o, host: h.host, target: h.target });
      } catch (e) {
        const now = new Date().toISOString();
        results[i] = {
          runId: '', recipe: recipe.name, recipeFile: recipe.file, host: h.host, target: h.target, dryRun: o.dryRun, params: o.params ?? {}, started: now, finished: now, result: 'failed',
          steps: [{ id: 'runner', name: 'runner', script: 'run-recipe', on: 'client', status: 'failed', outcome: 'failed', detail: (e as Error).message, ms: 0, exitCode: null }],
        };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, hosts.length) }, worker));
  return results;
}

// ---------------------------------------------------------------- CLI

function planLines(recipe: Recipe, host: string, target: string, dryRun: boolean): string[] {
  const lines = [
    `${chalk.bold(`Recipe ${recipe.name}`)}: ${recipe.summary}`,
    `Host ${host}; server steps run via ${target}${dryRun ? chalk.cyan(' (dry run: inspect only, nothing is changed)') : ''}`,
    '',
  ];
  recipe.steps.forEach((s, i) => {
    const tags = [
      changesState(s) ? chalk.yellow('changes state') : '',
      s.stopWhen.length ? `stop when ${s.stopWhen.join('/')}` : '',
      s.expect.length ? `expect ${s.expect.join('/')}` : '',
      s.when ? `only if ${s.when.step} is ${s.when.is.join('/')}` : '',
      s.platform ? `${s.platform} only` : '',
    ].filter(Boolean);
    lines.push(`  ${String(i + 1).padStart(2)}. [${s.on}] ${s.name}${tags.length ? chalk.dim(` — ${tags.join(', ')}`) : ''}`);
  });
  return lines;
}

function recap(state: RunState): string {
  const n = (s: StepStatus) => state.steps.filter((x) => x.status === s).length;
  return `ok=${n('ok')} changed=${n('changed')} would-change=${n('would-change')} skipped=${n('skipped')} failed=${n('failed')}`;
}

async function undoRun(runId: string, json: boolean): Promise<number> {
  const p = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(scriptsDir(), 'undo.ts'), '--run', runId, '--yes', ...(json ? ['--json'] : [])], {
    stdio: ['ignore', json ? 'pipe' : 'inherit', 'inherit'],
  });
  return new Promise((resolve) => p.on('close', (c) => resolve(c ?? 1)));
}

export async function main(argv: string[]): Promise<number> {
  const recipes = listRecipes();
  const args = await makeCli(argv, 'run-recipe')
    .strict(false)
    .strictOptions(true) // one positional (the recipe), every option checked
    .usage(`$0 RECIPE --host HOST[:PORT] [--target CHANNEL] [options]\n\nRun a scenario fix sequence: plan, confirm, run, verify, roll back, resume.\nRecipes: ${recipes.join(', ')}`)
    .option('host', { type: 'string', describe: 'the RDP host (client-side checks probe it)' })
    .option('hosts', { type: 'string', describe: 'fleet: file with one HOST[:PORT] [TARGET] per line (# comments)' })
    .option('parallel', { type: 'number', default: 16, describe: 'fleet: hosts handled at once' })
    .option('target', { type: 'string', default: 'local', describe: `${TARGET_HELP}; in fleet mode {host} is replaced by each host` })
    .option('param', { type: 'array', string: true, default: [] as string[], describe: 'recipe parameter NAME=VALUE (repeatable)' })
    .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'do not ask for confirmation' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'run every step in inspect-only mode against the real targets' })
    .option('rollback', { type: 'boolean', default: false, describe: 'on failure, undo every change this run made (newest first)' })
    .option('resume', { type: 'string', describe: 'continue an interrupted run after its last finished step (RUN_ID, or empty for the newest)' })
    .option('emit', { type: 'boolean', default: false, describe: 'print the PowerShell of one stage of the server-side steps, for pasting; runs nothing' })
    .option('stage', { type: 'number', describe: 'with --emit: which stage to print (1 = the least drastic fix; each stage ends at a check that may stop the recipe)' })
    .option('list', { type: 'boolean', default: false, describe: 'list the recipes' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan and every step result as JSON' })
    .option('journal', { type: 'string', describe: 'journal folder (default ~/.rdpfix/journal)' })
    .example('$0 azure-vm-cert --host vm --target azure://S/RG/VM', 'fix an Azure VM that drops RDP at once')
    .example('$0 vpn-mtu --host vm1.contoso.com --dry-run', 'see what the VPN MTU fix would change')
    .example('$0 azure-vm-cert --host 10.0.0.4 --emit > fix.ps1', 'stage 1 of the fix, to paste on the server')
    .example('$0 service-down --hosts vms --target winrm://{host}', 'a fleet (vms: one HOST[:PORT] [TARGET] a line)')
    .example('$0 --resume', 'continue the newest interrupted run')
    .epilog('Undo everything the last run changed: npx tsx scripts/undo.ts --last --yes\nA pasted script is not in the journal: it prints its backups and the commands that restore them.')
    .parseAsync();

  const json = args.json;
  if (args.journal !== undefined) validateLocalPath(args.journal, '--journal');
  if (args.list) {
    const docs = recipes.map((r) => loadRecipe(r)).map((r) => ({ name: r.name, summary: r.summary, fixes: r.fixes, steps: r.steps.length }));
    if (json) printJson({ status: 'ok', recipes: docs });
    else for (const d of docs) process.stdout.write(`${chalk.bold(d.name.padEnd(18))} ${d.summary}\n${' '.repeat(19)}${chalk.dim(`fixes: ${d.fixes.join(', ')}`)}\n`);
    return 0;
  }

  const params: Record<string, string> = {};
  for (const p of args.param as string[]) {
    const m = /^([a-z][a-z0-9_]*)=(.*)$/.exec(p);
    if (!m) throw new UsageError(`invalid --param ${JSON.stringify(p)}: expected NAME=VALUE`);
    params[m[1]!] = m[2]!;
  }

  // --emit prints and never runs anything, in any mode.
  if (args.emit) {
    for (const [flag, given] of [['--resume', args.resume !== undefined], ['--rollback', args.rollback], ['--json', json]] as const) {
      if (given) throw new UsageError(`--emit prints a script and runs nothing: it cannot be combined with ${flag}`);
    }
  } else if (args.stage !== undefined) {
    throw new UsageError('--stage goes with --emit');
  }

  // Resume: everything comes from the saved run.
  if (args.resume !== undefined) {
    const saved = findResumable(args.resume === '' ? true : args.resume, args.journal);
    const recipe = loadRecipe(saved.recipeFile);
    if (!json) process.stdout.write(`Resuming run ${saved.runId} (${saved.steps.length} of ${recipe.steps.length} steps done)\n`);
    return finishRun(recipe, await runRecipe(recipe, { host: saved.host, target: saved.target, dryRun: saved.dryRun, params: saved.params, resume: saved, journal: args.journal, ...humanHooks(json) }), args.rollback, json);
  }

  if (args._.length > 1) throw new UsageError(`expected one recipe, got ${args._.map((a) => JSON.stringify(String(a))).join(' ')}`);
  const name = args._[0] !== undefined ? String(args._[0]) : undefined;
  if (!name) throw new UsageError(`which recipe? expected one of ${recipes.join(', ')}`);
  const recipe = loadRecipe(name);
  for (const [k, v] of Object.entries(params)) {
    const p = recipe.params[k];
    if (!p) throw new UsageError(`recipe ${recipe.name} has no parameter ${JSON.stringify(k)}${Object.keys(recipe.params).length ? `; it has ${Object.keys(recipe.params).join(', ')}` : ''}`);
    if (p.values && !p.values.includes(v)) throw new UsageError(`invalid --param ${k}=${JSON.stringify(v)}: expected one of ${p.values.join(', ')}`);
  }
  if (args.host !== undefined && args.hosts !== undefined) throw new UsageError('give either --host HOST or --hosts FILE, not both');

  if (args.emit) {
    const stage = args.stage === undefined ? 1 : validateInt(args.stage, '--stage', 1, 99);
    const common = { params, stage, dryRun: args['dry-run'] };
    if (args.hosts !== undefined) {
      // Every host's server steps are the same script: one paste serves the fleet.
      const hosts = fleetHosts(readHostsFile(args.hosts), args.hosts, args.target);
      process.stdout.write(await emitRecipe(recipe, { ...common, hostsFile: args.hosts }));
      process.stderr.write(`One script for the ${hosts.length} hosts in ${args.hosts}: it does not depend on the host. Nothing was run.\n`);
    } else {
      process.stdout.write(await emitRecipe(recipe, { ...common, ...(args.host !== undefined ? { host: formatHostPort(validateHost(args.host, '--host')) } : {}) }));
    }
    return 0;
  }

  if (args.hosts !== undefined) {
    const file = args.hosts;
    const hosts = fleetHosts(readHostsFile(file), file, args.target);
    const parallel = validateInt(args.parallel, '--parallel', 1, 1024);
    if (!json) {
      process.stdout.write(planLines(recipe, `${hosts.length} hosts from ${file}`, args.target, args['dry-run']).join('\n') + '\n\n');
    }
    if (!args['dry-run'] && !args.yes && recipe.steps.some(changesState) && !(await confirm(`Run on ${hosts.length} hosts?`, 'this recipe changes state and needs confirmation: pass --yes (or --dry-run to inspect only)'))) return 1;
    const t0 = performance.now();
    const runs = await runFleet(recipe, hosts, parallel, { dryRun: args['dry-run'], params, journal: args.journal });
    if (json) for (const r of runs) printJson({ status: r.result === 'failed' ? 'failed' : 'ok', ...r });
    else {
      process.stdout.write(`${'host'.padEnd(28)} ${'result'.padEnd(10)} recap\n`);
      for (const r of runs) {
        const last = r.steps.at(-1);
        process.stdout.write(`${r.host.padEnd(28)} ${(r.result === 'failed' ? chalk.red : chalk.green)((r.result ?? '').padEnd(10))} ${recap(r)}${r.result === 'failed' && last ? chalk.dim(`  ${last.name}: ${last.detail}`) : ''}\n`);
      }
      process.stdout.write(`\n${runs.filter((r) => r.result !== 'failed').length}/${runs.length} hosts ok in ${((performance.now() - t0) / 1000).toFixed(1)}s\n`);
    }
    return runs.some((r) => r.result === 'failed') ? 1 : 0;
  }

  if (args.host === undefined) throw new UsageError('--host is required (the RDP host the checks probe), or --hosts FILE for a fleet');
  const host = formatHostPort(validateHost(args.host, '--host'));
  const target = describeTarget(parseTarget(args.target));
  await assertResolves(host);

  const plan = planLines(recipe, host, target, args['dry-run']);
  if (json && !args.yes && !args['dry-run'] && recipe.steps.some(changesState)) {
    throw new UsageError('with --json there is no prompt: pass --yes (or --dry-run)');
  }
  if (!json) process.stdout.write(plan.join('\n') + '\n\n');
  if (!args['dry-run'] && !args.yes && recipe.steps.some(changesState) && !(await confirm('Run these steps?', 'this recipe changes state and needs confirmation: pass --yes (or --dry-run to inspect only)'))) {
    process.stdout.write('Nothing was run.\n');
    return 1;
  }
  const state = await runRecipe(recipe, { host, target, dryRun: args['dry-run'], params, journal: args.journal, ...humanHooks(json) });
  return finishRun(recipe, state, args.rollback, json);
}

/**
 * A host whose name does not resolve cannot be probed, and no recipe fixes DNS: refuse it before
 * anything runs (diagnose calls this cause name-not-resolved).
 */
async function assertResolves(host: string): Promise<void> {
  const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const r = await resolveHost(name);
  if (!isResolved(r)) throw new UsageError(`host ${JSON.stringify(name)} does not resolve: ${r.error}; no recipe can fix that (check the name, the DNS suffix or the VPN's DNS)`);
}

function humanHooks(json: boolean): Pick<RunOptions, 'onStep' | 'wrap'> {
  if (json) return {};
  return {
    wrap: (title, work) => withSpinner(title, work),
    onStep: (step, i, r) => {
      if (!r) return;
      const secs = chalk.dim(`${(r.ms / 1000).toFixed(1)}s`);
      process.stdout.write(`  ${String(i + 1).padStart(2)}. ${step.name.padEnd(52)} ${statusWord(r.status).padEnd(12)} ${secs}${r.detail ? chalk.dim(`  ${r.detail}`) : ''}\n`);
    },
  };
}

async function finishRun(recipe: Recipe, state: RunState, rollback: boolean, json: boolean): Promise<number> {
  const changed = state.steps.filter((s) => s.status === 'changed');
  let undone: number | undefined;
  if (state.result === 'failed' && rollback && changed.length) undone = await undoRun(state.runId, json);
  if (json) {
    printJson({ status: state.result === 'failed' ? 'failed' : 'ok', plan: recipe.steps.map((s) => ({ id: s.id, name: s.name, on: s.on, script: s.script, changesState: changesState(s) })), ...state, ...(undone !== undefined ? { rollback: undone === 0 ? 'ok' : 'failed' } : {}) });
  } else {
    const verdict =
      state.result === 'fixed' ? chalk.green(`Fixed: ${state.steps.at(-1)?.name} reports ${state.steps.at(-1)?.outcome}.`)
      : state.result === 'completed' ? chalk.green('All steps completed.')
      : state.result === 'dry-run' ? chalk.cyan('Dry run finished: nothing was changed.')
      : chalk.red(`Failed at: ${state.steps.at(-1)?.name}.`);
    process.stdout.write(`\n${verdict}  ${recap(state)}\n`);
    if (state.result === 'failed' && changed.length && undone === undefined) {
      process.stdout.write(`Undo the ${changed.length} change(s) this run made: npx tsx scripts/undo.ts --run ${state.runId} --yes\n`);
    }
    if (undone !== undefined) process.stdout.write(undone === 0 ? 'Rolled back every change of this run.\n' : chalk.red('Rollback did not complete; see above.\n'));
    if (state.result !== 'failed' && changed.length) process.stdout.write(chalk.dim(`Undo later: npx tsx scripts/undo.ts --run ${state.runId} --yes\n`));
  }
  return state.result === 'failed' ? 1 : 0;
}

if (isMain(import.meta.url)) await runCli(main);
