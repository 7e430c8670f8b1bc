// The one step contract: the shape every script's --json document has at its top level (a fleet: each
// line; the JSON error document of lib/cli.ts runCli too). A recipe runner, a CI job or a person reads
// the same fields whatever the script:
//   status    ok | changed | would-change | failed | skipped (read-only scripts: ok or failed)
//   summary   one line: the verdict
//   cause     a cause name from lib/causes.ts where the script diagnoses one, else null
//   changes   what changed (or, in a dry run, would change): [{ summary, ... }]; [] for read-only scripts
//   evidence  what the verdict rests on, one line each
//   next      exact commands to run next (commands only)
//   notes     the prose that goes with them (advice, what a command needs)
// Each script adds its own fields after these (docs/json.md lists them).
import { CAUSE_NAMES, type Cause } from './causes.ts';
import type { Status } from './output.ts';

export type { Status };

export const STATUSES: readonly Status[] = ['ok', 'changed', 'would-change', 'failed', 'skipped'];

/** One change a step made (or would make); scripts add their own detail (before, after, backup, ...). */
export interface ReportChange {
  summary: string;
  [detail: string]: unknown;
}

export interface Report {
  status: Status;
  /** One line: the verdict. */
  summary: string;
  /** The cause diagnosed (lib/causes.ts), or null when the script does not diagnose one. */
  cause: Cause | null;
  /** What changed, or would change in a dry run; [] when nothing did. */
  changes: ReportChange[];
  evidence: string[];
  /** Exact commands to run next (nothing else: advice goes to notes). */
  next: string[];
  /** Advice in words (never a command to copy on its own). */
  notes: string[];
}

export function isStatus(v: unknown): v is Status {
  return typeof v === 'string' && (STATUSES as readonly string[]).includes(v);
}

export function isCause(v: unknown): v is Cause {
  return typeof v === 'string' && (CAUSE_NAMES as readonly string[]).includes(v);
}

/**
 * The contract fields of a document: status and summary as given, every other contract field as
 * given or empty (cause null, [] for the lists). A script spreads its own fields after it.
 */
export function report(fields: Partial<Report> & Pick<Report, 'status' | 'summary'>): Report {
  return { status: fields.status, summary: fields.summary, cause: fields.cause ?? null, changes: fields.changes ?? [], evidence: fields.evidence ?? [], next: fields.next ?? [], notes: fields.notes ?? [] };
}
