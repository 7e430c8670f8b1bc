// The clear-machinekeys scripts test/generated-scripts.test.ts parses and compares with
// test/golden/clear-machinekeys/ (and test/lib/server-ps.test.ts checks against the PowerShell
// rules): the repair in its modes, the drastic rename, and the two undo scripts.
import { buildClearScript, buildRestoreAclScript, buildRestoreFolderScript } from '../../scripts/clear-machinekeys.ts';
import type { PsExample } from '../../scripts/lib/ps.ts';

export function examples(): PsExample[] {
  return [
    { label: 'repair', script: buildClearScript({}, false) },
    { label: 'repair-dry-run', script: buildClearScript({}, true) },
    { label: 'repair-no-regenerate', script: buildClearScript({ regenerate: false, restart: false, eventHours: 24 }, false) },
    { label: 'rename-folder', script: buildClearScript({ renameFolder: true, force: true }, false) },
    { label: 'rename-folder-dry-run', script: buildClearScript({ renameFolder: true, force: true }, true) },
    {
      label: 'undo-acl',
      script: buildRestoreAclScript([
        { path: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys', sddl: 'O:SYG:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)', directory: true },
        { path: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys\\f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c', sddl: 'O:SYG:SYD:(A;;FA;;;SY)(A;;FA;;;BA)', directory: false },
      ]),
    },
    {
      label: 'undo-rename',
      script: buildRestoreFolderScript({
        path: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys',
        renamedTo: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys_old_20250101-120000',
        backup: 'C:\\ProgramData\\rdpfix\\backup\\20250101-120000-000-clear-machinekeys-rename',
        certificates: [{ thumbprint: '0123456789ABCDEF0123456789ABCDEF01234567', cer: '0123456789ABCDEF0123456789ABCDEF01234567.cer', reg: '0123456789ABCDEF0123456789ABCDEF01234567.reg', keyFile: null, keyDir: null, keySddl: null, keyRemoved: false }],
      }),
    },
  ];
}
