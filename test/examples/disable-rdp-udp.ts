// The generated PowerShell of disable-rdp-udp, one script per representative option set (collected
// by test/generated-scripts.test.ts and the PowerShell rules test).
import { udpPolicyScript } from '../../scripts/disable-rdp-udp.ts';
import type { PsExample } from '../../scripts/lib/ps.ts';

export function examples(): PsExample[] {
  return [
    { label: 'disable', script: udpPolicyScript({ value: 1 }) },
    { label: 'disable-dry-run', script: udpPolicyScript({ value: 1, dryRun: true }) },
    { label: 'enable', script: udpPolicyScript({ value: null }) },
    { label: 'restore-0', script: udpPolicyScript({ value: 0, backupDir: 'D:\\Backups\\rdpfix O\'Brien' }) },
  ];
}
