// disable-rdp-udp's generated PowerShell and its journal change, shared by the step
// (scripts/disable-rdp-udp.ts runs and journals them) and by whatever turns a raw result back into
// that change later (lib/step-changes.ts). The PowerShell is scripts/ps/disable-rdp-udp.ps1.
import type { UndoSpec } from './journal.ts';
import { psStep } from './ps-loader.ts';
import { validateWindowsPath } from './validate.ts';

const SCRIPT = 'disable-rdp-udp';
export const POLICY_KEY = 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services\\Client';
/** The same key in reg.exe syntax (for `reg export`). */
export const POLICY_REG_KEY = 'HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services\\Client';
/** The value name; scripts/ps/disable-rdp-udp.ps1 writes it as a literal (a test compares them). */
export const VALUE_NAME = 'fClientDisableUDP';
export const DEFAULT_BACKUP_DIR = 'C:\\ProgramData\\rdpfix\\backup';

export interface UdpScriptOptions {
  /** 1: UDP off (disable); null: remove the value (UDP back to the default, on); other: restore. */
  value: number | null;
  dryRun?: boolean;
  backupDir?: string;
}

/**
 * The journal change of a run that reported 'changed': its undo is the same script putting the
 * value it had before back (or removing it when it was absent). Pure: setRdpUdp journals it, and
 * lib/step-changes.ts rebuilds it from a recorded result (test/windows/emit.ts replays that undo on
 * the Windows twin).
 */
export function udpChange(before: number | null, after: number | null, backup: string | null, where: string, backupDir: string = DEFAULT_BACKUP_DIR): { summary: string; before: Record<string, number | null>; after: Record<string, number | null>; backup: string | null; undo: UndoSpec } {
  return {
    summary: `${VALUE_NAME}: ${before ?? '(absent)'} -> ${after ?? '(absent)'} on ${where}`,
    before: { [VALUE_NAME]: before },
    after: { [VALUE_NAME]: after },
    backup,
    undo: { kind: 'powershell', target: where, script: udpPolicyScript({ value: before, backupDir }) },
  };
}

/**
 * The generated PowerShell (scripts/ps/disable-rdp-udp.ps1): read the value, and if it differs:
 * back the key up with reg export (when the key exists), set or remove the value, read it back.
 * Under -WhatIf (dry run) it reports 'would-change' and touches nothing. Running it twice reports
 * 'ok' the second time. Every value reaches it through $P.
 */
export function udpPolicyScript(o: UdpScriptOptions): string {
  if (o.value !== null && (!Number.isInteger(o.value) || o.value < 0 || o.value > 0xffffffff)) throw new TypeError(`bad DWORD ${o.value}`);
  const backupDir = validateWindowsPath(o.backupDir ?? DEFAULT_BACKUP_DIR, 'backup folder');
  const action = o.value === 1 ? 'turn the RDP client UDP transport off' : o.value === null ? 'remove the policy (RDP client UDP back on)' : `restore ${VALUE_NAME}=${o.value}`;
  return psStep({
    name: SCRIPT,
    runsOn: 'client',
    summary: `${action} (${VALUE_NAME} under ${POLICY_REG_KEY})`,
    file: 'disable-rdp-udp',
    entry: 'Set-RdpUdpPolicy',
    params: { Key: POLICY_KEY, RegKey: POLICY_REG_KEY, Value: o.value, BackupDir: backupDir, DryRun: !!o.dryRun },
  });
}
