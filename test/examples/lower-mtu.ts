// The generated PowerShell of lower-mtu, one script per representative option set (collected by
// test/generated-scripts.test.ts and the PowerShell rules test).
import type { PsExample } from '../../scripts/lib/ps.ts';
import { mtuScript } from '../../scripts/lower-mtu.ts';

export function examples(): PsExample[] {
  return [
    { label: 'set', script: mtuScript({ interface: 'WireGuard Tunnel', mtu: 1400 }) },
    { label: 'set-dry-run', script: mtuScript({ interface: 'Ethernet 2', mtu: 1400, dryRun: true }) },
    { label: 'set-temporary', script: mtuScript({ interface: 'vEthernet (Default Switch)', mtu: 1380, temporary: true }) },
  ];
}
