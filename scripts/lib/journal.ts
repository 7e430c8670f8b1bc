// The change journal: one JSON file per change, with what changed, where the backup lies on the
// target, and the exact undo. Default folder ~/.rdpfix/journal; RDPFIX_JOURNAL or --journal
// override it. Entries of one script or recipe run share a runId so `undo --last` can undo the run.
//
// A journal file is data, never a program: every file is checked against the schema when it is
// read (a bad one is reported as damaged, by name and why, and skipped), and an undo runs only
// what the allow-list below grants that entry (`undoPermit`): a local command only in the exact
// shapes lower-mtu records, with validated values; a PowerShell undo only when the entry carries
// the seal (HMAC-SHA256 with a per-user key, ~/.rdpfix/journal.key) that `record` put on it, so a
// file this rdpfix did not write (copied, planted, edited) cannot run a script of its choice.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { linkSync, mkdirSync, readdirSync as readdirSyncSafe, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { validateInterface, validateMtu } from './validate.ts';

/**
 * How to undo a change: a generated PowerShell script for the same target (it reads back what it
 * restored and reports status 'changed' | 'ok' | 'failed'), or a local command run as an argv array
 * (exit 0 = undone; an optional `verify` argv run afterwards must also exit 0), or nothing.
 */
export type UndoSpec =
  | { kind: 'powershell'; target: string; script: string }
  | { kind: 'command'; argv: string[]; verify?: string[] }
  | { kind: 'none'; reason: string };

/** Entries written by undo.ts itself carry this script name; `lastRun` never returns them. */
export const UNDO_SCRIPT = 'undo';

export const isUndoEntry = (e: JournalEntry): boolean => e.script === UNDO_SCRIPT;

export interface JournalEntry {
  id: string;
  time: string;
  runId: string;
  /** Script that made the change, e.g. 'toggle-nla'. */
  script: string;
  /** Where: a channel string (winrm://vm1) or 'client' for changes on this machine. */
  target: string;
  summary: string;
  before: unknown;
  after: unknown;
  /** Backup location on the target (folder or file), if any. */
  backup: string | null;
  undo: UndoSpec;
  undone?: { time: string; status: string; detail?: string };
  /**
   * An intent entry (written before a changing step runs; its id is the tag the step's target
   * record carries): it changes nothing itself, and until `resolved` the step's outcome is unknown.
   */
  intent?: true;
  /** How an intent ended: the step returned, or a reconcile read the target's record. */
  resolved?: IntentResolution;
  /** The id of the target record (scripts/ps/record.ps1) this change is also written in. */
  targetRecord?: string;
  /** HMAC-SHA256 (hex) of the entry without `undone`, `resolved` and `seal`, with this user's journal key. */
  seal?: string;
}

/**
 * completed: the step returned (or its target record is complete) and its changes are journaled;
 * interrupted: the target record stopped half-way (the run died there): what it may have changed is
 * journaled, and its undo puts back whatever did change; not-started: the target has no record, so
 * nothing that needs an undo was changed.
 */
export interface IntentResolution {
  time: string;
  outcome: 'completed' | 'interrupted' | 'not-started';
  record: string | null;
  entries: string[];
  /** The status the step's result had, when one is known (the step returned, or its record is complete). */
  status?: string;
  detail?: string;
}

export const isIntent = (e: JournalEntry): boolean => e.intent === true;

/** A file in the journal folder that is not a valid entry: named, with why; never interpreted. */
export interface DamagedFile {
  file: string;
  why: string;
}

export function journalDir(override?: string): string {
  return override || process.env.RDPFIX_JOURNAL || join(homedir(), '.rdpfix', 'journal');
}

/** One id per process unless a recipe runner passes its own through RDPFIX_RUN_ID. */
export function currentRunId(): string {
  if (!process.env.RDPFIX_RUN_ID) {
    process.env.RDPFIX_RUN_ID = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
  }
  return process.env.RDPFIX_RUN_ID;
}

async function writeAtomic(path: string, doc: unknown): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, path);
}

// ---------------------------------------------------------------- the seal

/** The per-user key file; RDPFIX_JOURNAL_KEY names another (tests, or a machine-wide journal). */
export function journalKeyFile(): string {
  return process.env.RDPFIX_JOURNAL_KEY || join(homedir(), '.rdpfix', 'journal.key');
}

function readKey(file: string): Buffer | null {
  try {
    const k = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
    return k.length >= 32 ? k : null;
  } catch {
    return null;
  }
}

/** The key, created (0600, 32 random bytes) on first use; concurrent first uses agree on one. */
function journalKey(create: boolean): Buffer | null {
  const file = journalKeyFile();
  const have = readKey(file);
  if (have || !create) return have;
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  try {
    linkSync(tmp, file); // atomic, and fails if another process made the key first
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readKey(file);
}

/** JSON with object keys sorted, so the seal does not depend on how a file was laid out. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function sealWith(key: Buffer, e: JournalEntry): string {
  const { undone: _undone, resolved: _resolved, seal: _seal, ...sealed } = e;
  return createHmac('sha256', key).update(canonical(sealed)).digest('hex');
}

/** Was this entry written, as it is now, by rdpfix running as this user? */
export function isSealed(e: JournalEntry): boolean {
  const key = journalKey(false);
  if (!key || typeof e.seal !== 'string' || !/^[0-9a-f]{64}$/.test(e.seal)) return false;
  return timingSafeEqual(Buffer.from(sealWith(key, e), 'hex'), Buffer.from(e.seal, 'hex'));
}

let lastStamp = 0;

export async function record(
  entry: Omit<JournalEntry, 'id' | 'time' | 'runId'> & { runId?: string },
  dir?: string,
): Promise<JournalEntry> {
  const d = journalDir(dir);
  await mkdir(d, { recursive: true, mode: 0o700 });
  // Strictly increasing within a process, so entries recorded in the same millisecond still sort
  // in the order they were made (undo goes newest first).
  lastStamp = Math.max(Date.now(), lastStamp + 1);
  const time = new Date(lastStamp).toISOString();
  const id = `${time.replace(/[-:.]/g, '').replace('T', '-').slice(0, 20)}-${entry.script}-${randomBytes(3).toString('hex')}`;
  const made: JournalEntry = { ...entry, id, time, runId: entry.runId ?? currentRunId() };
  // The file is what is read back: validate it as every reader will, so a bad entry fails here, in
  // the script that made it, and not later in an undo.
  const full = parseEntry(JSON.parse(JSON.stringify(made)), `${id}.json`);
  full.seal = sealWith(journalKey(true)!, full);
  await writeAtomic(join(d, `${id}.json`), full);
  return full;
}

// ---------------------------------------------------------------- the schema

/** A journal entry id, and the id of a target record (the backup folder's name): the one pattern for both. */
export const ENTRY_ID = /^[A-Za-z0-9-]{1,120}$/;
const ID = ENTRY_ID;
const RUN_ID = /^[A-Za-z0-9-]{1,80}$/;
const SCRIPT_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isIsoTime = (v: unknown): v is string => typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$/.test(v) && !Number.isNaN(Date.parse(v));
const line = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max && !CONTROL.test(v);

/**
 * Check one parsed journal file against the schema; returns the entry or throws an Error whose
 * message says what is wrong. `file` is the file's name: the id must match it, because undo marks
 * an entry by writing the file its id names.
 */
export function parseEntry(doc: unknown, file: string): JournalEntry {
  const fail = (why: string): never => {
    throw new Error(why);
  };
  if (!isObj(doc)) fail(`not a journal entry (a JSON ${doc === null ? 'null' : Array.isArray(doc) ? 'array' : typeof doc}, expected an object)`);
  const d = doc as Record<string, unknown>;
  if (typeof d.id !== 'string' || !ID.test(d.id)) fail('no valid "id"');
  if (`${d.id}.json` !== basename(file)) fail(`its id ${JSON.stringify(d.id)} does not match the file name`);
  if (!isIsoTime(d.time)) fail('no valid "time" (ISO 8601, UTC)');
  if (typeof d.runId !== 'string' || !RUN_ID.test(d.runId)) fail('no valid "runId"');
  if (typeof d.script !== 'string' || !SCRIPT_NAME.test(d.script)) fail('no valid "script"');
  if (!line(d.target, 300) || !d.target) fail('no valid "target"');
  if (typeof d.summary !== 'string' || d.summary.length > 20_000) fail('no valid "summary"');
  // before/after are free-form evidence; JSON drops an undefined one, which is no damage.
  if (!('before' in d)) d.before = null;
  if (!('after' in d)) d.after = null;
  if (d.backup !== null && !line(d.backup, 1000)) fail('"backup" is neither null nor a path');
  const u = d.undo;
  if (!isObj(u)) fail('no "undo"');
  const undo = u as Record<string, unknown>;
  const argv = (v: unknown) => Array.isArray(v) && v.length > 0 && v.length <= 32 && v.every((a) => line(a, 300));
  if (undo.kind === 'powershell') {
    if (!line(undo.target, 300) || !undo.target) fail('a PowerShell undo without a valid "target"');
    if (typeof undo.script !== 'string' || !undo.script.trim() || undo.script.length > 1_000_000) fail('a PowerShell undo without a "script"');
  } else if (undo.kind === 'command') {
    if (!argv(undo.argv)) fail('a command undo without a valid "argv" (a list of strings)');
    if (undo.verify !== undefined && !argv(undo.verify)) fail('a command undo whose "verify" is not a list of strings');
  } else if (undo.kind === 'none') {
    if (typeof undo.reason !== 'string') fail('an undo of kind "none" without a "reason"');
  } else {
    fail(`an undo of unknown kind ${JSON.stringify(undo.kind)}`);
  }
  if (d.undone !== undefined && (!isObj(d.undone) || !isIsoTime(d.undone.time) || !line(d.undone.status, 40) || (d.undone.detail !== undefined && typeof d.undone.detail !== 'string'))) {
    fail('"undone" is not {time, status, detail?}');
  }
  if (d.intent !== undefined && d.intent !== true) fail('"intent" is not true');
  if (d.targetRecord !== undefined && (typeof d.targetRecord !== 'string' || !ID.test(d.targetRecord))) fail('"targetRecord" is not a record id');
  if (d.resolved !== undefined) {
    const r = d.resolved as Record<string, unknown>;
    if (!isObj(r) || !isIsoTime(r.time) || !['completed', 'interrupted', 'not-started'].includes(r.outcome as string) || !(r.record === null || (typeof r.record === 'string' && ID.test(r.record))) || !Array.isArray(r.entries) || !r.entries.every((x) => typeof x === 'string' && ID.test(x)) || (r.detail !== undefined && typeof r.detail !== 'string') || (r.status !== undefined && typeof r.status !== 'string')) {
      fail('"resolved" is not {time, outcome, record, entries, status?, detail?}');
    }
  }
  if (d.seal !== undefined && (typeof d.seal !== 'string' || !/^[0-9a-f]{64}$/.test(d.seal))) fail('"seal" is not 64 hex digits');
  return d as unknown as JournalEntry;
}

export interface JournalListing {
  /** Valid entries, oldest first. */
  entries: JournalEntry[];
  /** Files that are not valid entries, by name. */
  damaged: DamagedFile[];
}

/** Every entry of the folder, oldest first, and every file that is not one (named, with why). */
export async function readJournal(dir?: string): Promise<JournalListing> {
  const d = journalDir(dir);
  let names: string[];
  try {
    names = (await readdir(d)).filter((n) => n.endsWith('.json'));
  } catch {
    return { entries: [], damaged: [] };
  }
  const entries: JournalEntry[] = [];
  const damaged: DamagedFile[] = [];
  for (const n of names.sort()) {
    const file = join(d, n);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      // A folder named *.json, a file without read permission: damaged too, never fatal.
      damaged.push({ file, why: `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` });
      continue;
    }
    try {
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (e) {
        throw new Error(`not JSON (${(e as Error).message})`);
      }
      entries.push(parseEntry(doc, n));
    } catch (e) {
      damaged.push({ file, why: (e as Error).message });
    }
  }
  entries.sort((a, b) => (a.time === b.time ? a.id.localeCompare(b.id) : a.time.localeCompare(b.time)));
  return { entries, damaged };
}

/**
 * All valid change entries, oldest first (damaged files skipped: readJournal names them). Intent
 * entries are not changes and are left out: readJournal and openIntents have them.
 */
export async function list(dir?: string): Promise<JournalEntry[]> {
  return (await readJournal(dir)).entries.filter((e) => !isIntent(e));
}

export async function get(id: string, dir?: string): Promise<JournalEntry | undefined> {
  return (await list(dir)).find((e) => e.id === id);
}

export async function markUndone(id: string, undone: NonNullable<JournalEntry['undone']>, dir?: string): Promise<void> {
  if (!ID.test(id)) throw new Error(`invalid journal id ${JSON.stringify(id)}`);
  const path = join(journalDir(dir), `${id}.json`);
  const e = parseEntry(JSON.parse(await readFile(path, 'utf8')), `${id}.json`);
  await writeAtomic(path, { ...e, undone });
}

/**
 * Before a changing step runs: an intent entry for it on its target. Its id is the tag the step
 * writes into its target record, so the record can be found from here whatever happens next.
 */
export async function recordIntent(o: { script: string; target: string; runId?: string }, dir?: string): Promise<JournalEntry> {
  return record(
    {
      script: o.script,
      target: o.target,
      ...(o.runId ? { runId: o.runId } : {}),
      summary: `${o.script} started on ${o.target}: outcome unknown until it returns (undo --reconcile reads the target's record)`,
      before: null,
      after: null,
      backup: null,
      undo: { kind: 'none', reason: 'an intent entry changes nothing; the changes of its step are their own entries' },
      intent: true,
    },
    dir,
  );
}

/** Close an intent entry: how the step ended and the entries that journal its changes. */
export async function resolveIntent(id: string, resolved: Omit<IntentResolution, 'time'>, dir?: string): Promise<IntentResolution> {
  if (!ID.test(id)) throw new Error(`invalid journal id ${JSON.stringify(id)}`);
  const path = join(journalDir(dir), `${id}.json`);
  const e = parseEntry(JSON.parse(await readFile(path, 'utf8')), `${id}.json`);
  const done: IntentResolution = { time: new Date().toISOString(), ...resolved };
  await writeAtomic(path, { ...e, resolved: done });
  return done;
}

/** Intent entries whose step's outcome is still unknown, oldest first. */
export async function openIntents(dir?: string, keep: (e: JournalEntry) => boolean = () => true): Promise<JournalEntry[]> {
  return (await readJournal(dir)).entries.filter((e) => isIntent(e) && !e.resolved && keep(e));
}

/**
 * Entries of the newest script or recipe run that are not yet undone, newest first. Undo entries
 * (script 'undo') neither count as a run nor are returned, so `undo --last` never undoes an undo.
 */
export async function lastRun(dir?: string): Promise<JournalEntry[]> {
  const all = (await list(dir)).filter((e) => !isUndoEntry(e) && !isIntent(e));
  const last = all.at(-1);
  if (!last) return [];
  return all.filter((e) => e.runId === last.runId && !e.undone).reverse();
}

/** Entries of one run (by runId) that are not yet undone, newest first; undo entries excluded. */
export async function runEntries(runId: string, dir?: string): Promise<JournalEntry[]> {
  return (await list(dir)).filter((e) => e.runId === runId && !e.undone && !isUndoEntry(e) && !isIntent(e)).reverse();
}

/** The newest `n` entries not yet undone (any run), newest first; undo entries excluded. */
export async function newest(n: number, dir?: string, filter: (e: JournalEntry) => boolean = () => true): Promise<JournalEntry[]> {
  return (await list(dir))
    .filter((e) => !e.undone && !isUndoEntry(e) && !isIntent(e) && filter(e))
    .reverse()
    .slice(0, n);
}

// ---------------------------------------------------------------- the allow-list

/** What an entry's undo may do, as checked by `undoPermit`. */
export type UndoPermit =
  | { ok: true; kind: 'powershell'; target: string; script: string }
  | { ok: true; kind: 'command'; argv: string[]; verify?: string[]; iface: string; mtu: number; platform: 'linux' | 'darwin' | 'win32' }
  | { ok: true; kind: 'none'; reason: string }
  | { ok: false; why: string };

/** The Unix folders a recorded program may be named from (lower-mtu records the bare name). */
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
const programIs = (a: string, name: string) => a === name || SYSTEM_DIRS.some((d) => a === `${d}/${name}`);

/**
 * The MTU-setting command shapes lower-mtu records, each matched exactly, with the interface and
 * MTU validated as a --interface and a found MTU would be (an undo puts back what was there, which
 * may be a loopback's 65536):
 *   ip link set dev IF mtu N                                        (Linux)
 *   ifconfig IF mtu N                                               (macOS)
 *   netsh interface ipv4 set subinterface IF mtu=N store=persistent|active   (Windows)
 * Returns the interface, MTU and platform, or why the argv is not one of them.
 */
export function matchMtuCommand(argv: string[]): { iface: string; mtu: number; platform: 'linux' | 'darwin' | 'win32' } | string {
  const shape = (): { iface: string; mtu: string; platform: 'linux' | 'darwin' | 'win32' } | null => {
    const [p, ...a] = argv;
    if (p === undefined) return null;
    if (programIs(p, 'ip') && a.length === 6 && a[0] === 'link' && a[1] === 'set' && a[2] === 'dev' && a[4] === 'mtu') return { iface: a[3]!, mtu: a[5]!, platform: 'linux' };
    if (programIs(p, 'ifconfig') && a.length === 3 && a[1] === 'mtu') return { iface: a[0]!, mtu: a[2]!, platform: 'darwin' };
    if (/^netsh(?:\.exe)?$/i.test(p) && a.length === 7 && a.slice(0, 4).join(' ').toLowerCase() === 'interface ipv4 set subinterface') {
      const m = /^mtu=(\d+)$/i.exec(a[5]!);
      if (m && /^store=(?:persistent|active)$/i.test(a[6]!)) return { iface: a[4]!, mtu: m[1]!, platform: 'win32' };
    }
    return null;
  };
  const s = shape();
  if (!s) return `${JSON.stringify(argv).slice(0, 200)} is not one of the MTU commands rdpfix records (ip link set dev IF mtu N, ifconfig IF mtu N, netsh interface ipv4 set subinterface IF mtu=N store=...)`;
  try {
    const iface = validateInterface(s.iface, s.platform === 'win32' ? 'windows' : s.platform);
    return { iface, mtu: validateMtu(s.mtu, 4, 'found'), platform: s.platform };
  } catch (e) {
    return (e as Error).message;
  }
}

/** The read-only checks an MTU undo may be verified with: `ip link show dev IF`, `ifconfig IF`. */
function matchVerify(argv: string[], iface: string): boolean {
  const [p, ...a] = argv;
  if (p === undefined) return false;
  return (programIs(p, 'ip') && a.length === 4 && a.join(' ') === `link show dev ${iface}`) || (programIs(p, 'ifconfig') && a.length === 1 && a[0] === iface);
}

/** Scripts whose entries may carry a local command undo, and so the only place a command runs. */
const COMMAND_UNDO_SCRIPTS = new Set(['lower-mtu']);

/**
 * May this entry's undo run, and what exactly? The decision undo.ts follows before it runs
 * anything (and before --emit prints a script for pasting):
 * - kind 'none': nothing runs.
 * - kind 'command': only for lower-mtu entries, only an MTU command shape (`matchMtuCommand`), and
 *   a `verify` only as the read-only check of the same interface.
 * - kind 'powershell': only when the entry carries a valid seal (this rdpfix, this user, wrote it as
 *   it is), and only to the entry's own target (a client entry's undo runs on 'local').
 */
export function undoPermit(e: JournalEntry): UndoPermit {
  const u = e.undo;
  if (u.kind === 'none') return { ok: true, kind: 'none', reason: u.reason };
  if (u.kind === 'command') {
    if (!COMMAND_UNDO_SCRIPTS.has(e.script)) return { ok: false, why: `a ${e.script} entry never has a command undo (only lower-mtu records one)` };
    const m = matchMtuCommand(u.argv);
    if (typeof m === 'string') return { ok: false, why: m };
    if (u.verify !== undefined && !matchVerify(u.verify, m.iface)) return { ok: false, why: `its check ${JSON.stringify(u.verify).slice(0, 200)} is not the read-only MTU check of ${m.iface}` };
    return { ok: true, kind: 'command', argv: u.argv, ...(u.verify ? { verify: u.verify } : {}), ...m };
  }
  if (!isSealed(e)) {
    return {
      ok: false,
      why: `its PowerShell undo does not carry this rdpfix's seal (the file was written by another user or machine, an older rdpfix, or edited since): read the script in ${e.id}.json and run it yourself if it is right`,
    };
  }
  if (!(u.target === e.target || (e.target === 'client' && u.target === 'local'))) {
    return { ok: false, why: `its undo goes to ${JSON.stringify(u.target)}, not to the entry's own target ${JSON.stringify(e.target)}` };
  }
  return { ok: true, kind: 'powershell', target: u.target, script: u.script };
}

// ---------------------------------------------------------------- run files (journal/runs/)

/** The fields of a run-recipe run file (journal/runs/RUN_ID.json) that readers rely on. */
export interface RunFileFields {
  runId: string;
  recipe: string;
  recipeFile: string;
  host: string;
  target: string;
  dryRun: boolean;
  params: Record<string, string>;
  started: string;
  finished?: string;
  result?: string;
  steps: Array<{ id: string; status: string }>;
}

/**
 * Check one parsed run file (what run-recipe's saveRun writes); returns it or throws an Error
 * saying what is wrong. `file` is its name, which must be RUN_ID.json.
 */
export function parseRunFile<T extends RunFileFields = RunFileFields>(doc: unknown, file: string): T {
  const fail = (why: string): never => {
    throw new Error(why);
  };
  if (!isObj(doc)) fail(`not a run file (a JSON ${doc === null ? 'null' : Array.isArray(doc) ? 'array' : typeof doc}, expected an object)`);
  const d = doc as Record<string, unknown>;
  if (typeof d.runId !== 'string' || !RUN_ID.test(d.runId)) fail('no valid "runId"');
  if (`${d.runId}.json` !== basename(file)) fail(`its runId ${JSON.stringify(d.runId)} does not match the file name`);
  for (const k of ['recipe', 'recipeFile', 'host', 'target'] as const) if (!line(d[k], 4096)) fail(`no valid "${k}"`);
  if (typeof d.dryRun !== 'boolean') fail('no valid "dryRun"');
  if (!isObj(d.params) || !Object.values(d.params).every((v) => typeof v === 'string')) fail('"params" is not an object of strings');
  if (!isIsoTime(d.started)) fail('no valid "started" (ISO 8601, UTC)');
  if (d.finished !== undefined && !isIsoTime(d.finished)) fail('"finished" is not an ISO 8601 time');
  if (d.result !== undefined && !['fixed', 'completed', 'failed', 'dry-run'].includes(d.result as string)) fail(`unknown "result" ${JSON.stringify(d.result)}`);
  if (!Array.isArray(d.steps) || !d.steps.every((s) => isObj(s) && typeof s.id === 'string' && typeof s.status === 'string')) fail('"steps" is not a list of {id, status, ...}');
  return d as unknown as T;
}

/** Every valid run file in journal/runs/, oldest start first, and every damaged one (named, with why). */
export function readRunFiles<T extends RunFileFields = RunFileFields>(dir?: string): { runs: T[]; damaged: DamagedFile[] } {
  const d = join(journalDir(dir), 'runs');
  let names: string[];
  try {
    names = readdirSyncSafe(d).filter((n) => n.endsWith('.json'));
  } catch {
    return { runs: [], damaged: [] };
  }
  const runs: T[] = [];
  const damaged: DamagedFile[] = [];
  for (const n of names.sort()) {
    const file = join(d, n);
    try {
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new Error((e as NodeJS.ErrnoException).code ? `cannot be read (${(e as NodeJS.ErrnoException).code})` : `not JSON (${(e as Error).message})`);
      }
      runs.push(parseRunFile<T>(doc, n));
    } catch (e) {
      damaged.push({ file, why: (e as Error).message });
    }
  }
  return { runs: runs.sort((a, b) => a.started.localeCompare(b.started)), damaged };
}
