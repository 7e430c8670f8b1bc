// toggle-nla's journal change, shared by the step (scripts/toggle-nla.ts journals it after a run) and
// by whatever turns a raw result back into that change later (lib/step-changes.ts): the value
// changes the target reports, which of those reports rdpfix will embed in an undo script, and the
// undo itself (scripts/ps/toggle-nla.ps1 Restore-RdpSecuritySetting).
import { describeTarget } from './channels.ts';
import { psStep } from './ps-loader.ts';
import { REENABLE_TASK } from './server-ps.ts';
import { asArray, psUndo, targetPath, type Change, type RawResult, type StepContext } from './server-step.ts';

export const SETTING_NAMES = ['UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel'] as const;
export type SettingName = (typeof SETTING_NAMES)[number];

/** One value change as the target records it. */
export interface ValueChange {
  scope: 'local' | 'policy';
  name: SettingName;
  before: number | null;
  after: number | null;
  via?: string | null;
}

export interface SecurityState {
  local?: Record<string, unknown>;
  policy?: Record<string, unknown>;
  task?: { name?: string; state?: string; nextRun?: string | null } | null;
  domainJoined?: boolean | null;
}

/** What toggle-nla.ps1 returns (Get-RdpNlaStatus, Set-RdpSecuritySetting, Restore-RdpLatestSetting). */
export interface NlaRaw extends RawResult {
  mode?: string;
  refused?: string | null;
  note?: string | null;
  warnings?: string[] | string;
  before?: SecurityState;
  after?: SecurityState | null;
  plan?: ValueChange[] | ValueChange;
  changed?: ValueChange[] | ValueChange;
  restored?: ValueChange[] | ValueChange;
  skipped?: string[] | string;
  backup?: string | null;
  task?: { name: string; due: string } | null;
  taskRemoved?: boolean;
  restoredFrom?: string | null;
  problems?: string[] | string;
}

/**
 * The value changes the target reported, if every one is a known setting with a value rdpfix will
 * embed in an undo script (an integer 0-4 or null); null when any is not.
 */
export function validChanges(v: unknown): ValueChange[] | null {
  const out: ValueChange[] = [];
  for (const c of asArray<Partial<ValueChange>>(v)) {
    const ok = (x: unknown) => x === null || (typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 4);
    if (!c || (c.scope !== 'local' && c.scope !== 'policy') || !SETTING_NAMES.includes(c.name as SettingName) || !ok(c.before ?? null) || !ok(c.after ?? null)) return null;
    out.push({ scope: c.scope, name: c.name as SettingName, before: c.before ?? null, after: c.after ?? null, ...(c.via ? { via: c.via } : {}) });
  }
  return out;
}

/**
 * Recorded values -> the undo script (explicit values; no dependence on files on the target). An
 * undo always removes the expiry task: -RemoveTask is a constant switch of the call.
 */
export function buildNlaUndoScript(changes: ValueChange[], backup: string | null): string {
  const values: Record<'local' | 'policy', Record<string, { before: number | null; after: number | null }>> = { local: {}, policy: {} };
  for (const c of changes) values[c.scope][c.name] = { before: c.before, after: c.after };
  return psStep({
    name: 'toggle-nla-undo',
    file: 'toggle-nla',
    summary: 'put back the RDP security values recorded before a toggle-nla change',
    entry: 'Restore-RdpSecuritySetting',
    params: { Values: values, BackupPath: backup ?? '', TaskName: REENABLE_TASK, DryRun: false },
    switches: ['RemoveTask'],
  });
}

/**
 * The journal change of one toggle-nla change run (Set-RdpSecuritySetting): none for a dry run's
 * 'would-change' or when nothing changed (no value, no expiry task registered or removed), else one
 * change holding every value changed and the task, undone by buildNlaUndoScript (or, when the target
 * reported values rdpfix will not embed, no automatic undo). Pure: raw as runStep returns it.
 * A --restore run is not journaled here (lib/undo.ts journals the undo it runs): callers skip it.
 */
export function nlaChanges(raw: NlaRaw, ctx: StepContext): Change[] {
  if (raw.status === 'would-change') return [];
  const changes = validChanges(raw.changed);
  const any = asArray(raw.changed).length > 0 || raw.task || raw.taskRemoved;
  if (!any) return [];
  const backup = targetPath(raw.backup);
  return [
    {
      summary: `${(changes ?? []).map((c) => `${c.scope} ${c.name} ${c.before ?? 'unset'}→${c.after ?? 'unset'}`).join(', ') || 'expiry task'}${raw.task ? ` (expires ${raw.task.due})` : ''}${raw.taskRemoved ? ' (expiry task removed)' : ''}`,
      before: { values: (changes ?? []).map((c) => ({ scope: c.scope, name: c.name, value: c.before })), task: raw.before?.task ?? null },
      after: { values: (changes ?? []).map((c) => ({ scope: c.scope, name: c.name, value: c.after })), task: raw.task ?? null },
      backup,
      undo: changes
        ? psUndo(ctx, buildNlaUndoScript(changes, backup))
        : { kind: 'none', reason: `the target reported values rdpfix will not embed in a script; run toggle-nla --restore on ${describeTarget(ctx.target)}` },
    },
  ];
}
