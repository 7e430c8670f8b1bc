// test-vpn-latency's generated PowerShell: on Windows the route is named by a read-only script
// (Find-NetRoute, scripts/ps/route-lookup.ps1) built by lib/route.ts. Collected by
// test/generated-scripts.test.ts and the PowerShell rules test.
import type { PsExample } from '../../scripts/lib/ps.ts';
import { windowsRouteScript } from '../../scripts/lib/route.ts';

export function examples(): PsExample[] {
  return [{ label: 'route-lookup', script: windowsRouteScript('10.8.0.5') }];
}
