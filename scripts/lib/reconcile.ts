// The client journal and the target's records brought into agreement (`undo --reconcile`, the
// runner's --resume, `undo --from-target`). An intent entry is written before a changing step runs;
// when the step returns it is resolved with the entries that journal its changes. When it is left
// open (this process was killed, the channel dropped), the target's record (scripts/ps/record.ps1)
// says what happened: complete -> the step's changes are journaled from its result; stopped half-way
// -> the change it was making is journaled too, so its undo puts back whatever did change; no record
// -> nothing that needs an undo changed; still running -> ask again later. A target that cannot be
// reached leaves the intent open. Changes already journaled for a record are never journaled twice.
import { describeTarget, parseTarget, type Target } from './channels.ts';
import { isIntent, list, markUndone, record, resolveIntent, type DamagedFile, type JournalEntry } from './journal.ts';
import { channelRunner, type Runner } from './server-step.ts';
import { readTargetRecords, recordChanges, type ListedRecord, type TargetRecord, type TargetRecords } from './target-record.ts';

export type ReconcileState = 'completed' | 'interrupted' | 'not-started' | 'running' | 'unknown';

export interface ReconcileOutcome {
  id: string;
  script: string;
  target: string;
  runId: string;
  state: ReconcileState;
  record: string | null;
  /** The status the step's result had (a complete record), else null. */
  status: string | null;
  entries: string[];
  detail: string;
}

export interface ReconcileOptions {
  journal?: string;
  run?: Runner;
  /** The clock (ms since the epoch) the start grace is measured with; tests set it. */
  now?: number;
}

/**
 * How long after its intent entry a step may still start on the target although the client died:
 * the channel's own connect time (ssh's ConnectTimeout is 15 s) plus PowerShell's start and the
 * record's first write, with room to spare; Run Command may queue a script for many minutes.
 */
export function startGraceMs(t: Target): number {
  switch (t.kind) {
    case 'local':
      return 30_000;
    case 'ssh':
      return 60_000;
    case 'winrm':
      return 180_000;
    case 'azure':
      return 20 * 60_000;
    default:
      return 180_000;
  }
}

/** Journal the changes a record stands for (once: entries already journaled for it are returned instead). */
export async function journalRecord(rec: TargetRecord, target: string, runId: string, o: ReconcileOptions, known?: JournalEntry[]): Promise<JournalEntry[]> {
  const have = (known ?? (await list(o.journal))).filter((e) => e.targetRecord === rec.id && !isIntent(e));
  if (have.length) return have;
  const ctx = { target: parseTarget(target), dryRun: false, ...(o.journal ? { journal: o.journal } : {}) };
  const out: JournalEntry[] = [];
  for (const c of recordChanges(rec, ctx)) {
    const summary = rec.phase === 'complete' ? c.summary : `${c.summary} (the run stopped half-way: its undo puts back whatever of this happened)`;
    const e = await record({ script: rec.step, target, runId, ...c, summary, targetRecord: rec.id }, o.journal);
    if (rec.undone) {
      await markUndone(e.id, { time: rec.undone.time, status: 'ok', detail: `undone on the target (${rec.undone.by || 'rdpfix'}, ${rec.undone.user || 'unknown user'})` }, o.journal);
      e.undone = { time: rec.undone.time, status: 'ok' };
    }
    out.push(e);
  }
  return out;
}

function resultStatus(rec: TargetRecord): string | null {
  return rec.phase === 'complete' && typeof rec.result.status === 'string' ? rec.result.status : null;
}

/** Resolve open intent entries from their targets' records (one listing per target). */
export async function reconcileIntents(intents: JournalEntry[], o: ReconcileOptions = {}): Promise<ReconcileOutcome[]> {
  const out: ReconcileOutcome[] = [];
  const byTarget = new Map<string, JournalEntry[]>();
  for (const e of intents) byTarget.set(e.target, [...(byTarget.get(e.target) ?? []), e]);
  for (const [target, mine] of byTarget) {
    let listing: TargetRecords;
    try {
      listing = await readTargetRecords(parseTarget(target), o.run ?? channelRunner);
    } catch (err) {
      for (const e of mine) out.push({ id: e.id, script: e.script, target, runId: e.runId, state: 'unknown', record: null, status: null, entries: [], detail: `the target's records could not be read: ${(err as Error).message}` });
      continue;
    }
    const known = await list(o.journal);
    for (const e of mine) out.push(await reconcileOne(e, target, listing, known, o));
  }
  return out;
}

async function reconcileOne(e: JournalEntry, target: string, listing: TargetRecords, known: JournalEntry[], o: ReconcileOptions): Promise<ReconcileOutcome> {
  const base = { id: e.id, script: e.script, target, runId: e.runId };
  const found: ListedRecord | undefined = listing.records.find((r) => r.record.tag === e.id);
  if (!found) {
    if (listing.damaged.length) {
      // A damaged record may be this one: it is not trusted, and the outcome stays unknown.
      return { ...base, state: 'unknown', record: null, status: null, entries: [], detail: `no record names this run, and ${listing.damaged.length} record file(s) on the target are damaged: ${listing.damaged.map((d) => `${d.file} (${d.why})`).join('; ')}` };
    }
    // A client killed while its channel was still connecting leaves that channel (an ssh child, a
    // queued Run Command) to start the step later: no record yet is not "never started" until the
    // channel could no longer start it (found by the fault soak: ssh connected after a reconcile).
    const age = o.now !== undefined ? o.now - Date.parse(e.time) : Date.now() - Date.parse(e.time);
    const grace = startGraceMs(parseTarget(target));
    if (Number.isFinite(age) && age < grace) {
      const at = new Date(Date.parse(e.time) + grace).toISOString();
      return { ...base, state: 'unknown', record: null, status: null, entries: [], detail: `no record of this run on ${target} yet, and it began ${Math.max(0, Math.round(age / 1000))} s ago: its channel may still start it; reconcile again after ${at}` };
    }
    const detail = `${target} has no record of this run: it changed nothing that needs an undo (it stopped before its first change, never started, or made only a change without one)`;
    await resolveIntent(e.id, { outcome: 'not-started', record: null, entries: [], detail }, o.journal);
    return { ...base, state: 'not-started', record: null, status: null, entries: [], detail };
  }
  const rec = found.record;
  if (found.running) {
    return { ...base, state: 'running', record: rec.id, status: null, entries: [], detail: `the step is still running on ${target} (pid ${rec.pid}, record ${rec.id}): reconcile again when it ends` };
  }
  const entries = await journalRecord(rec, target, e.runId, o, known);
  const state = rec.phase === 'complete' ? 'completed' : 'interrupted';
  const detail =
    state === 'completed'
      ? `completed on the target (${resultStatus(rec)}); ${entries.length} change(s) journaled from record ${rec.id}`
      : `stopped half-way on the target (record ${rec.id}, last written ${rec.updated}); ${entries.length} change(s) journaled: their undo puts back whatever did change`;
  const status = resultStatus(rec);
  await resolveIntent(e.id, { outcome: state, record: rec.id, entries: entries.map((x) => x.id), ...(status ? { status } : {}), detail }, o.journal);
  return { ...base, state, record: rec.id, status: resultStatus(rec), entries: entries.map((x) => x.id), detail };
}

export interface ImportedRecords {
  listing: TargetRecords;
  /** Entries (journaled, or only built when `persist` is false) of records not undone yet, newest first. */
  entries: JournalEntry[];
  /** Records left out, with why (undone already, still running, nothing to undo). */
  skipped: Array<{ record: string; why: string }>;
}

/**
 * What a target's records hold, as journal entries of this client: for `undo --from-target`,
 * whoever made the change and from wherever. Records already journaled here give their entries;
 * the others are journaled now (persist) or only built (a dry run or --emit writes nothing).
 */
export async function importTargetRecords(target: string, o: ReconcileOptions & { persist: boolean; ids?: string[] }): Promise<ImportedRecords> {
  const t = parseTarget(target);
  const where = describeTarget(t);
  const listing = await readTargetRecords(t, o.run ?? channelRunner);
  const known = await list(o.journal);
  const entries: JournalEntry[] = [];
  const skipped: ImportedRecords['skipped'] = [];
  const chosen = o.ids?.length ? listing.records.filter((r) => o.ids!.includes(r.record.id)) : listing.records;
  for (const id of o.ids ?? []) if (!listing.records.some((r) => r.record.id === id)) skipped.push({ record: id, why: `no such record on ${where}` });
  for (const r of chosen) {
    const rec = r.record;
    if (rec.undone) {
      skipped.push({ record: rec.id, why: `already undone on the target (${rec.undone.time}, ${rec.undone.status}${rec.undone.by ? `, by ${rec.undone.by}` : ''})` });
      continue;
    }
    if (r.running) {
      skipped.push({ record: rec.id, why: `its run is still going on (pid ${rec.pid})` });
      continue;
    }
    const runId = `target-${rec.id}`.slice(0, 80);
    let mine: JournalEntry[];
    if (o.persist) {
      mine = (await journalRecord(rec, where, runId, o, known)).filter((e) => !e.undone);
    } else {
      const have = known.filter((e) => e.targetRecord === rec.id && !isIntent(e));
      mine = have.length
        ? have.filter((e) => !e.undone)
        : recordChanges(rec, { target: t, dryRun: false }).map((c, i) => ({ ...c, id: `${rec.id}-${i + 1}`, time: rec.started, runId, script: rec.step, target: where, targetRecord: rec.id }));
    }
    if (!mine.length) skipped.push({ record: rec.id, why: 'nothing in it to undo' });
    entries.push(...mine);
  }
  // Newest first, as every undo goes.
  entries.sort((a, b) => (a.time === b.time ? b.id.localeCompare(a.id) : b.time.localeCompare(a.time)));
  return { listing, entries, skipped };
}

export type { DamagedFile };
