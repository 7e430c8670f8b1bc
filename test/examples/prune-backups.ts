// The prune-backups scripts test/generated-scripts.test.ts parses and compares with
// test/golden/prune-backups/ (and test/lib/server-ps.test.ts checks against the PowerShell rules):
// the dry run the docs tell users to run first, the real run, and a custom backup root.
import type { PsExample } from '../../scripts/lib/ps.ts';
import { buildPruneScript } from '../../scripts/prune-backups.ts';

export function examples(): PsExample[] {
  return [
    { label: 'dry-run', script: buildPruneScript({ olderThanDays: 90 }, true) },
    { label: 'prune', script: buildPruneScript({ olderThanDays: 90 }, false) },
    { label: 'prune-custom-root', script: buildPruneScript({ olderThanDays: 30, backupRoot: 'D:\\rdpfix-backups' }, false) },
  ];
}
