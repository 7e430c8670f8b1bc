// The flow every server-side script shares (inspect-server, restart-termserv, clear-machinekeys,
// toggle-nla): the common flags --target / --emit / --dry-run / --json / --journal, then
// run-or-emit: with --emit print exactly the generated PowerShell and stop; otherwise run it
// through the channel (lib/channels.ts runScript), let the script's TypeScript turn the raw JSON
// into a report, journal every change with its undo, and print one verdict (or ONE JSON object
// with a top-level `status`).
import type { Argv } from 'yargs';
import { describeTarget, parseTarget, runScript, TARGET_HELP, type Target } from './channels.ts';
import { refuseEmitJson } from './cli.ts';
import { RdpfixError, StepError } from './errors.ts';
import { currentRunId, ENTRY_ID, record, recordIntent, resolveIntent, type JournalEntry, type UndoSpec } from './journal.ts';
import { tagScript, writesRecord } from './target-record.ts';
import { chalk, printHuman, printJson, statusWord, withSpinner } from './output.ts';
import { isCause, type Report, type ReportChange } from './report.ts';
import { validateLocalPath, validateWindowsPath } from './validate.ts';
import { checkSerialConsoleUsage, SERIAL_CONSOLE_OPTION, serialConsoleForm } from './serial-console.ts';

export interface ServerFlags {
  target: Target;
  /** The target as written in journals and next-step commands (describeTarget). */
  targetText: string;
  emit: boolean;
  /** With emit: print the script as Azure Serial Console lines (lib/serial-console.ts). */
  serialConsole?: boolean;
  dryRun: boolean;
  json: boolean;
  journal?: string;
}

/** Add the shared flags to a script's yargs parser. */
export function withServerOptions<T>(y: Argv<T>) {
  return y
    .option('target', { type: 'string', default: 'local', describe: TARGET_HELP })
    .option('emit', { type: 'boolean', default: false, describe: 'print the PowerShell that would run (paste it on the server) and exit; nothing is run' })
    .option('serial-console', SERIAL_CONSOLE_OPTION)
    .option('dry-run', { type: 'boolean', default: false, describe: 'inspect the real target and report what would change; change nothing' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object with a top-level "status"' })
    .option('journal', { type: 'string', describe: 'journal folder for undo records (default ~/.rdpfix/journal, or RDPFIX_JOURNAL)' });
}

/** Validate the shared flags (hostile values are a UsageError: exit 2, nothing run). */
export function serverFlags(args: { target?: string; emit?: boolean; 'serial-console'?: boolean; 'dry-run'?: boolean; json?: boolean; journal?: string }): ServerFlags {
  const target = parseTarget(args.target ?? 'local');
  const journal = args.journal !== undefined ? validateLocalPath(args.journal, '--journal') : undefined;
  const serialConsole = !!args['serial-console'];
  checkSerialConsoleUsage({ serialConsole, emit: !!args.emit, json: !!args.json });
  refuseEmitJson(!!args.emit, !!args.json);
  return { target, targetText: describeTarget(target), emit: !!args.emit, ...(serialConsole ? { serialConsole } : {}), dryRun: !!args['dry-run'], json: !!args.json, ...(journal ? { journal } : {}) };
}

/** Runs one generated script on a target and returns its raw JSON result. Tests pass a fake. */
export type Runner = (target: Target, script: string) => Promise<unknown>;

export const channelRunner: Runner = async (target, script) => (await runScript(target, script)).result;

export interface StepContext {
  target: Target;
  dryRun: boolean;
  journal?: string;
  run?: Runner;
  /**
   * Set by runStep for a step that writes a target record: the client's intent entry, written
   * before the script ran, and the id of the record the target reported. journalChanges (or, when a
   * step journals nothing, serverMain) resolves it; left open, the outcome is unknown.
   */
  intent?: { entry: JournalEntry; record: string | null; status?: string; settled: boolean };
}

export function contextFrom(flags: ServerFlags, run?: Runner): StepContext {
  return { target: flags.target, dryRun: flags.dryRun, ...(flags.journal ? { journal: flags.journal } : {}), ...(run ? { run } : {}) };
}

/**
 * Everything a server script reports; --json prints exactly this object: the step contract
 * (lib/report.ts: status, summary, cause, changes, evidence, next, notes) and the server fields.
 */
export interface StepReport extends Report {
  step: string;
  target: string;
  dryRun: boolean;
  before: unknown;
  after: unknown;
  /** Backup folder on the target, when something was backed up. */
  backup: string | null;
  warnings: string[];
  /** Journal entry ids recorded by this run. */
  journal: string[];
  /** The command that undoes this run's changes. */
  undo: string | null;
  error?: string;
  [extra: string]: unknown;
}

export function baseReport(step: string, ctx: StepContext): StepReport {
  return {
    step,
    status: 'failed',
    target: describeTarget(ctx.target),
    dryRun: ctx.dryRun,
    summary: '',
    cause: null,
    changes: [],
    before: null,
    after: null,
    backup: null,
    warnings: [],
    evidence: [],
    next: [],
    notes: [],
    journal: [],
    undo: null,
  };
}

/** Raw results always carry these; the rest is the script's own shape. */
export interface RawResult {
  step?: string;
  status: string;
  error?: string | null;
  at?: string;
  [k: string]: unknown;
}

/**
 * Run a generated script through the context's channel and check the result has a status. A
 * changing step's script (one that writes a target record) is preceded by an intent entry in the
 * client journal, and carries that entry's id as its RecordTag: if this process dies or the channel
 * drops now, `undo --reconcile` finds what the step did in the target's record.
 */
export async function runStep<T extends RawResult>(ctx: StepContext, script: string): Promise<T> {
  let text = script;
  if (!ctx.dryRun && writesRecord(script)) {
    const step = /^# rdpfix ([a-z0-9-]+):/.exec(script)?.[1] ?? 'step';
    const entry = await recordIntent({ script: step, target: describeTarget(ctx.target) }, ctx.journal);
    ctx.intent = { entry, record: null, settled: false };
    text = tagScript(script, entry.id);
  }
  const raw = await (ctx.run ?? channelRunner)(ctx.target, text);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw) || typeof (raw as RawResult).status !== 'string') {
    throw new StepError(`${describeTarget(ctx.target)}: the script returned no result object with a status`, JSON.stringify(raw)?.slice(0, 200));
  }
  if (ctx.intent && !ctx.intent.settled) {
    const rec = (raw as RawResult).record;
    ctx.intent.status = (raw as RawResult).status;
    ctx.intent.record = typeof rec === 'string' && ENTRY_ID.test(rec) ? rec : null;
    // No record: the step changed nothing that needs an undo (it stops before its first change, or
    // its change has none, like a plain restart).
    if (!ctx.intent.record) await settleIntent(ctx, []);
  }
  return isoDates(raw) as T;
}

/** Resolve the context's open intent entry: the step returned, these entries journal its changes. */
export async function settleIntent(ctx: StepContext, entries: string[]): Promise<void> {
  const i = ctx.intent;
  if (!i || i.settled) return;
  await resolveIntent(i.entry.id, { outcome: 'completed', record: i.record, entries, ...(i.status ? { status: i.status } : {}), detail: i.record ? `the step returned; target record ${i.record}` : 'the step returned; it left no target record (nothing that needs an undo was changed)' }, ctx.journal);
  i.settled = true;
}

export interface Change {
  summary: string;
  before: unknown;
  after: unknown;
  backup: string | null;
  undo: UndoSpec;
}

/** A journaled change as the report lists it (the undo stays in the journal). */
export function reportChange(c: Change): ReportChange {
  return { summary: c.summary, before: c.before, after: c.after, backup: c.backup };
}

/** Journal each change (never in a dry run); returns the entries recorded. */
export async function journalChanges(ctx: StepContext, script: string, changes: Change[]): Promise<JournalEntry[]> {
  if (ctx.dryRun) return [];
  const out: JournalEntry[] = [];
  const rec = ctx.intent?.record;
  for (const c of changes) out.push(await record({ script, target: describeTarget(ctx.target), ...c, ...(rec ? { targetRecord: rec } : {}) }, ctx.journal));
  await settleIntent(ctx, out.map((e) => e.id));
  return out;
}

/** The PowerShell undo for a change on this context's target. */
export function psUndo(ctx: StepContext, script: string): UndoSpec {
  return { kind: 'powershell', target: describeTarget(ctx.target), script };
}

/** Attach recorded entries to a report: ids, and the exact undo command. */
export function attachJournal(report: StepReport, entries: JournalEntry[], ctx: StepContext): void {
  report.journal = entries.map((e) => e.id);
  if (!entries.length) return;
  const journalFlag = ctx.journal ? ` --journal ${JSON.stringify(ctx.journal)}` : '';
  report.undo =
    entries.length === 1
      ? `npx tsx scripts/undo.ts ${entries[0]!.id} --yes${journalFlag}`
      : `npx tsx scripts/undo.ts --run ${entries[0]!.runId ?? currentRunId()} --yes${journalFlag}`;
}

/** A value the target sent back that will be embedded in an undo script: a Windows path. */
export function targetPath(value: unknown): string | null {
  if (typeof value !== 'string' || !value) return null;
  try {
    return validateWindowsPath(value, 'backup path from the target');
  } catch {
    return null;
  }
}

/** The next-step command for another server script on the same target. */
export function nextCommand(script: string, args: string[], ctx: StepContext): string {
  const t = describeTarget(ctx.target);
  return ['npx tsx', `scripts/${script}.ts`, ...args, ...(t === 'local' ? [] : ['--target', t])].join(' ');
}

export interface ServerMainSpec {
  /** The script text --emit prints (exactly what execute would run first). */
  emit: (dryRun: boolean) => string;
  execute: (ctx: StepContext) => Promise<StepReport>;
  /** Spinner title while the channel runs. */
  title: string;
  /** Exit code from the report (default: failed → 1, else 0). */
  exitCode?: (r: StepReport) => number;
  /** Extra human lines after the evidence (e.g. findings). */
  human?: (r: StepReport) => string[];
}

/** The run-or-emit-then-journal flow of every server script's main(). */
export async function serverMain(flags: ServerFlags, spec: ServerMainSpec, run?: Runner): Promise<number> {
  if (flags.emit) {
    const script = spec.emit(flags.dryRun);
    process.stdout.write(flags.serialConsole ? serialConsoleForm(script, `the ${/^# rdpfix ([a-z0-9-]+):/.exec(script)?.[1] ?? 'step'} script${flags.dryRun ? ' (dry run)' : ''}`).text : script);
    return 0;
  }
  const ctx = contextFrom(flags, run);
  let report: StepReport;
  try {
    report = await withSpinner(`${spec.title} (${flags.targetText})`, () => spec.execute(ctx), !flags.json);
    // A step that journaled nothing (nothing changed, or nothing with an undo) still ended.
    await settleIntent(ctx, []);
  } catch (e) {
    // A channel that cannot run the script is still a step result: status 'failed', with the
    // reason, so a recipe runner always gets one JSON object. Bad usage stays exit 2.
    if (!(e instanceof RdpfixError) || e.exitCode === 2) throw e;
    report = baseReport(spec.title, ctx);
    report.summary = e.message;
    report.error = e.message;
    if (e.hint) report.evidence.push(e.hint);
    if (ctx.intent && !ctx.intent.settled) {
      report.notes.push(`the outcome on ${flags.targetText} is unknown (journal entry ${ctx.intent.entry.id}); find out what changed with: npx tsx scripts/undo.ts --reconcile --target ${flags.targetText}`);
    }
  }
  report = isoDates(report);
  if (flags.json) printJson(report);
  else printReport(report, spec.human?.(report) ?? []);
  return spec.exitCode ? spec.exitCode(report) : report.status === 'failed' ? 1 : 0;
}

export function printReport(r: StepReport, extra: string[] = []): void {
  const evidence = [...r.evidence, ...extra, ...r.warnings.map((w) => chalk.yellow(`warning: ${w}`)), ...(r.notes ?? []).map((n) => `note: ${n}`)];
  if (r.backup) evidence.push(`backup on the target: ${r.backup}`);
  if (r.error && r.error !== r.summary) evidence.push(chalk.red(r.error));
  const next = [...r.next];
  if (r.undo && !next.includes(r.undo)) next.push(`undo: ${r.undo}`);
  printHuman(`${statusWord(r.status)}  ${r.summary}${r.dryRun ? chalk.cyan(' (dry run: nothing was changed)') : ''}`, evidence, next);
}

// ---------------------------------------------------------------- the in-server verification

/** The in-server handshake check a changing server step ends with (scripts/ps/handshake.ps1 Test-RdpStepHandshake). */
export interface HandshakeCheck {
  cause: string;
  detail: string;
  attempts: number;
}

/** The raw result's handshake check, or null when the step did not get to it (dry run, nothing to do, an earlier problem). */
export function handshakeOf(raw: object): HandshakeCheck | null {
  const h = (raw as { handshake?: unknown }).handshake as Partial<HandshakeCheck> | null | undefined;
  if (!h || typeof h !== 'object' || typeof h.cause !== 'string') return null;
  return { cause: h.cause, detail: typeof h.detail === 'string' ? h.detail : '', attempts: typeof h.attempts === 'number' ? h.attempts : 1 };
}

/**
 * Put the check into a report: its own field, one evidence line, and, when the step failed on it,
 * its cause as the report's cause (what the runner and an escalating recipe read).
 */
export function applyHandshake(r: StepReport, h: HandshakeCheck | null): void {
  r.handshake = h;
  if (!h) return;
  r.evidence.push(`handshake checked from the server itself: ${h.cause}${h.detail ? ` (${h.detail})` : ''}${h.attempts > 1 ? ` after ${h.attempts} attempts` : ''}`);
  // Only when the check is why it failed (its problem line), not when something else failed first.
  const why = (r.evidence.concat(r.summary)).some((e) => e.includes(`the RDP handshake from the server itself is ${h.cause}`));
  if (r.status === 'failed' && r.cause === null && why && isCause(h.cause)) r.cause = h.cause;
}

// ---------------------------------------------------------------- normalising Windows JSON

/** PowerShell writes a one-element collection as a bare object, and none as null. */
export function asArray<T = unknown>(v: unknown): T[] {
  if (v === null || v === undefined) return [];
  return (Array.isArray(v) ? v : [v]) as T[];
}

const SERVICE_STATUS = ['', 'Stopped', 'StartPending', 'StopPending', 'Running', 'ContinuePending', 'PausePending', 'Paused'];
const START_TYPE = ['Boot', 'System', 'Automatic', 'Manual', 'Disabled'];

/** ServiceControllerStatus as a name (PS 5.1 JSON has numbers: Running = 4, Stopped = 1). */
export function serviceStatus(v: unknown): string | null {
  if (typeof v === 'number') return SERVICE_STATUS[v] || String(v);
  return typeof v === 'string' ? v : null;
}

/** ServiceStartMode as a name (Automatic = 2, Manual = 3, Disabled = 4). */
export function startType(v: unknown): string | null {
  if (typeof v === 'number') return START_TYPE[v] ?? String(v);
  return typeof v === 'string' ? v : null;
}

const PS_DATE = /^\/Date\((-?\d+)(?:[+-]\d{4})?\)\/$/;

/**
 * Every "\/Date(ms)\/" string (how Windows PowerShell 5.1's ConvertTo-Json writes a DateTime) in a
 * result, anywhere in it, as ISO 8601: the CLI's JSON never carries the PowerShell form.
 */
export function isoDates<T>(value: T): T {
  if (typeof value === 'string') {
    const m = PS_DATE.exec(value);
    return (m ? new Date(Number(m[1])).toISOString() : value) as T;
  }
  if (Array.isArray(value)) return value.map((v) => isoDates(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = isoDates(v);
    return out as T;
  }
  return value;
}

/** A date as ConvertTo-Json writes it: "\/Date(ms)\/" (PS 5.1) or ISO 8601 (PS 7). */
export function psDate(v: unknown): Date | null {
  if (typeof v !== 'string') return null;
  const m = PS_DATE.exec(v);
  const d = m ? new Date(Number(m[1])) : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A REG_BINARY value as ConvertTo-Json writes it (array of bytes) → upper-case hex. */
export function bytesToHex(v: unknown): string | null {
  const a = asArray<unknown>(v);
  if (!a.length || !a.every((b) => typeof b === 'number' && b >= 0 && b <= 255)) return typeof v === 'string' ? v.toUpperCase() : null;
  return (a as number[]).map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
}

/** A registry DWORD as a number (absent → undefined). */
export function dword(values: unknown, name: string): number | undefined {
  if (!values || typeof values !== 'object') return undefined;
  const v = (values as Record<string, unknown>)[name];
  return typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}
