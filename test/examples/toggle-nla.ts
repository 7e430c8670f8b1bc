// The toggle-nla scripts test/generated-scripts.test.ts parses and compares with
// test/golden/toggle-nla/: every mode, the dry runs, the journal's undo and the expiry task.
import type { PsExample } from '../../scripts/lib/ps.ts';
import { buildNlaScript, buildNlaUndoScript, expiryTaskScript } from '../../scripts/toggle-nla.ts';

export function examples(): PsExample[] {
  return [
    { label: 'status', script: buildNlaScript({ mode: 'status' }, false) },
    { label: 'enable', script: buildNlaScript({ mode: 'enable' }, false) },
    { label: 'disable-for-2h', script: buildNlaScript({ mode: 'disable', forSeconds: 7200 }, false) },
    { label: 'disable-dry-run', script: buildNlaScript({ mode: 'disable', forSeconds: 7200 }, true) },
    { label: 'disable-policy', script: buildNlaScript({ mode: 'disable', policy: true }, false) },
    { label: 'security-layer-tls', script: buildNlaScript({ mode: 'set', securityLayer: 'tls', minEncryptionLevel: 2 }, false) },
    { label: 'restore', script: buildNlaScript({ mode: 'restore' }, false) },
    { label: 'restore-dry-run', script: buildNlaScript({ mode: 'restore' }, true) },
    {
      label: 'undo',
      script: buildNlaUndoScript(
        [
          { scope: 'local', name: 'UserAuthentication', before: 1, after: 0 },
          { scope: 'policy', name: 'UserAuthentication', before: 1, after: 0 },
        ],
        'C:\\ProgramData\\rdpfix\\backup\\20250101-120000-000-toggle-nla',
      ),
    },
    { label: 'expiry-task', script: expiryTaskScript() },
  ];
}
