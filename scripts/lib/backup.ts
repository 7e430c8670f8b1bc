// Where a step keeps its backups on the target: the one rule for the --backup-dir value, shared by
// every step that backs something up before changing it (restart-termserv, clear-machinekeys,
// toggle-nla).
import { validateWindowsPath } from './validate.ts';

/** A backup root: a validated Windows path without a trailing backslash (icacls/reg quoting). */
export function backupRoot(value: string): string {
  const v = validateWindowsPath(value, '--backup-dir');
  return /^[A-Za-z]:\\$/.test(v) ? v : v.replace(/\\+$/, '');
}
