// The restart-termserv scripts test/generated-scripts.test.ts parses and compares with
// test/golden/restart-termserv/ (and test/lib/server-ps.test.ts checks against the PowerShell
// rules): a plain restart, a regeneration, each with its dry run, and the regeneration's undo.
import { buildRestoreCertScript, type CertBackupRecord } from '../../scripts/lib/certificate.ts';
import type { PsExample } from '../../scripts/lib/ps.ts';
import { buildRestartScript } from '../../scripts/restart-termserv.ts';

const SAMPLE_RECORD: CertBackupRecord = {
  thumbprint: '0123456789ABCDEF0123456789ABCDEF01234567',
  cer: '0123456789ABCDEF0123456789ABCDEF01234567.cer',
  reg: '0123456789ABCDEF0123456789ABCDEF01234567.reg',
  keyFile: 'f686aace6942fb7f7ceb231212eef4a4_3b5a6c1e-2f4d-4e8a-9c1b-7d6e5f4a3b2c',
  keyDir: 'C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys',
  keySddl: 'O:SYG:SYD:(A;;FA;;;SY)(A;;0x120089;;;NS)(A;;FA;;;S-1-5-80-4022436659-1090538466-1613889075-870485073-3428993833)',
  keyRemoved: true,
};

export function examples(): PsExample[] {
  return [
    { label: 'restart', script: buildRestartScript({}, false) },
    { label: 'restart-dry-run', script: buildRestartScript({}, true) },
    { label: 'regenerate', script: buildRestartScript({ regenerateCert: true, onlyThumbprint: SAMPLE_RECORD.thumbprint, timeoutSeconds: 90 }, false) },
    { label: 'regenerate-dry-run', script: buildRestartScript({ regenerateCert: true }, true) },
    { label: 'undo-regenerate', script: buildRestoreCertScript({ backup: 'C:\\ProgramData\\rdpfix\\backup\\20250101-120000-000-restart-termserv', certificates: [SAMPLE_RECORD], unpinned: null }) },
  ];
}
