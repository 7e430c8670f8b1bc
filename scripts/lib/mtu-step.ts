// lower-mtu's Windows script and its journal change, shared by the step (scripts/lower-mtu.ts runs
// and journals them) and by whatever turns a raw result back into that change later
// (lib/step-changes.ts). The PowerShell is scripts/ps/lower-mtu.ps1.
import type { UndoSpec } from './journal.ts';
import { psStep } from './ps-loader.ts';
import { MTU_RANGE, validateInterface, validateMtu, validateWindowsPath } from './validate.ts';

const SCRIPT = 'lower-mtu';
export const DEFAULT_BACKUP_DIR = 'C:\\ProgramData\\rdpfix\\backup';

export interface MtuScriptOptions {
  interface: string;
  mtu: number;
  /** 'found': a measured path MTU or the value an undo puts back (wider range than a typed --mtu). */
  origin?: 'set' | 'found';
  /** netsh store=active (until reboot) instead of persistent. */
  temporary?: boolean;
  dryRun?: boolean;
  backupDir?: string;
}

/**
 * The PowerShell that sets an interface's IPv4 MTU on a Windows client (scripts/ps/lower-mtu.ps1):
 * read the current value, back it up to a JSON file, set it with netsh, read it back. The same
 * text for --emit and local runs; every value reaches it through $P.
 */
export function mtuScript(o: MtuScriptOptions): string {
  const alias = validateInterface(o.interface, 'windows');
  const mtu = validateMtu(o.mtu, 4, o.origin);
  const backupDir = validateWindowsPath(o.backupDir ?? DEFAULT_BACKUP_DIR, 'backup folder');
  return psStep({
    name: SCRIPT,
    runsOn: 'client',
    summary: 'set the IPv4 MTU of one interface (undo: run again with the old value printed as "before")',
    file: 'lower-mtu',
    entry: 'Set-RdpInterfaceMtu',
    params: { Interface: alias, Mtu: mtu, Store: o.temporary ? 'active' : 'persistent', BackupDir: backupDir, DryRun: !!o.dryRun },
  });
}

/**
 * The journal change of a Windows MTU set that reported 'changed': the summary, before/after, the
 * backup, and the undo (the same script putting the old MTU back, when it is one a system can have).
 * Pure: setWindowsMtu journals it, and lib/step-changes.ts rebuilds it from a recorded result
 * (test/windows/emit.ts replays that undo on the Windows twin).
 */
export function windowsMtuChange(
  o: Pick<MtuScriptOptions, 'interface' | 'mtu' | 'temporary' | 'backupDir'>,
  result: { before?: number | null; store?: string; backup?: string | null },
  where: string,
): { summary: string; before: { interface: string; mtu: number | null }; after: { interface: string; mtu: number; store: string | undefined }; backup: string | null; undo: UndoSpec } {
  const before = typeof result.before === 'number' ? result.before : null;
  const undo: UndoSpec = !before
    ? { kind: 'none', reason: 'the old MTU could not be read' }
    : !isFoundMtu(before)
      ? { kind: 'none', reason: `the old MTU ${before} is outside ${MTU_RANGE.found[4].join('..')}` }
      : { kind: 'powershell', target: where, script: mtuScript({ interface: o.interface, mtu: before, origin: 'found', temporary: o.temporary, backupDir: o.backupDir }) };
  return {
    summary: `MTU of ${o.interface}: ${result.before} -> ${o.mtu}`,
    before: { interface: o.interface, mtu: before },
    after: { interface: o.interface, mtu: o.mtu, store: result.store },
    backup: result.backup ?? null,
    undo,
  };
}

/** A value the system reported that an undo can put back (any MTU an interface can have). */
export function isFoundMtu(mtu: number): boolean {
  try {
    validateMtu(mtu, 4, 'found');
    return true;
  } catch {
    return false;
  }
}
