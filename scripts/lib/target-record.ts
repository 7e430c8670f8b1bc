// The target-side journal as the client reads it (the PowerShell side is scripts/ps/record.ps1).
// A changing step writes record.json in its protected backup folder on the target before its first
// change and completes it at the end. Here: tagging the script with the client's intent entry (the
// one $P value that differs from what --emit prints), listing a target's records, checking each
// against the schema (a damaged one is reported, never trusted), turning a record into the journal
// changes its step would have journaled (lib/step-changes.ts, the same code as a normal run), and
// marking a record undone.
import { describeTarget, type Target } from './channels.ts';
import { ENTRY_ID, isObj, type DamagedFile } from './journal.ts';
import { psQuote } from './ps.ts';
import { psStep, RECORD_TAG_PARAM } from './ps-loader.ts';
import { channelRunner, isoDates, type Change, type Runner, type StepContext } from './server-step.ts';
import { stepChanges, MUTATING_STEPS, isMutatingStep } from './step-changes.ts';

/** The $P line every record-writing script carries (psStepParts adds it). */
export const TAG_LINE = `    ${RECORD_TAG_PARAM} = ''`;

const TAG = ENTRY_ID;

/** Does this generated script write a target record (exactly one RecordTag line in its $P block)? */
export function writesRecord(script: string): boolean {
  return script.split('\n').filter((l) => l === TAG_LINE).length === 1;
}

/** The script with the client's intent entry id as its RecordTag: the only text that differs from --emit. */
export function tagScript(script: string, tag: string): string {
  if (!TAG.test(tag)) throw new TypeError(`not a journal id: ${JSON.stringify(tag)}`);
  if (!writesRecord(script)) throw new TypeError('the script has no RecordTag line to tag');
  const lines = script.split('\n');
  lines[lines.indexOf(TAG_LINE)] = `    ${RECORD_TAG_PARAM} = ${psQuote(tag)}`;
  return lines.join('\n');
}

export interface TargetRecord {
  schema: 'rdpfix-target-record/1';
  id: string;
  step: (typeof MUTATING_STEPS)[number];
  /** The client's intent entry id ('' for a pasted or Run Command script). */
  tag: string;
  computer: string;
  user: string;
  pid: number;
  processStarted: string;
  started: string;
  updated: string;
  finished: string | null;
  phase: 'intent' | 'complete';
  backup: string;
  options: Record<string, unknown>;
  result: Record<string, unknown>;
  /** The result as if the change in flight had happened: what an undo of an interrupted run must cover. */
  assume: Record<string, unknown>;
  nested: { step: string; backup: string; result: Record<string, unknown>; assume: Record<string, unknown> } | null;
  undone: { time: string; status: string; by: string; user: string } | null;
}

export interface ListedRecord {
  record: TargetRecord;
  /** The process that wrote an unfinished record still runs (the step is still working). */
  running: boolean;
  /** Bytes in the record's folder (the backup and the record). */
  size: number;
  folder: string;
}

const ID = ENTRY_ID;

/** Check one record as the target sent it; returns it or throws an Error saying what is wrong. */
export function parseTargetRecord(doc: unknown): TargetRecord {
  const fail = (why: string): never => {
    throw new Error(why);
  };
  if (!isObj(doc)) fail('not a JSON object');
  const d = isoDates(doc as Record<string, unknown>);
  if (d.schema !== 'rdpfix-target-record/1') fail(`unknown schema ${JSON.stringify(d.schema)}`);
  if (typeof d.id !== 'string' || !ID.test(d.id)) fail('no valid "id"');
  if (!isMutatingStep(d.step)) fail(`"step" ${JSON.stringify(d.step)} is not a step that writes records`);
  if (typeof d.tag !== 'string' || (d.tag !== '' && !TAG.test(d.tag))) fail('no valid "tag"');
  if (d.phase !== 'intent' && d.phase !== 'complete') fail(`unknown "phase" ${JSON.stringify(d.phase)}`);
  if (typeof d.backup !== 'string' || !d.backup) fail('no "backup" folder');
  if (!isObj(d.result) || !isObj(d.assume)) fail('no "result" / "assume" objects');
  if (d.phase === 'complete' && typeof (d.result as Record<string, unknown>).status !== 'string') fail('a complete record whose result has no status');
  if (d.nested !== null && d.nested !== undefined && (!isObj(d.nested) || !isObj(d.nested.assume))) fail('"nested" is not {step, backup, result, assume}');
  if (d.undone !== null && d.undone !== undefined && (!isObj(d.undone) || typeof d.undone.status !== 'string')) fail('"undone" is not {time, status, by}');
  return { ...d, options: isObj(d.options) ? d.options : {}, nested: (d.nested as TargetRecord['nested']) ?? null, undone: (d.undone as TargetRecord['undone']) ?? null } as unknown as TargetRecord;
}

/** The read-only script that lists a target's records (all, or one by id). */
export function listRecordsScript(o: { id?: string; root?: string } = {}): string {
  return psStep({
    name: 'target-records',
    summary: 'list the rdpfix records on this server (what each changing run did, and its backup)',
    file: 'record',
    entry: 'Get-RdpTargetRecord',
    params: { Root: o.root ?? '', Id: o.id ?? '' },
  });
}

/** The script that marks one record undone on its target. */
export function markRecordScript(id: string, status: string, by: string, root = ''): string {
  if (!ID.test(id)) throw new TypeError(`not a record id: ${JSON.stringify(id)}`);
  return psStep({
    name: 'target-record-undone',
    summary: 'mark an rdpfix record on this server undone',
    file: 'record',
    entry: 'Set-RdpTargetRecordUndone',
    params: { Root: root, Id: id, Status: status, By: by, DryRun: false },
  });
}

export interface TargetRecords {
  root: string;
  records: ListedRecord[];
  damaged: DamagedFile[];
}

/** Every record on a target, newest first, and every file that is not one (named, with why). */
export async function readTargetRecords(target: Target, run: Runner = channelRunner, o: { id?: string; root?: string } = {}): Promise<TargetRecords> {
  const raw = (await run(target, listRecordsScript(o))) as Record<string, unknown>;
  if (!isObj(raw) || raw.status !== 'ok') {
    throw new Error(`${describeTarget(target)}: the records could not be read: ${isObj(raw) && typeof raw.error === 'string' ? raw.error : JSON.stringify(raw).slice(0, 200)}`);
  }
  const records: ListedRecord[] = [];
  const damaged: DamagedFile[] = [];
  const list = Array.isArray(raw.records) ? raw.records : raw.records ? [raw.records] : [];
  for (const item of list) {
    const folder = isObj(item) && typeof item.folder === 'string' ? item.folder : '(unknown folder)';
    try {
      if (!isObj(item)) throw new Error('not a JSON object');
      records.push({ record: parseTargetRecord(item.record), running: item.running === true, size: typeof item.size === 'number' ? item.size : 0, folder });
    } catch (e) {
      damaged.push({ file: `${folder}\\record.json`, why: (e as Error).message });
    }
  }
  for (const d of Array.isArray(raw.damaged) ? raw.damaged : raw.damaged ? [raw.damaged] : []) {
    if (isObj(d)) damaged.push({ file: String(d.file), why: String(d.why) });
  }
  return { root: typeof raw.root === 'string' ? raw.root : '', records, damaged };
}

/**
 * The raw result a record stands for: the result of a complete run; for an interrupted one, the
 * result as if the change in flight had happened (`assume`), so that its undo puts back whatever
 * did change (every undo script puts back only what is not already as before). clear-machinekeys'
 * regeneration is its own nested part until the step folds it into `regenerate`; an interrupted
 * record whose nested regeneration had begun gets it folded in here, as the step would have.
 */
export function recordRaw(rec: TargetRecord): Record<string, unknown> {
  if (rec.phase === 'complete') return rec.result;
  const raw: Record<string, unknown> = { ...rec.assume, status: 'changed' };
  const n = rec.nested;
  if (rec.step === 'clear-machinekeys' && n && n.step === 'restart-termserv' && !raw.regenerate) {
    const a = n.assume;
    const cert = (x: unknown) => (isObj(x) && isObj(x.certificate) ? (x.certificate.thumbprint ?? null) : null);
    raw.regenerate = { status: 'changed', backup: a.backup ?? n.backup, removed: a.removed ?? [], unpinned: a.unpinned ?? null, thumbprintBefore: cert(a.before), thumbprintAfter: null };
  }
  return raw;
}

/** The journal changes a record stands for, built as the step builds them after a normal run. */
export function recordChanges(rec: TargetRecord, ctx: StepContext): Change[] {
  return stepChanges(rec.step, recordRaw(rec), ctx, rec.options);
}
