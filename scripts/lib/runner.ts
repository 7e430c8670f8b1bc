// The recipe runner: run a recipe's steps for one host or a fleet (each step is its script run as
// its own process with --json, exactly as a user runs it), stop when a check says healthy or at the
// first failure, save the run after every step (resume), print the plan and the recap, and roll back
// through undo.ts. run-recipe.ts is its CLI; diagnose --fix calls runWithPlan.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTarget } from './channels.ts';
import { isResolved, resolveHost } from './dns.ts';
import { StepError, UsageError } from './errors.ts';
import { forEachParallel } from './fleet.ts';
import type { HostsLine } from './hosts.ts';
import { isIntent, journalDir, openIntents, readJournal, readRunFiles, type JournalEntry, type RunFileFields } from './journal.ts';
import { reconcileIntents, type ReconcileOutcome } from './reconcile.ts';
import type { Runner } from './server-step.ts';
import { chalk, confirm, printJson, statusWord, withSpinner } from './output.ts';
import { scriptArgv, stepArgs, type Recipe, type RecipeStep } from './recipe.ts';
import { isCause, isStatus, report, type Report } from './report.ts';
import { shellWord } from './undo.ts';
import { formatHostPort } from './validate.ts';

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
  /** A failed fix under `on_failure: continue`: the next step ran, so it does not fail the run. */
  continued?: true;
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

/**
 * A `run` step may change state (it gets --dry-run in a dry run and needs confirmation); a `check`
 * never does. Recipes say which is which; the report says what actually changed.
 */
export function changesState(step: RecipeStep): boolean {
  return step.kind === 'run';
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
    const p = spawn(process.execPath, scriptArgv(step.script, argv), {
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
  /** How a resume reads the targets' records (lib/reconcile.ts; tests pass a fake). */
  records?: Runner;
  /** What a resume's reconcile found (before any step runs). */
  onReconcile?: (r: ReconcileOutcome[]) => void;
}

/**
 * A resumed run's mutating step that already ran on the target: the intent entry of its earlier
 * attempt (the k-th attempt of this script in the run is the k-th intent), resolved as completed.
 */
function completedEarlier(intents: JournalEntry[], state: RunState, step: RecipeStep): JournalEntry | undefined {
  const mine = intents.filter((e) => e.script === step.script && e.target === state.target);
  // Steps that never ran their script (skipped, bad usage) wrote no intent.
  const done = state.steps.filter((s) => s.script === step.script && s.status !== 'skipped' && s.exitCode !== 2).length;
  const e = mine[done];
  return e?.resolved?.outcome === 'completed' && e.resolved.record ? e : undefined;
}

/** What stop_when / expect / when compare: the report's cause where it names one, else its status. */
function outcomeOf(json: Record<string, unknown> | null): string {
  if (!json) return 'failed';
  if (typeof json.cause === 'string') return json.cause;
  return typeof json.status === 'string' ? json.status : 'failed';
}

/** The report's one-line summary (every script's --json has one), or why there is no report. */
function detailOf(json: Record<string, unknown> | null, stderr: string): string {
  if (!json) return stderr.trim().split('\n').at(-1)?.slice(0, 200) || 'no JSON result';
  for (const k of ['summary', 'error']) if (typeof json[k] === 'string' && json[k]) return (json[k] as string).slice(0, 200);
  return typeof json.cause === 'string' ? `cause: ${json.cause}` : '';
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
  // A resume first finds out what the interrupted step did (its target record), so that a change
  // the target says completed is not made again.
  let intents: JournalEntry[] = [];
  if (o.resume && !state.dryRun) {
    const open = await openIntents(o.journal, (e) => e.runId === state.runId);
    if (open.length) {
      // Not inside o.onReconcile?.(...): optional chaining would skip the reconcile without a listener.
      const found = await reconcileIntents(open, { ...(o.journal ? { journal: o.journal } : {}), ...(o.records ? { run: o.records } : {}) });
      o.onReconcile?.(found);
      // Resuming now could run a step a second time beside the one its channel may still start.
      const unknown = found.filter((f) => f.state === 'unknown' || f.state === 'running');
      if (unknown.length) {
        throw new StepError(`not resumed: the outcome of ${unknown.map((f) => `${f.script} on ${f.target}`).join(', ')} is not known yet (${unknown[0]!.detail}); resume again then, or find out with: npx tsx scripts/undo.ts --reconcile`);
      }
    }
    intents = (await readJournal(o.journal)).entries.filter((e) => isIntent(e) && e.runId === state.runId);
  }
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

    const earlier = step.kind === 'check' ? undefined : completedEarlier(intents, state, step);
    if (earlier) {
      const st = (isStatus(earlier.resolved!.status ?? '') ? earlier.resolved!.status : 'changed') as StepStatus;
      const done = finish(st, st, `completed on the target before the interruption (record ${earlier.resolved!.record}); not run again`);
      if (done.status === 'failed') break;
      continue;
    }
    const argv = stepArgv(step, { host: state.host, target: state.target, dryRun: state.dryRun, params: state.params });
    const r = await wrap(`${i + 1}. ${step.name}`, () => exec(step, argv, env));
    const outcome = outcomeOf(r.json);
    const detail = detailOf(r.json, r.stderr);
    const scriptStatus = (typeof r.json?.status === 'string' ? r.json.status : 'failed') as StepStatus;

    if (step.kind === 'check') {
      // A check that could not look (no report, bad usage, or a failed report naming no cause) stops the run.
      if (r.json === null || r.exitCode === 2 || (scriptStatus === 'failed' && typeof r.json.cause !== 'string')) {
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
    const done = finish(isStatus(status) ? status : 'failed', outcome, detail, r.exitCode);
    if (done.status === 'would-change') wouldChangeBefore = true;
    // on_failure: continue lets the next fix try (bad usage, no report, or a refusal that waits for
    // the user's decision, e.g. signed-in users and no --force, still stops).
    if (done.status === 'failed' && step.onFailure === 'continue' && r.exitCode !== 2 && r.json !== null && !r.json.refused) {
      done.detail = `${done.detail} (on_failure: continue: the next step runs)`;
      done.continued = true;
      saveRun(state, o.journal);
      continue;
    }
    if (done.status === 'failed') break;
    if (step.stopWhen.includes(outcome)) {
      state.result = 'fixed';
      break;
    }
  }

  // A fix that failed under on_failure: continue does not fail the run: the later steps decide.
  const failed = state.steps.some((s) => s.status === 'failed' && !s.continued);
  state.result = failed ? 'failed' : state.dryRun ? 'dry-run' : (state.result ?? 'completed');
  state.finished = new Date().toISOString();
  saveRun(state, o.journal);
  return state;
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

/**
 * Run the recipe on every host, at most `parallel` at once; one host failing never stops the others.
 * Each host's run goes to onRun as soon as it ends (in the order hosts finish) and is not kept: memory
 * does not grow with the hosts (each run is also in the journal).
 */
export async function runFleet(recipe: Recipe, hosts: FleetHost[], parallel: number, o: Omit<RunOptions, 'host' | 'target' | 'resume'>, onRun: (r: RunState, h: FleetHost) => void): Promise<void> {
  const one = async (h: FleetHost): Promise<RunState> => {
    try {
      return await runRecipe(recipe, { ...o, host: h.host, target: h.target });
    } catch (e) {
      const now = new Date().toISOString();
      return {
        runId: '', recipe: recipe.name, recipeFile: recipe.file, host: h.host, target: h.target, dryRun: o.dryRun, params: o.params ?? {}, started: now, finished: now, result: 'failed',
        steps: [{ id: 'runner', name: 'runner', script: 'run-recipe', on: 'client', status: 'failed', outcome: 'failed', detail: (e as Error).message, ms: 0, exitCode: null }],
      };
    }
  };
  await forEachParallel(hosts, parallel, one, (r, h) => onRun(r, h));
}

// ---------------------------------------------------------------- plan, recap, finish

export function planLines(recipe: Recipe, host: string, target: string, dryRun: boolean): string[] {
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

export function recap(state: RunState): string {
  const n = (s: StepStatus) => state.steps.filter((x) => x.status === s).length;
  return `ok=${n('ok')} changed=${n('changed')} would-change=${n('would-change')} skipped=${n('skipped')} failed=${n('failed')}`;
}

/** The command that undoes a run's changes, naming the journal when it is not the default. */
function undoCommand(runId: string, journal?: string): string {
  return `npx tsx scripts/undo.ts --run ${runId} --yes${journal !== undefined ? ` --journal ${shellWord(journal)}` : ''}`;
}

async function undoRun(runId: string, json: boolean, journal?: string): Promise<number> {
  // The run's changes are in the journal its steps wrote to.
  const p = spawn(process.execPath, scriptArgv('undo', ['--run', runId, '--yes', ...(json ? ['--json'] : []), ...(journal !== undefined ? ['--journal', journal] : [])]), {
    stdio: ['ignore', json ? 'pipe' : 'inherit', 'inherit'],
  });
  return new Promise((resolve) => p.on('close', (c) => resolve(c ?? 1)));
}

/**
 * A host whose name does not resolve cannot be probed, and no recipe fixes DNS: refuse it before
 * anything runs (diagnose calls this cause name-not-resolved).
 */
export async function assertResolves(host: string): Promise<void> {
  const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const r = await resolveHost(name);
  if (!isResolved(r)) throw new UsageError(`host ${JSON.stringify(name)} does not resolve: ${r.error}; no recipe can fix that (check the name, the DNS suffix or the VPN's DNS)`);
}

export function humanHooks(json: boolean): Pick<RunOptions, 'onStep' | 'wrap'> {
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

/** How a run ended, in words (the human verdict and the JSON summary). */
function verdictOf(state: RunState): string {
  return state.result === 'fixed' ? `Fixed: ${state.steps.at(-1)?.name} reports ${state.steps.at(-1)?.outcome}.`
    : state.result === 'completed' ? 'All steps completed.'
    : state.result === 'dry-run' ? 'Dry run finished: nothing was changed.'
    : `Failed at: ${state.steps.at(-1)?.name}.`;
}

/**
 * A run as the step contract (lib/report.ts) says: status ok or failed; the verdict and the recap;
 * the cause the last check named; the steps that changed (or would change) state; one evidence
 * line per step; the undo command when a failed run left changes behind. The run's own fields follow.
 */
export function runReport(state: RunState, undone?: number, journal?: string): Report & RunState & { rollback?: 'ok' | 'failed' } {
  const changed = state.steps.filter((s) => s.status === 'changed');
  const lastCheck = state.steps.filter((s) => isCause(s.outcome)).at(-1);
  const undo = undoCommand(state.runId, journal);
  const leftBehind = state.result === 'failed' && changed.length > 0 && undone === undefined;
  return {
    ...report({
      status: state.result === 'failed' ? 'failed' : 'ok',
      summary: `${verdictOf(state)}  ${recap(state)}`,
      cause: lastCheck && isCause(lastCheck.outcome) ? lastCheck.outcome : null,
      changes: state.steps.filter((s) => s.status === 'changed' || s.status === 'would-change').map((s) => ({ summary: `${s.name}: ${s.detail}`, step: s.id, script: s.script, status: s.status })),
      evidence: state.steps.map((s) => `${s.id} (${s.script}): ${s.status}${s.detail ? `: ${s.detail}` : ''}`),
      next: leftBehind ? [undo] : [],
      notes: [
        ...(leftBehind ? [`the command above undoes the ${changed.length} change(s) this run made`] : []),
        ...(undone !== undefined ? [undone === 0 ? 'rolled back every change of this run' : 'the rollback did not complete'] : []),
        ...(state.result !== 'failed' && changed.length ? [`undo later: ${undo}`] : []),
      ],
    }),
    ...state,
    ...(undone !== undefined ? { rollback: undone === 0 ? 'ok' : 'failed' } : {}),
  };
}

export async function finishRun(recipe: Recipe, state: RunState, rollback: boolean, json: boolean, journal?: string): Promise<number> {
  const changed = state.steps.filter((s) => s.status === 'changed');
  let undone: number | undefined;
  if (state.result === 'failed' && rollback && changed.length) undone = await undoRun(state.runId, json, journal);
  if (json) {
    const { status, ...rest } = runReport(state, undone, journal);
    printJson({ status, plan: recipe.steps.map((s) => ({ id: s.id, name: s.name, on: s.on, script: s.script, changesState: changesState(s) })), ...rest });
  } else {
    const verdict = verdictOf(state);
    process.stdout.write(`\n${state.result === 'fixed' || state.result === 'completed' ? chalk.green(verdict) : state.result === 'dry-run' ? chalk.cyan(verdict) : chalk.red(verdict)}  ${recap(state)}\n`);
    if (state.result === 'failed' && changed.length && undone === undefined) {
      process.stdout.write(`Undo the ${changed.length} change(s) this run made: ${undoCommand(state.runId, journal)}\n`);
    }
    if (undone !== undefined) process.stdout.write(undone === 0 ? 'Rolled back every change of this run.\n' : chalk.red('Rollback did not complete; see above.\n'));
    if (state.result !== 'failed' && changed.length) process.stdout.write(chalk.dim(`Undo later: ${undoCommand(state.runId, journal)}\n`));
  }
  return state.result === 'failed' ? 1 : 0;
}


export interface PlanRunOptions {
  host: string;
  target: string;
  dryRun: boolean;
  yes: boolean;
  json: boolean;
  rollback?: boolean;
  params?: Record<string, string>;
  journal?: string;
}

/**
 * One host, as a user runs it: the plan, a confirmation unless --yes (none possible with --json or
 * without a terminal: exit 2), the run, the recap and the exit code.
 */
export async function runWithPlan(recipe: Recipe, o: PlanRunOptions): Promise<number> {
  await assertResolves(o.host);
  const changes = recipe.steps.some(changesState);
  if (o.json && !o.yes && !o.dryRun && changes) throw new UsageError('with --json there is no prompt: pass --yes (or --dry-run)');
  if (!o.json) process.stdout.write(planLines(recipe, o.host, o.target, o.dryRun).join('\n') + '\n\n');
  if (!o.dryRun && !o.yes && changes && !(await confirm('Run these steps?', 'this recipe changes state and needs confirmation: pass --yes (or --dry-run to inspect only)'))) {
    process.stdout.write('Nothing was run.\n');
    return 1;
  }
  const state = await runRecipe(recipe, { host: o.host, target: o.target, dryRun: o.dryRun, ...(o.params ? { params: o.params } : {}), ...(o.journal ? { journal: o.journal } : {}), ...humanHooks(o.json) });
  return finishRun(recipe, state, !!o.rollback, o.json, o.journal);
}
