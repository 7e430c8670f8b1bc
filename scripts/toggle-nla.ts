// toggle-nla: show or change Network Level Authentication (UserAuthentication) and the RDP security
// layer, honestly about Group Policy, with a built-in expiry for temporary weakening.
//
// What it fixes: "NLA required" (failure code 5) for a client that cannot do CredSSP, and security
// layer mismatches (code 1/2). `status` shows the local values (RDP-Tcp), the Group Policy values
// (…\Policies\Microsoft\Windows NT\Terminal Services, which win when set) and which is in force.
// `enable` / `disable` / `--security-layer rdp|negotiate|tls` / `--min-encryption-level N` change
// the local values through the WMI Win32_TSGeneralSetting methods (registry as fallback), in an
// order Windows accepts, and refuse invalid combinations (SecurityLayer 2 with MinEncryptionLevel 1).
// When a policy value overrides the change it refuses and says so, instead of reporting a success
// that has no effect (Azure's DisableNLA does); `--policy` changes the policy value too.
// Disabling NLA is a security downgrade that EDR rules flag: it says so, and `--for 2h` registers a
// one-time scheduled task (SYSTEM) on the target that puts the previous values back when the time
// is up. `enable` removes that task.
// Undo: every change is backed up on the target (reg export + values.json) and journaled.
// `toggle-nla --restore` undoes the newest toggle-nla journal entry for the target that is not
// undone yet, through lib/undo.ts exactly as `npx tsx scripts/undo.ts ID --yes` would (the same
// allow-list, the entry's recorded script on its recorded channel, read-back, mark, journal).
// Only when the journal has no such entry (the change was pasted with --emit, or made from another
// machine) or that entry has no automatic undo does the target restore its own newest toggle-nla
// backup (values.json) that is not restored yet, and the report says so (a note). `--restore
// --emit` prints that target-side restore (a pasted script cannot update the journal); `--restore
// --dry-run` with a journal entry checks the allow-list and contacts nothing, as `undo --dry-run`.
// Only values still as rdpfix left them are restored; anything changed since is reported and kept.
// The PowerShell is scripts/ps/toggle-nla.ps1 and security.ps1; the decisions about the values in
// force (Group Policy wins) are lib/server-facts.ts.
import { backupRoot } from './lib/backup.ts';
import { describeTarget } from './lib/channels.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { journalDir, list, markUndone, type JournalEntry } from './lib/journal.ts';
import { psStep, psStepParts } from './lib/ps-loader.ts';
import { combinationProblem, effectiveSecurity, type EffectiveSecurity } from './lib/server-facts.ts';
import { buildNlaUndoScript, nlaChanges, validChanges, type NlaRaw, type SecurityState, type SettingName, type ValueChange } from './lib/nla-step.ts';
import { REENABLE_TASK } from './lib/server-ps.ts';
import type { ReportChange } from './lib/report.ts';
import { applyHandshake, asArray, attachJournal, baseReport, handshakeOf, isoDates, journalChanges, nextCommand, runStep, serverFlags, serverMain, withServerOptions, type RawResult, type StepContext, type StepReport } from './lib/server-step.ts';
import { openEntries, planUndo, runUndo } from './lib/undo.ts';
import { validateDuration, validateInt } from './lib/validate.ts';

// ---------------------------------------------------------------- types

export interface NlaOptions {
  mode: NlaMode;
  securityLayer?: Layer;
  minEncryptionLevel?: number;
  /** Also change the Group Policy value when one overrides the local value. */
  policy?: boolean;
  /** Seconds until the scheduled task puts the previous values back (disable / --security-layer rdp). */
  forSeconds?: number;
  backupRoot?: string;
}

export type NlaMode = 'status' | 'enable' | 'disable' | 'set' | 'restore';
export type Layer = 'rdp' | 'negotiate' | 'tls';
export const LAYERS: Record<Layer, number> = { rdp: 0, negotiate: 1, tls: 2 };
// The value changes, the raw result, the undo script and the journal change (nlaChanges) live in
// lib/nla-step.ts, shared with lib/step-changes.ts; re-exported for this script's callers.
export { buildNlaUndoScript };
export type { NlaRaw, SecurityState, SettingName, ValueChange };

export interface NlaReport extends StepReport {
  mode: NlaMode;
  effectiveBefore: EffectiveSecurity | null;
  effectiveAfter: EffectiveSecurity | null;
  /** The values (and the expiry task) changed, or in a dry run the planned ones; each with a summary. */
  changes: ReportChange[];
  task: { name: string; due: string } | null;
  refused: string | null;
}

// ---------------------------------------------------------------- the step

/** Show or change NLA / the security layer on a target; journals changes with their undo. */
export async function toggleNla(o: NlaOptions, ctx: StepContext): Promise<NlaReport> {
  validateOptions(o);
  if (o.mode === 'restore') return restoreNla(o, ctx);
  const raw = await runStep<NlaRaw>(ctx, buildNlaScript(o, ctx.dryRun));
  const report = interpretNla(raw, ctx, o);
  if (ctx.dryRun || report.status === 'would-change') return report;
  const changes = nlaChanges(raw, ctx);
  if (!changes.length) return report;
  const entries = await journalChanges(ctx, 'toggle-nla', changes);
  attachJournal(report, entries, ctx);
  return report;
}

// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'toggle-nla'))
    .command('$0 [mode]', 'show or change NLA', (y) =>
      y.positional('mode', { choices: ['status', 'enable', 'disable'] as const, describe: 'status (default; with --security-layer: leave NLA as it is), enable or disable' }),
    )
    .usage('$0 [status|enable|disable] [--security-layer rdp|negotiate|tls] [--for 2h] [--policy] [--target CHANNEL]\n$0 --restore [--target CHANNEL]\n\nShow or change Network Level Authentication and the RDP security layer, honouring Group Policy overrides.')
    .option('security-layer', { choices: ['rdp', 'negotiate', 'tls'] as const, describe: 'SecurityLayer: rdp (0, standard RDP security), negotiate (1, the default), tls (2)' })
    .option('min-encryption-level', { type: 'string', describe: 'MinEncryptionLevel 1-4 (1 Low, 2 Client compatible, 3 High, 4 FIPS); TLS needs 2 or higher' })
    .option('for', { type: 'string', describe: 'with disable or --security-layer rdp: put the previous values back after this long (e.g. 30m, 2h, 1d) via a scheduled task on the target' })
    .option('policy', { type: 'boolean', default: false, describe: 'when Group Policy overrides a value, change the policy value too (a GPO may re-apply it at the next refresh)' })
    .option('restore', { type: 'boolean', default: false, describe: 'put back the values recorded by the newest toggle-nla change on the target' })
    .option('backup-dir', { type: 'string', describe: 'backup folder on the target (default C:\\ProgramData\\rdpfix\\backup)' })
    .example('$0 status --target azure://SUB/RG/VM', 'what is in force, and where it comes from')
    .example('$0 disable --for 2h --target winrm://vm1', 'let a client without CredSSP in for two hours; NLA comes back by itself')
    .example('$0 --security-layer negotiate --dry-run', 'what would change')
    .example('$0 disable --for 2h --emit > nla-off.ps1', 'the script to paste on the server')
    .example('$0 --restore --target winrm://vm1', 'put the recorded values back')
    .epilog('Undo: npx tsx scripts/undo.ts --last --yes  (or toggle-nla --restore on the target)')
    .parseAsync();
  const flags = serverFlags(args);
  const mode = (args.mode as 'status' | 'enable' | 'disable' | undefined) ?? 'status';
  if (args.restore && args.mode) throw new UsageError('--restore takes no mode');
  const opts: NlaOptions = {
    mode: args.restore ? 'restore' : mode === 'status' && (args['security-layer'] || args['min-encryption-level']) ? 'set' : mode,
    ...(args['security-layer'] ? { securityLayer: args['security-layer'] as Layer } : {}),
    ...(args['min-encryption-level'] !== undefined ? { minEncryptionLevel: validateInt(args['min-encryption-level'], '--min-encryption-level', 1, 4) } : {}),
    ...(args.for !== undefined ? { forSeconds: validateDuration(args.for, '--for') } : {}),
    policy: args.policy,
    ...(args['backup-dir'] !== undefined ? { backupRoot: backupRoot(args['backup-dir']) } : {}),
  };
  validateOptions(opts);
  return serverMain(flags, {
    title: opts.mode === 'status' ? 'reading NLA settings' : 'changing NLA settings',
    emit: (dry) => buildNlaScript(opts, dry),
    execute: (ctx) => toggleNla(opts, ctx),
  });
}

// ---------------------------------------------------------------- decisions

/** The values to set, from the options. */
export function desiredValues(o: NlaOptions): Partial<Record<SettingName, number>> {
  const d: Partial<Record<SettingName, number>> = {};
  if (o.mode === 'enable') d.UserAuthentication = 1;
  if (o.mode === 'disable') d.UserAuthentication = 0;
  if (o.securityLayer) d.SecurityLayer = LAYERS[o.securityLayer];
  if (o.minEncryptionLevel !== undefined) d.MinEncryptionLevel = o.minEncryptionLevel;
  return d;
}

/**
 * The order Windows accepts: the WMI SetSecurityLayer refuses 2 (TLS) while MinEncryptionLevel is 1,
 * so when moving to TLS the encryption level goes first; otherwise the layer goes first (so leaving
 * TLS happens before lowering the level).
 */
export function applyOrder(d: Partial<Record<SettingName, number>>): SettingName[] {
  return d.SecurityLayer === 2 ? ['MinEncryptionLevel', 'SecurityLayer', 'UserAuthentication'] : ['SecurityLayer', 'MinEncryptionLevel', 'UserAuthentication'];
}

/** Static checks on the requested values (the target re-checks against its current values). */
export function validateOptions(o: NlaOptions): void {
  const d = desiredValues(o);
  const combo = combinationProblem(d.SecurityLayer ?? null, d.MinEncryptionLevel ?? null);
  if (combo) throw new UsageError(`${combo}: choose --min-encryption-level 2 or higher with --security-layer tls`);
  if (d.UserAuthentication === 1 && d.SecurityLayer === 0) {
    throw new UsageError(
      'enable --security-layer rdp asks for two things that exclude each other: NLA authenticates through CredSSP, which runs inside TLS, and SecurityLayer rdp (0) turns TLS off',
      'use enable with --security-layer negotiate or tls, or --security-layer rdp together with disable',
    );
  }
  const weakening = d.UserAuthentication === 0 || d.SecurityLayer === 0;
  if (o.forSeconds !== undefined && !weakening) throw new UsageError('--for sets an expiry for a temporary weakening: use it with disable or --security-layer rdp');
  if ((o.mode === 'status' || o.mode === 'restore') && o.policy && !Object.keys(d).length) throw new UsageError('--policy applies when a value is changed');
  if (o.mode === 'restore' && Object.keys(d).length) throw new UsageError('--restore puts the recorded values back; it takes no other change');
}

// ---------------------------------------------------------------- --restore

/**
 * --restore. The rule: the newest toggle-nla journal entry for this target that is not undone yet
 * is undone through lib/undo.ts, as `undo ID` would undo it. Without one (or when that entry has
 * no automatic undo) the target restores its own newest backup that is not restored yet, as
 * toggle-nla did before there was a journal, and the report says which of the two ran.
 */
async function restoreNla(o: NlaOptions, ctx: StepContext): Promise<NlaReport> {
  const target = describeTarget(ctx.target);
  const [newest] = openEntries(await list(ctx.journal), (e) => e.script === 'toggle-nla' && e.target === target);
  if (newest && newest.undo.kind !== 'none') return restoreFromJournal(newest, o, ctx);
  const why = newest
    ? `the newest open toggle-nla journal entry for ${target}, ${newest.id}, has no automatic undo (${newest.undo.kind === 'none' ? newest.undo.reason : ''})`
    : `the journal (${journalDir(ctx.journal)}) has no toggle-nla change on ${target} that is not undone yet (made by a pasted script, from another machine, or undone already)`;
  return restoreOnTarget(o, ctx, why);
}

async function restoreFromJournal(e: JournalEntry, o: NlaOptions, ctx: StepContext): Promise<NlaReport> {
  const recorded = recordedChanges(e);
  const how = `journal entry ${e.id} (${e.summary.replace(/[\r\n]+/g, ' ')}), undone with its recorded undo on ${e.target}, as npx tsx scripts/undo.ts ${e.id} --yes would`;
  if (ctx.dryRun) {
    // As `undo --dry-run`: the allow-list decides, the target is not contacted.
    const [plan] = planUndo([e]);
    const r = emptyReport(ctx, o);
    r.backup = e.backup;
    if (plan!.status === 'would-change') {
      r.status = 'would-change';
      r.summary = `would put back ${recorded.map((c) => `${c.scope === 'policy' ? 'policy ' : ''}${label(c.name, c.before)}`).join(', ') || 'the recorded values'} from journal entry ${e.id}`;
      r.changes = recorded.map((c) => withSummary({ ...c, before: c.after, after: c.before }));
    } else {
      r.summary = `the undo of journal entry ${e.id} would be refused: ${plan!.detail.replace(/^would refuse: /, '')}`;
    }
    r.evidence.push(`journal entry ${e.id}: ${plan!.detail}`);
    r.notes.push(`--restore would undo ${how}; the dry run checked the journal only: the undo reads the target first and puts back only values still as rdpfix left them`);
    return r;
  }
  const { outcome, raw } = await runUndo(e, { journal: ctx.journal, run: ctx.run, by: 'toggle-nla --restore' });
  const answered = !!raw && typeof raw === 'object' && !Array.isArray(raw) && typeof (raw as RawResult).status === 'string';
  const r = answered ? interpretNla(isoDates(raw as NlaRaw), ctx, o) : emptyReport(ctx, o);
  // lib/undo's verdict is the one the journal now holds.
  r.status = outcome.status;
  if (!answered || !r.summary) r.summary = outcome.detail || `the undo of journal entry ${e.id} ${outcome.status}`;
  r.backup = r.backup ?? e.backup;
  if (outcome.status === 'changed' || outcome.status === 'ok') r.journal = [e.id];
  r.evidence.push(`journal entry ${e.id}: ${outcome.status}${outcome.detail ? ` (${outcome.detail})` : ''}${outcome.undoEntry ? `; this undo is journal entry ${outcome.undoEntry}` : ''}`);
  r.notes.push(`restored from the journal: ${how}`);
  if (outcome.status === 'failed' && !outcome.detail.startsWith('refused')) r.next.push(nextCommand('toggle-nla', ['--restore'], ctx));
  return r;
}

async function restoreOnTarget(o: NlaOptions, ctx: StepContext, why: string): Promise<NlaReport> {
  const raw = await runStep<NlaRaw>(ctx, buildNlaScript(o, ctx.dryRun));
  const report = interpretNla(raw, ctx, o);
  report.notes.push(`${why}: so the target restores its own newest toggle-nla backup that is not restored yet (values.json in the backup folder on the target)`);
  if (ctx.dryRun || report.status === 'would-change') return report;
  // The target undid a change that may still be journaled (an entry without an automatic undo): mark it.
  const from = raw.restoredFrom ?? null;
  if (report.status === 'changed' || report.status === 'ok') {
    const target = describeTarget(ctx.target);
    for (const e of await list(ctx.journal)) {
      if (e.script === 'toggle-nla' && !e.undone && e.target === target && from && e.backup === from) {
        await markUndone(e.id, { time: new Date().toISOString(), status: report.status, detail: 'restored with toggle-nla --restore (from the backup on the target)' }, ctx.journal);
        report.journal.push(e.id);
      }
    }
  }
  return report;
}

/** The value changes a journal entry recorded (its before/after), validated like the target's. */
function recordedChanges(e: JournalEntry): ValueChange[] {
  type Value = { scope?: unknown; name?: unknown; value?: unknown };
  const values = (v: unknown) => asArray<Value>((v as { values?: unknown } | null)?.values);
  const before = values(e.before);
  const after = values(e.after);
  return validChanges(before.map((b, i) => ({ scope: b?.scope, name: b?.name, before: b?.value ?? null, after: after[i]?.value ?? null }))) ?? [];
}

// ---------------------------------------------------------------- PowerShell

// The PowerShell is scripts/ps/toggle-nla.ps1 (with security.ps1, backup.ps1); one entry function per
// script built here. Values reach it only through $P; the registry keys and the task folder are the
// same on every server and are literals in the .ps1 files.
const STEP = { name: 'toggle-nla', file: 'toggle-nla' } as const;

/** The generated script for one toggle-nla run. */
export function buildNlaScript(o: NlaOptions, dryRun: boolean): string {
  const d = desiredValues(o);
  if (o.mode === 'status' && !Object.keys(d).length) {
    return psStep({
      ...STEP,
      summary: 'show NLA and security-layer settings, their Group Policy overrides and the expiry task (read-only)',
      entry: 'Get-RdpNlaStatus',
      params: { TaskName: REENABLE_TASK },
    });
  }
  if (o.mode === 'restore') {
    return psStep({
      ...STEP,
      summary: 'put back the RDP security values recorded by the newest toggle-nla change on this machine',
      entry: 'Restore-RdpLatestSetting',
      params: { TaskName: REENABLE_TASK, BackupRoot: o.backupRoot ?? '', DryRun: dryRun },
    });
  }
  const what = Object.entries(d).map(([k, v]) => `${k}=${v}`).join(', ');
  return psStep({
    ...STEP,
    summary: `set ${what}${o.policy ? ' (and the Group Policy values)' : ''}${o.forSeconds ? `, put back after ${o.forSeconds} s` : ''}`,
    entry: 'Set-RdpSecuritySetting',
    params: {
      Desired: d as Record<string, number>,
      Order: applyOrder(d).filter((n) => d[n] !== undefined),
      Policy: !!o.policy,
      ExpirySeconds: o.forSeconds ?? 0,
      RemoveTask: o.mode === 'enable',
      TaskName: REENABLE_TASK,
      BackupRoot: o.backupRoot ?? '',
      TaskScript: expiryTaskScript(),
      DryRun: dryRun,
    },
  });
}

/** The expiry task's last line: the two values its first two lines set (see Register-RdpExpiryTask). */
const EXPIRY_CALL = 'Restore-RdpExpiredSetting -rdpfixValuesJson:$rdpfixValuesJson -rdpfixBackupPath:$rdpfixBackupPath';

/** Drop full-line comments and indentation: the task's encoded command must stay short. */
export function minifyPs(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .join('\n');
}

/**
 * What the expiry task runs (as SYSTEM, unattended): the functions Restore-RdpExpiredSetting reaches
 * and the call line above, minified. The target prepends $rdpfixValuesJson and $rdpfixBackupPath as
 * quoted literals at registration time (ConvertTo-RdpLiteral, the same rule as psQuote), then
 * encodes it for -EncodedCommand. It has no $P block: it runs later, from the task, not from here.
 */
export function expiryTaskScript(): string {
  const { functions } = psStepParts({ ...STEP, summary: '', entry: 'Restore-RdpExpiredSetting', params: {} });
  // The task runs as SYSTEM on the server it was registered on: no host check (Assert-RdpHost) needed.
  return minifyPs([...functions.filter((f) => f.name !== 'Assert-RdpHost').map((f) => f.text), EXPIRY_CALL].join('\n\n'));
}

// ---------------------------------------------------------------- interpretation

const label = (n: string, v: number | null) =>
  v === null ? `${n} not set` : n === 'UserAuthentication' ? `NLA ${v === 1 ? 'required' : 'off'}` : n === 'SecurityLayer' ? `SecurityLayer ${['RDP', 'Negotiate', 'TLS'][v] ?? v} (${v})` : `${n} ${v}`;

function describe(e: EffectiveSecurity | null): string {
  if (!e) return 'unknown';
  return (['UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel'] as const)
    .map((n) => `${label(n, e[n].value)}${e[n].source === 'policy' ? ' [Group Policy]' : ''}`)
    .join(', ');
}

export function interpretNla(raw: NlaRaw, ctx: StepContext, o: NlaOptions): NlaReport {
  const before = raw.before ? effectiveSecurity(raw.before.local, raw.before.policy) : null;
  const after = raw.after ? effectiveSecurity(raw.after.local, raw.after.policy) : null;
  const changes = asArray<ValueChange>(raw.mode === 'restore' ? raw.restored : raw.changed);
  const plan = asArray<ValueChange>(raw.plan);
  const r: NlaReport = {
    ...emptyReport(ctx, o),
    before: raw.before ?? null,
    after: raw.after ?? null,
    backup: raw.backup ?? raw.restoredFrom ?? null,
    effectiveBefore: before,
    effectiveAfter: after,
    task: raw.task ?? null,
    refused: raw.refused ?? null,
  };
  r.status = (['ok', 'changed', 'would-change', 'failed'].includes(raw.status) ? raw.status : 'failed') as NlaReport['status'];
  if (raw.error) r.error = raw.error;
  r.warnings.push(...asArray<string>(raw.warnings), ...asArray<string>(raw.skipped));
  const problems = asArray<string>(raw.problems);

  // Verify in TypeScript too: every requested value must now be in force (policy wins).
  const d = desiredValues(o);
  if (r.status === 'changed' && raw.mode !== 'restore' && after) {
    for (const [n, v] of Object.entries(d) as Array<[SettingName, number]>) {
      if (after[n].value !== v) problems.push(`${n} in force is ${after[n].value ?? 'not set'} (${after[n].source}), not ${v}`);
    }
    if (problems.length) r.status = 'failed';
  }

  const weakening = (c: { name: string; after: number | null }) => (c.name === 'UserAuthentication' && c.after === 0) || (c.name === 'SecurityLayer' && c.after === 0);
  const weakens = [...changes, ...plan].some(weakening);
  if (weakens) {
    r.warnings.push('disabling NLA (or using RDP security) is a security downgrade: credentials are asked after the session starts, and EDR rules flag it as an attacker technique');
    if (!o.forSeconds && !r.task) r.warnings.push(`no expiry is set: re-enable with ${nextCommand('toggle-nla', ['enable'], ctx)}, or next time pass --for 2h`);
  }
  if ([...changes, ...plan].some((c) => c.scope === 'policy')) {
    r.warnings.push('a Group Policy value was changed in the registry: a domain or local GPO re-applies its own value at the next refresh (about every 90 minutes); change the GPO itself to make it last');
  }

  const task = r.task ? `; a scheduled task (${r.task.name}, SYSTEM) puts it back at ${r.task.due}` : '';
  switch (r.status) {
    case 'ok':
      r.summary = raw.mode === 'status' ? `in force: ${describe(before)}` : raw.note ?? `already in force: ${describe(before)}`;
      break;
    case 'would-change':
      r.summary = `would set ${plan.map((c) => `${c.scope === 'policy' ? 'policy ' : ''}${label(c.name, c.after)}`).join(', ') || 'the recorded values back'}${o.forSeconds ? ` and register a task that puts it back in ${o.forSeconds} s` : ''}${o.mode === 'enable' && raw.before?.task ? '; remove the expiry task' : ''} (now: ${describe(before)})`;
      break;
    case 'changed':
      r.summary = `${raw.mode === 'restore' ? 'restored' : 'now in force'}: ${describe(after)}${task}${raw.taskRemoved ? '; the expiry task was removed' : ''}`;
      break;
    default:
      r.summary = raw.error ?? (problems.join('; ') || 'the change failed');
  }
  // The step contract's changes: what changed, or in a dry run what would.
  r.changes = (r.status === 'would-change' ? plan : changes).map(withSummary);
  if (r.task && r.status !== 'would-change') r.changes.push({ summary: `registered the expiry task ${r.task.name} (SYSTEM): it puts the previous values back at ${r.task.due}`, task: r.task });
  if (raw.taskRemoved) r.changes.push({ summary: 'removed the expiry task', taskRemoved: true });
  r.evidence.push(`before: ${describe(before)}`);
  if (after && r.status === 'changed') r.evidence.push(`after: ${describe(after)}`);
  for (const c of changes) r.evidence.push(`${c.scope} ${c.name}: ${c.before ?? 'not set'} → ${c.after ?? 'not set'}${c.via ? ` (${c.via})` : ''}`);
  if (raw.before?.task) r.evidence.push(`expiry task ${raw.before.task.name}: ${raw.before.task.state ?? ''}${raw.before.task.nextRun ? `, runs ${raw.before.task.nextRun}` : ''}`);
  if (problems.length && r.status === 'failed') r.evidence.push(...problems);
  applyHandshake(r, handshakeOf(raw));
  if (raw.refused === 'policy-override') r.next.push(nextCommand('toggle-nla', [...cliArgs(o), '--policy'], ctx));
  if (r.status === 'changed' && weakens) {
    r.next.push(nextCommand('toggle-nla', ['enable'], ctx));
    r.notes.push(`the command under Next turns NLA back on${r.task ? ` before the expiry task does (${r.task.due})` : ''}`);
  }
  if (raw.before?.domainJoined && [...changes, ...plan].some((c) => c.scope === 'policy')) r.warnings.push('this machine is domain-joined: the domain GPO wins at the next refresh');
  return r;
}

/** A report with nothing seen yet: the contract fields empty, toggle-nla's own fields null. */
function emptyReport(ctx: StepContext, o: NlaOptions): NlaReport {
  return { ...baseReport('toggle-nla', ctx), mode: o.mode, effectiveBefore: null, effectiveAfter: null, changes: [], task: null, refused: null };
}

/** One value change as the contract's `changes` lists it. */
function withSummary(c: ValueChange): ReportChange {
  return { summary: `${c.scope} ${c.name} ${c.before ?? 'not set'} → ${c.after ?? 'not set'}`, ...c };
}

function cliArgs(o: NlaOptions): string[] {
  const a: string[] = [];
  if (o.mode === 'enable' || o.mode === 'disable') a.push(o.mode);
  if (o.securityLayer) a.push('--security-layer', o.securityLayer);
  if (o.minEncryptionLevel !== undefined) a.push('--min-encryption-level', String(o.minEncryptionLevel));
  return a;
}

// Last, so every constant above is initialised before main runs.
if (isMain(import.meta.url)) await runCli(main);
