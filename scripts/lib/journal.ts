// The change journal: one JSON file per change, with what changed, where the backup lies on the
// target, and the exact undo. Default folder ~/.rdpfix/journal; RDPFIX_JOURNAL or --journal
// override it. Entries of one script or recipe run share a runId so `undo --last` can undo the run.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

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
  const full: JournalEntry = { ...entry, id, time, runId: entry.runId ?? currentRunId() };
  await writeAtomic(join(d, `${id}.json`), full);
  return full;
}

/** All entries, oldest first. */
export async function list(dir?: string): Promise<JournalEntry[]> {
  const d = journalDir(dir);
  let names: string[];
  try {
    names = (await readdir(d)).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const entries: JournalEntry[] = [];
  for (const n of names) {
    try {
      entries.push(JSON.parse(await readFile(join(d, n), 'utf8')) as JournalEntry);
    } catch {
      // A half-written or foreign file is not ours to interpret; skip it.
    }
  }
  return entries.sort((a, b) => (a.time === b.time ? a.id.localeCompare(b.id) : a.time.localeCompare(b.time)));
}

export async function get(id: string, dir?: string): Promise<JournalEntry | undefined> {
  return (await list(dir)).find((e) => e.id === id);
}

export async function markUndone(id: string, undone: NonNullable<JournalEntry['undone']>, dir?: string): Promise<void> {
  const path = join(journalDir(dir), `${id}.json`);
  const e = JSON.parse(await readFile(path, 'utf8')) as JournalEntry;
  await writeAtomic(path, { ...e, undone });
}

/**
 * Entries of the newest script or recipe run that are not yet undone, newest first. Undo entries
 * (script 'undo') neither count as a run nor are returned, so `undo --last` never undoes an undo.
 */
export async function lastRun(dir?: string): Promise<JournalEntry[]> {
  const all = (await list(dir)).filter((e) => !isUndoEntry(e));
  const last = all.at(-1);
  if (!last) return [];
  return all.filter((e) => e.runId === last.runId && !e.undone).reverse();
}

/** Entries of one run (by runId) that are not yet undone, newest first; undo entries excluded. */
export async function runEntries(runId: string, dir?: string): Promise<JournalEntry[]> {
  return (await list(dir)).filter((e) => e.runId === runId && !e.undone && !isUndoEntry(e)).reverse();
}

/** The newest `n` entries not yet undone (any run), newest first; undo entries excluded. */
export async function newest(n: number, dir?: string, filter: (e: JournalEntry) => boolean = () => true): Promise<JournalEntry[]> {
  return (await list(dir))
    .filter((e) => !e.undone && !isUndoEntry(e) && filter(e))
    .reverse()
    .slice(0, n);
}
