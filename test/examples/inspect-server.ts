// The inspect-server scripts test/generated-scripts.test.ts parses and compares with
// test/golden/inspect-server/: the default run and one with every option changed.
import type { PsExample } from '../../scripts/lib/ps.ts';
import { buildInspectScript } from '../../scripts/inspect-server.ts';

export function examples(): PsExample[] {
  return [
    { label: 'default', script: buildInspectScript() },
    { label: 'no-save', script: buildInspectScript({ save: false, eventHours: 24, maxEvents: 4 }) },
  ];
}
