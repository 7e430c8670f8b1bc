// The undo core: select journal entries, check each against the journal's allow-list
// (lib/journal.ts undoPermit), run its undo through the recorded channel (a PowerShell undo) or as
// the recorded argv (a local MTU command), verify, mark the entry undone and journal the undo.
// scripts/undo.ts is its CLI; `toggle-nla --restore` and `lower-mtu --revert` undo their own
// journal entries through it, so every undo, whoever starts it, passes the same checks.
//
// An entry's PowerShell undo reads back what it restored and reports 'changed', 'ok' (already as
// before) or 'failed'; a command undo is proven by the MTU read back (the verify argv, or `ip link
// show` / `ifconfig`), never by its exit code alone. 'changed' and 'ok' mark the entry undone;
// everything but 'ok' is itself journaled (script 'undo', never offered for undo again).
// undoEntries stops at the first failure: undoing older changes under a newer one that could not
// be undone would leave a mix nobody tested.
import { parseTarget } from './channels.ts';
import { RdpfixError, UsageError } from './errors.ts';
import { currentRunId, isIntent, isUndoEntry, journalDir, list, markUndone, readJournal, record, UNDO_SCRIPT, undoPermit, type DamagedFile, type JournalEntry } from './journal.ts';
import type { Status } from './output.ts';
import type { Report, ReportChange } from './report.ts';
import { execArgv as execProgram, parseIfconfigMtu, parseIpLinkMtu, systemProgram } from './route.ts';
import { channelRunner, type Runner } from './server-step.ts';
import { markRecordScript } from './target-record.ts';

// ---------------------------------------------------------------- types

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a local argv command (never through a shell). Tests pass a fake. */
export type Exec = (argv: string[]) => Promise<CommandResult>;

/** The real one: no shell, C locale; a bare program name is looked up in sbin too (where `ip` is). */
export const execArgv: Exec = async (argv) => {
  const [cmd, ...args] = argv as [string, ...string[]];
  const r = await execProgram([cmd.includes('/') ? cmd : systemProgram(cmd), ...args], 120_000);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr || (r.error ? `${cmd}: ${r.error}` : '') };
};

export interface UndoOptions {
  journal?: string;
  run?: Runner;
  exec?: Exec;
  /** Called before each entry (human progress). */
  onEntry?: (e: JournalEntry) => void;
  /** The platform command undos are checked against (default: this machine's). */
  platform?: NodeJS.Platform;
  /** Who undoes it, when not `undo` itself (e.g. 'toggle-nla --restore'): named in the mark and the undo's entry. */
  by?: string;
  /**
   * false: mark the entry, but do not journal the undo itself. Only lower-mtu --revert passes it,
   * so that its journal folder holds only lower-mtu entries afterwards, as it always has.
   */
  recordUndo?: boolean;
}

export interface UndoOutcome {
  id: string;
  script: string;
  target: string;
  summary: string;
  status: Status;
  detail: string;
  /** Id of the journal entry recording this undo. */
  undoEntry?: string;
}

/** 'nothing-to-undo': the selection was valid and selected nothing (exit 1, nothing run). */
export type UndoStatus = Status | 'nothing-to-undo';

/** One change an undo made, in the step contract's `changes` shape (lib/report.ts). */
export interface UndoChange extends ReportChange {
  id: string;
  script: string;
  target: string;
}

/**
 * The step contract (lib/report.ts; undo names no cause) with undo's own status 'nothing-to-undo';
 * `changes` are the entries undone (status 'changed'), newest first; `evidence` one line per entry;
 * `next` exact commands (retry, list), prose in `notes`.
 */
export interface UndoReport extends Omit<Report, 'status' | 'changes'> {
  status: UndoStatus;
  changes: UndoChange[];
  dryRun: boolean;
  results: UndoOutcome[];
  /** Journal files that are not valid entries: skipped, named with why. */
  damaged: DamagedFile[];
}

// ---------------------------------------------------------------- selection

/** Entries by id, in the order given; an unknown id is a usage error, a damaged one says why. */
export async function byIds(ids: string[], dir?: string): Promise<JournalEntry[]> {
  const { entries, damaged } = await readJournal(dir);
  const out: JournalEntry[] = [];
  for (const id of ids) {
    if (!/^[A-Za-z0-9-]{1,120}$/.test(id)) throw new UsageError(`invalid journal id ${JSON.stringify(id)}`);
    const e = entries.find((x) => x.id === id);
    if (!e) {
      const bad = damaged.find((d) => d.file.endsWith(`/${id}.json`) || d.file.endsWith(`\\${id}.json`));
      if (bad) throw new UsageError(`journal entry ${id} is damaged and cannot be undone: ${bad.why}`, `the file: ${bad.file}`);
      throw new UsageError(`no journal entry ${JSON.stringify(id)} in ${journalDir(dir)}`, 'list them with: npx tsx scripts/undo.ts --list');
    }
    out.push(e);
  }
  return out;
}

/** The newest run (optionally on one target), not yet undone, newest first. */
export function lastRunFor(all: JournalEntry[], target: string | undefined): JournalEntry[] {
  const mine = all.filter((e) => !isUndoEntry(e) && !isIntent(e) && (!target || e.target === target));
  const last = mine.at(-1);
  return last ? mine.filter((e) => e.runId === last.runId && !e.undone).reverse() : [];
}

/** Changes not yet undone that `keep` selects (undo entries never), newest first. */
export function openEntries(all: JournalEntry[], keep: (e: JournalEntry) => boolean = () => true): JournalEntry[] {
  return all.filter((e) => !e.undone && !isUndoEntry(e) && !isIntent(e) && keep(e)).reverse();
}

/** What undoing these entries would do, from the allow-list alone: nothing runs, no target is asked. */
export function planUndo(entries: JournalEntry[]): UndoOutcome[] {
  return entries.map((e) => {
    const p = undoPermit(e);
    const base = { id: e.id, script: e.script, target: e.target, summary: e.summary };
    if (!p.ok) return { ...base, status: 'failed', detail: `would refuse: ${p.why}` };
    if (p.kind === 'none') return { ...base, status: 'skipped', detail: p.reason };
    return { ...base, status: 'would-change', detail: p.kind === 'powershell' ? `PowerShell on ${p.target}` : `local: ${p.argv.join(' ')}` };
  });
}

// ---------------------------------------------------------------- undo

/** Read back the MTU of a Linux or macOS interface through `exec` (null when it cannot be read). */
async function readBackMtu(exec: Exec, platform: 'linux' | 'darwin', iface: string, verify?: string[]): Promise<{ mtu: number | null; argv: string[] }> {
  const argv = verify ?? (platform === 'linux' ? ['ip', 'link', 'show', 'dev', iface] : ['ifconfig', iface]);
  const r = await exec(argv);
  const mtu = r.code === 0 ? (platform === 'linux' ? parseIpLinkMtu(r.stdout) : parseIfconfigMtu(r.stdout)) : null;
  return { mtu, argv };
}

function resultStatus(raw: unknown): { status: string; detail: string; backup: string | null; after: unknown } {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const problems = Array.isArray(r.problems) ? (r.problems as unknown[]).map(String) : typeof r.problems === 'string' ? [r.problems] : [];
  const skipped = Array.isArray(r.skipped) ? (r.skipped as unknown[]).map(String) : typeof r.skipped === 'string' ? [r.skipped] : [];
  const detail = [typeof r.error === 'string' ? r.error : '', ...problems, ...skipped.map((s) => `kept: ${s}`)].filter(Boolean).join('; ');
  return { status: typeof r.status === 'string' ? r.status : 'failed', detail, backup: typeof r.backup === 'string' ? r.backup : null, after: r.after ?? null };
}

/**
 * Undo one entry and return the outcome with the raw result its PowerShell undo sent back (null
 * for a command undo, a refused one, or a channel that failed), for a caller that reports it in
 * its own terms (toggle-nla --restore). Does not check `undone`: the caller selects.
 */
export async function runUndo(e: JournalEntry, o: UndoOptions = {}): Promise<{ outcome: UndoOutcome; raw: unknown }> {
  const base = { id: e.id, script: e.script, target: e.target, summary: e.summary };
  let status: Status;
  let detail = '';
  let backup: string | null = null;
  let after: unknown = e.before;
  let raw: unknown = null;
  const u = undoPermit(e);
  if (!u.ok) return { outcome: { ...base, status: 'failed', detail: `refused, nothing run: ${u.why}` }, raw };
  if (u.kind === 'command' && u.platform !== (o.platform ?? process.platform)) {
    return { outcome: { ...base, status: 'failed', detail: `refused, nothing run: the undo is a ${u.platform} command and this machine runs ${o.platform ?? process.platform}` }, raw };
  }
  try {
    if (u.kind === 'none') {
      return { outcome: { ...base, status: 'skipped', detail: `cannot be undone automatically: ${u.reason}` }, raw };
    }
    if (u.kind === 'powershell') {
      // The same channel the change went through, validated like a --target.
      let target;
      try {
        target = parseTarget(u.target);
      } catch (err) {
        return { outcome: { ...base, status: 'failed', detail: `refused, nothing run: the recorded target is not valid: ${(err as Error).message}` }, raw };
      }
      raw = await (o.run ?? channelRunner)(target, u.script);
      const r = resultStatus(raw);
      backup = r.backup;
      if (r.after !== null) after = r.after;
      detail = r.detail;
      status = r.status === 'changed' ? 'changed' : r.status === 'ok' ? 'ok' : 'failed';
      if (status === 'ok' && !detail) detail = 'already as before (nothing to put back)';
    } else {
      const exec = o.exec ?? execArgv;
      const r = await exec(u.argv);
      if (r.code !== 0) {
        status = 'failed';
        detail = `${u.argv.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`;
      } else if (u.platform === 'win32') {
        status = 'changed';
        detail = `ran ${u.argv.join(' ')}`;
      } else {
        // The exit code of ip/ifconfig is not the proof: the MTU read back is.
        const back = await readBackMtu(exec, u.platform, u.iface, u.verify);
        status = back.mtu === u.mtu ? 'changed' : 'failed';
        after = { interface: u.iface, mtu: back.mtu };
        detail = back.mtu === u.mtu ? `ran ${u.argv.join(' ')}; ${back.argv.join(' ')} reads MTU ${back.mtu}` : `ran ${u.argv.join(' ')}, but ${back.argv.join(' ')} reads MTU ${back.mtu ?? '(unreadable)'}, not ${u.mtu}`;
      }
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    status = 'failed';
    detail = err instanceof RdpfixError && err.hint ? `${err.message} (${err.hint})` : (err as Error).message;
  }
  const outcome: UndoOutcome = { ...base, status, detail };
  if (status === 'changed' || status === 'ok') {
    await markEntry(e, status, detail, o);
    if (e.targetRecord && u.kind === 'powershell') {
      const said = await markTargetRecord(e, status, o);
      if (said) outcome.detail = [outcome.detail, said].filter(Boolean).join('; ');
    }
  }
  if (status !== 'ok' && o.recordUndo !== false) {
    // The undo is itself a change (or a failed attempt at one): journal it, never to be undone
    // by `undo --last`.
    const rec = await record(
      {
        script: UNDO_SCRIPT,
        target: e.target,
        summary: `undo of ${e.id} (${e.script})${o.by ? ` by ${o.by}` : ''}: ${status}${detail ? ` — ${detail.slice(0, 200)}` : ''}`,
        before: e.after,
        after,
        backup,
        undo: { kind: 'none', reason: `to redo, run ${e.script} again` },
      },
      o.journal,
    );
    outcome.undoEntry = rec.id;
  }
  return { outcome, raw };
}

/**
 * The target's record of a change is marked undone once every entry journaling it is, so that
 * `undo --from-target` from any machine sees it. A mark that fails is said, not fatal: the undo
 * itself is done and verified.
 */
async function markTargetRecord(e: JournalEntry, status: 'changed' | 'ok', o: UndoOptions): Promise<string> {
  const open = (await list(o.journal)).filter((x) => x.targetRecord === e.targetRecord && x.id !== e.id && !x.undone && !isIntent(x));
  if (open.length) return '';
  try {
    const raw = (await (o.run ?? channelRunner)(parseTarget(e.target), markRecordScript(e.targetRecord!, status, o.by ?? 'rdpfix undo'))) as { status?: string; error?: string } | null;
    if (raw?.status === 'changed' || raw?.status === 'ok') return '';
    return `the target record ${e.targetRecord} was not marked undone: ${raw?.error ?? JSON.stringify(raw).slice(0, 120)}`;
  } catch (err) {
    return `the target record ${e.targetRecord} was not marked undone: ${(err as Error).message}`;
  }
}

/** Undo one entry (does not check `undone`; the caller selects). */
export async function undoEntry(e: JournalEntry, o: UndoOptions = {}): Promise<UndoOutcome> {
  return (await runUndo(e, o)).outcome;
}

/**
 * Mark an entry undone without running its undo, because the caller read the target and found it
 * already as before (lower-mtu --revert, when the interface already has the value it would put
 * back). Like an undo that reports 'ok': marked, not journaled.
 */
export async function markAlreadyUndone(e: JournalEntry, detail: string, o: UndoOptions = {}): Promise<UndoOutcome> {
  await markEntry(e, 'ok', detail, o);
  return { id: e.id, script: e.script, target: e.target, summary: e.summary, status: 'ok', detail };
}

function markEntry(e: JournalEntry, status: 'changed' | 'ok', detail: string, o: UndoOptions): Promise<void> {
  const said = [detail, o.by ? `undone by ${o.by}` : ''].filter(Boolean).join('; ');
  return markUndone(e.id, { time: new Date().toISOString(), status, ...(said ? { detail: said } : {}) }, o.journal);
}

/** Undo entries newest first; stops at the first failure (the rest are reported, not run). */
export async function undoEntries(entries: JournalEntry[], o: UndoOptions = {}): Promise<UndoReport> {
  currentRunId();
  const results: UndoOutcome[] = [];
  let failed = false;
  for (const e of entries) {
    if (failed) {
      results.push({ id: e.id, script: e.script, target: e.target, summary: e.summary, status: 'skipped', detail: 'not attempted: a newer undo failed first' });
      continue;
    }
    if (e.undone) {
      results.push({ id: e.id, script: e.script, target: e.target, summary: e.summary, status: 'ok', detail: `already undone (${e.undone.time}, ${e.undone.status})` });
      continue;
    }
    o.onEntry?.(e);
    const r = await undoEntry(e, o);
    results.push(r);
    if (r.status === 'failed') failed = true;
  }
  const n = (s: Status) => results.filter((r) => r.status === s).length;
  const status: UndoStatus = !results.length ? 'nothing-to-undo' : failed ? 'failed' : n('changed') ? 'changed' : 'ok';
  const firstFailed = results.find((r) => r.status === 'failed');
  const summary = !results.length
    ? 'nothing to undo'
    : firstFailed
      ? `undo ${firstFailed.detail.startsWith('refused') ? 'refused' : 'failed'} at ${firstFailed.id}; ${n('changed')} undone before it, ${n('skipped')} not attempted or not undoable`
      : `${n('changed')} change(s) undone${n('ok') ? `, ${n('ok')} already as before` : ''}${n('skipped') ? `, ${n('skipped')} cannot be undone automatically` : ''}`;
  const journalFlag = o.journal ? ` --journal ${shellWord(o.journal)}` : '';
  const next = firstFailed && !firstFailed.detail.startsWith('refused') ? [`npx tsx scripts/undo.ts ${firstFailed.id} --yes${journalFlag}`] : [];
  const notes = firstFailed ? [`${firstFailed.id}: ${firstFailed.detail}`] : [];
  return { status, summary, cause: null, dryRun: false, results, changes: undoChanges(results), evidence: outcomeLines(results), next, notes, damaged: [] };
}

/** The contract's `changes`: each entry an undo put back (or, planned, would put back). */
export function undoChanges(results: UndoOutcome[]): UndoChange[] {
  return results
    .filter((r) => r.status === 'changed' || r.status === 'would-change')
    .map((r) => ({ summary: `${r.status === 'changed' ? 'undid' : 'would undo'} ${r.id} (${r.script} on ${r.target}): ${r.summary.replace(/[\r\n]+/g, ' ')}`, id: r.id, script: r.script, target: r.target }));
}

/** The contract's `evidence`: one line per entry. */
export function outcomeLines(results: UndoOutcome[]): string[] {
  return results.map((r) => `${r.id}: ${r.status}${r.detail ? ` (${r.detail})` : ''}`);
}

/** A path as one word for a printed shell command (single quotes unless it is plain). */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
