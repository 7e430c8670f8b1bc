// prune-backups: remove rdpfix's backup folders on a target that are older than N days.
//
// What it does: lists every folder under the backup root on the target (default
// C:\ProgramData\rdpfix\backup: one folder per change, <yyyyMMdd-HHmmss-fff>-<step>-<id>, readable
// only by SYSTEM and Administrators) with its age, size and file count, and removes those made more
// than --older-than DAYS ago. It only removes folders directly under the root, never one that is or
// holds a reparse point (junction, symbolic link: listed as skipped, never followed), and refuses a
// root that is itself a reparse point or is owned by anyone but SYSTEM or Administrators.
// When to use it: when the backups of old changes are no longer needed (they hold copies of private
// keys and registry exports; nothing ever deletes them on its own). Run it with --dry-run first: that
// lists what would go, with sizes, and removes nothing; the real run needs --yes.
// Undo: none. A removed backup is gone, and the undo of the change it belonged to can no longer run
// (undo --list shows which changes those were).
// Its PowerShell is scripts/ps/backup.ps1 (Remove-RdpOldBackup); it needs Administrator rights.
import { backupRoot } from './lib/backup.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { psStep } from './lib/ps-loader.ts';
import { asArray, baseReport, runStep, serverFlags, serverMain, withServerOptions, type RawResult, type StepContext, type StepReport } from './lib/server-step.ts';
import { validateInt } from './lib/validate.ts';

export interface PruneOptions {
  /** Remove backup folders made more than this many days ago (1-3650). */
  olderThanDays: number;
  /** Backup root on the target (default C:\ProgramData\rdpfix\backup). */
  backupRoot?: string;
}

/** One backup folder as the target lists it. */
export interface BackupFolder {
  name: string;
  path: string;
  /** When it was made (ISO 8601, UTC). */
  created: string;
  bytes: number | null;
  files: number | null;
  /** Whether it holds a target record (record.json). */
  record: boolean;
  /** Why a folder old enough to go was left (skipped ones only). */
  reason?: string;
}

export interface PruneRaw extends RawResult {
  root?: string;
  days?: number;
  cutoff?: string;
  removed?: BackupFolder[];
  wouldRemove?: BackupFolder[];
  skipped?: BackupFolder[];
  kept?: number;
  keptBytes?: number;
  bytesRemoved?: number;
  problems?: string[];
}

export interface PruneReport extends StepReport {
  root: string | null;
  /** Removed (or, in a dry run, to be removed) folders, with their sizes. */
  removed: BackupFolder[];
  skipped: BackupFolder[];
  bytes: number;
  kept: number;
}

/** Remove (or with ctx.dryRun list) the backup folders older than opts.olderThanDays on a target. */
export async function pruneBackups(opts: PruneOptions, ctx: StepContext): Promise<PruneReport> {
  const raw = await runStep<PruneRaw>(ctx, buildPruneScript(opts, ctx.dryRun));
  return interpretPrune(raw, ctx, opts);
}

// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'prune-backups'))
    .usage('$0 --older-than DAYS (--dry-run | --yes) [--target CHANNEL] [options]\n\nRemove the rdpfix backup folders on a target that are older than DAYS days. Run it with --dry-run first:\nthat lists what would be removed, with sizes, and removes nothing.')
    .option('older-than', { type: 'string', describe: 'remove backup folders made more than DAYS days ago (1-3650; required)' })
    .option('yes', { type: 'boolean', default: false, describe: 'remove for real (a removed backup cannot be brought back)' })
    .option('backup-dir', { type: 'string', describe: 'backup root on the target (default C:\\ProgramData\\rdpfix\\backup)' })
    .example('$0 --older-than 90 --dry-run', 'list the backups older than 90 days here')
    .example('$0 --older-than 90 --yes --target winrm://vm1', 'remove them on vm1')
    .example('$0 --older-than 30 --emit --yes > prune.ps1', 'the script to paste on the server (removes)')
    .epilog('Nothing to undo: a removed backup is gone. See what a backup belongs to: npx tsx scripts/undo.ts --list')
    .parseAsync();
  const flags = serverFlags(args);
  if (args['older-than'] === undefined) throw new UsageError('--older-than DAYS is required: the age in days above which backup folders are removed (1-3650)');
  const opts: PruneOptions = {
    olderThanDays: validateInt(args['older-than'], '--older-than', 1, 3650),
    ...(args['backup-dir'] !== undefined ? { backupRoot: backupRoot(args['backup-dir']) } : {}),
  };
  // A printed script that removes is the same decision as running it: it needs --yes too.
  if (!flags.dryRun && !args.yes) {
    throw new UsageError(`prune-backups removes backups for good: run it with --dry-run first to see what would go, then with --yes${flags.emit ? ' (with --emit too: --emit --dry-run prints the script that only lists)' : ''}`);
  }
  return serverMain(flags, {
    title: `pruning backups older than ${opts.olderThanDays} days`,
    emit: (dry) => buildPruneScript(opts, dry),
    execute: (ctx) => pruneBackups(opts, ctx),
  });
}

// ---------------------------------------------------------------- internals

/** The generated script (scripts/ps/backup.ps1 Remove-RdpOldBackup); a dry run is -WhatIf. */
export function buildPruneScript(opts: PruneOptions, dryRun: boolean): string {
  return psStep({
    name: 'prune-backups',
    summary: `remove the rdpfix backup folders older than ${opts.olderThanDays} days`,
    file: 'backup',
    entry: 'Remove-RdpOldBackup',
    params: { Days: opts.olderThanDays, Root: opts.backupRoot ?? '', DryRun: dryRun },
  });
}

/** "1.2 MB" for a byte count. */
export function sizeText(bytes: number | null | undefined): string {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return 'size unknown';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

const folderLine = (f: BackupFolder) => `${f.path} (${sizeText(f.bytes)}, ${f.files ?? '?'} files, made ${f.created}${f.record ? ', has a target record' : ''})`;

/** Turn the raw result into a report (pure). */
export function interpretPrune(raw: PruneRaw, ctx: StepContext, opts: PruneOptions): PruneReport {
  const dry = raw.status === 'would-change' || ctx.dryRun;
  const gone = asArray<BackupFolder>(dry ? raw.wouldRemove : raw.removed);
  const skipped = asArray<BackupFolder>(raw.skipped);
  const problems = asArray<string>(raw.problems);
  const bytes = gone.reduce((n, f) => n + (typeof f.bytes === 'number' ? f.bytes : 0), 0);
  const r: PruneReport = {
    ...baseReport('prune-backups', ctx),
    root: raw.root ?? opts.backupRoot ?? null,
    removed: gone,
    skipped,
    bytes,
    kept: typeof raw.kept === 'number' ? raw.kept : 0,
  };
  r.status = ['ok', 'changed', 'would-change', 'failed'].includes(raw.status) ? (raw.status as PruneReport['status']) : 'failed';
  if (raw.error) r.error = raw.error;
  const where = r.root ?? 'the backup root';
  const older = `older than ${opts.olderThanDays} days`;
  switch (r.status) {
    case 'ok':
      r.summary = `no backup folder ${older} under ${where}${r.kept ? ` (${r.kept} newer kept)` : ''}`;
      break;
    case 'would-change':
      r.summary = `would remove ${gone.length} backup folder(s) ${older} (${sizeText(bytes)}) under ${where}; ${r.kept} newer kept`;
      r.next.push(`npx tsx scripts/prune-backups.ts --older-than ${opts.olderThanDays} --yes${r.target === 'local' ? '' : ` --target ${r.target}`}`);
      break;
    case 'changed':
      r.summary = `removed ${gone.length} backup folder(s) ${older} (${sizeText(bytes)}) under ${where}; ${r.kept} newer kept`;
      break;
    default:
      r.summary = raw.error ?? (problems.length ? problems.join('; ') : 'the prune failed');
  }
  for (const f of gone) r.evidence.push(`${dry ? 'would remove' : 'removed'} ${folderLine(f)}`);
  for (const f of skipped) r.warnings.push(`left ${f.path}: ${f.reason ?? 'skipped'}`);
  for (const p of problems) r.evidence.push(`problem: ${p}`);
  r.changes = gone.map((f) => ({ summary: `${dry ? 'remove' : 'removed'} backup folder ${f.path} (${sizeText(f.bytes)})`, before: f.path, after: dry ? f.path : null, backup: null }));
  if (r.status === 'changed' && gone.some((f) => f.record)) r.notes.push('the changes those backups belonged to can no longer be undone from the target');
  return r;
}

if (isMain(import.meta.url)) await runCli(main);
