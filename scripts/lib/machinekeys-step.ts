// clear-machinekeys' journal changes, shared by the step (scripts/clear-machinekeys.ts journals them
// after a run) and by whatever turns a raw result back into them later (lib/step-changes.ts): what
// Repair-RdpMachineKey (scripts/ps/clear-machinekeys.ps1) returns, the undo of an ACL repair and of
// --rename-folder, and the changes of one run (a regeneration's through lib/certificate.ts).
import { regenChange, validRecords, type CertBackupRecord, type RestartRaw } from './certificate.ts';
import type { UndoSpec } from './journal.ts';
import { psStep } from './ps-loader.ts';
import { isSddl } from './sddl.ts';
import { asArray, psUndo, targetPath, type Change, type RawResult, type StepContext } from './server-step.ts';
import type { SessionFacts } from './sessions.ts';

export interface ContainerState {
  name: string;
  path: string;
  kind: 'listener' | 'other';
  sddl: string | null;
}

export interface KeyState {
  runAs?: string;
  build?: number;
  folder?: { path?: string; sddl?: string | null };
  containers?: ContainerState[] | ContainerState;
  certificate?: { thumbprint?: string | null; source?: string; selfSigned?: boolean | null; hasPrivateKey?: boolean | null; keyFile?: string | null; opened?: boolean | null; error?: string | null };
  events?: Record<string, number>;
  listError?: string | null;
}

export interface RegenSummary {
  status: string;
  error?: string | null;
  problems?: string[] | string;
  backup?: string | null;
  removed?: CertBackupRecord[] | CertBackupRecord;
  unpinned?: string | null;
  thumbprintBefore?: string | null;
  thumbprintAfter?: string | null;
  restarted?: boolean;
  plan?: unknown;
  warnings?: string[] | string;
  /** The restart's own in-server handshake check, compact (the detail is the step's own handshake). */
  handshake?: { cause: string; attempts?: number } | null;
}

export interface ClearRaw extends RawResult {
  mode?: 'repair' | 'rename';
  /** UmRdpService's status before the run (a restart with -Force stops it; its undo starts it again). */
  umRdpService?: string | null;
  note?: string | null;
  evidence?: string[] | string;
  before?: KeyState | null;
  plan?: { folder?: boolean; containers?: string[] | string; regenerate?: string; rename?: boolean; otherKeys?: number } | null;
  backup?: string | null;
  changed?: { folder?: { path: string; before: string | null; after: string | null } | null; containers?: Array<{ path: string; kind: 'listener' | 'other'; before: string | null; after: string | null }> | { path: string; kind: 'listener' | 'other'; before: string | null; after: string | null } };
  after?: KeyState | null;
  keyUsable?: boolean | null;
  restart?: RegenSummary | null;
  regenerate?: RegenSummary | null;
  renamed?: { path: string; to: string } | null;
  removed?: CertBackupRecord[] | CertBackupRecord;
  problems?: string[] | string;
  warnings?: string[] | string;
  refused?: 'sessions' | null;
  sessions?: SessionFacts | null;
  restore?: string[] | string;
}

export interface AclRestoreItem {
  path: string;
  sddl: string;
  directory: boolean;
}

/** Undo of an ACL repair (Restore-RdpMachineKeyAcl). */
export function buildRestoreAclScript(items: AclRestoreItem[]): string {
  return psStep({
    name: 'clear-machinekeys-undo',
    summary: 'restore the MachineKeys folder and RDP key container ACLs recorded before the repair',
    file: 'clear-machinekeys',
    entry: 'Restore-RdpMachineKeyAcl',
    params: { Items: items.map((i) => ({ ...i })), DryRun: false },
  });
}

export interface FolderRestoreData {
  path: string;
  renamedTo: string;
  backup: string;
  certificates: CertBackupRecord[];
  timeoutSeconds?: number;
  /** UmRdpService ran before: the undo starts it again (a run killed mid-restart left it stopped). */
  startUmRdpService?: boolean;
}

/** Undo of --rename-folder (Restore-RdpMachineKeysFolder, which restores the certificates too). */
export function buildRestoreFolderScript(d: FolderRestoreData): string {
  return psStep({
    name: 'clear-machinekeys-undo',
    summary: `put ${d.renamedTo} back as MachineKeys and restore the old RDP certificate`,
    file: 'clear-machinekeys',
    entry: 'Restore-RdpMachineKeysFolder',
    params: { Path: d.path, RenamedTo: d.renamedTo, BackupPath: d.backup, Certificates: d.certificates.map((c) => ({ ...c })), TimeoutSeconds: d.timeoutSeconds ?? 60, ...(d.startUmRdpService ? { StartUmRdpService: true } : {}), DryRun: false },
  });
}

/** The journal changes of one run: the ACL repair, then the regeneration (undone first), or the rename. */
export function clearChanges(raw: ClearRaw, ctx: StepContext, opts: { timeoutSeconds?: number } = {}): Change[] {
  const out: Change[] = [];
  const backup = targetPath(raw.backup);
  const items: AclRestoreItem[] = [];
  let bad = false;
  const folder = raw.changed?.folder;
  if (folder) {
    const path = targetPath(folder.path);
    if (path && folder.before && isSddl(folder.before)) items.push({ path, sddl: folder.before, directory: true });
    else bad = true;
  }
  for (const c of asArray<{ path: string; before: string | null }>(raw.changed?.containers)) {
    const path = targetPath(c.path);
    if (path && c.before && isSddl(c.before)) items.push({ path, sddl: c.before, directory: false });
    else bad = true;
  }
  if (folder || asArray(raw.changed?.containers).length) {
    const undo: UndoSpec = bad
      ? { kind: 'none', reason: `the target reported ACLs rdpfix will not embed in a script; restore by hand: icacls "${String(raw.backup)}" data (icacls <…\\Crypto\\RSA> /restore <backup>\\MachineKeys.acl)` }
      : psUndo(ctx, buildRestoreAclScript(items));
    out.push({
      summary: `repaired ${[folder ? 'the MachineKeys folder ACL' : '', ...asArray<{ path: string }>(raw.changed?.containers).map((c) => c.path.split('\\').at(-1))].filter(Boolean).join(', ')}`,
      before: items.map((i) => ({ path: i.path, sddl: i.sddl })),
      after: [...(folder ? [{ path: folder.path, sddl: folder.after }] : []), ...asArray<{ path: string; after: string | null }>(raw.changed?.containers).map((c) => ({ path: c.path, sddl: c.after }))],
      backup,
      undo,
    });
  }
  if (raw.renamed) {
    const path = targetPath(raw.renamed.path);
    const to = targetPath(raw.renamed.to);
    const certs = validRecords(raw.removed);
    const undo: UndoSpec =
      path && to && backup && certs
        ? psUndo(ctx, buildRestoreFolderScript({ path, renamedTo: to, backup, certificates: certs, ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}), ...(raw.umRdpService === 'Running' ? { startUmRdpService: true } : {}) }))
        : { kind: 'none', reason: `restore by hand: rename ${String(raw.renamed.to)} back to MachineKeys and reg import the certificates in ${String(raw.backup)}` };
    out.push({ summary: `renamed MachineKeys to ${raw.renamed.to} and removed the RDP certificate(s)`, before: { path: raw.renamed.path, removed: asArray<CertBackupRecord>(raw.removed).map((r) => r.thumbprint) }, after: { renamedTo: raw.renamed.to, thumbprint: raw.regenerate?.thumbprintAfter ?? null }, backup, undo });
  } else if (raw.regenerate) {
    const asRestart: RestartRaw = {
      status: raw.regenerate.status,
      backup: raw.regenerate.backup ?? null,
      removed: raw.regenerate.removed ?? [],
      unpinned: raw.regenerate.unpinned ?? null,
      before: { certificate: { thumbprint: raw.regenerate.thumbprintBefore ?? null }, ...(raw.umRdpService ? { services: [{ Name: 'UmRdpService', Status: raw.umRdpService }] } : {}) },
      after: { certificate: { thumbprint: raw.regenerate.thumbprintAfter ?? null } },
    };
    const c = regenChange(asRestart, ctx, opts.timeoutSeconds);
    if (c) out.push(c);
  }
  return out;
}
