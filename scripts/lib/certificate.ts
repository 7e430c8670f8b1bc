// The RDP certificate's backup and restore decisions, shared by the steps that replace a certificate
// (restart-termserv --regenerate-cert, clear-machinekeys step 4 and --rename-folder): what the target
// reports about each certificate it backed up, which of those reports rdpfix will embed in an undo
// script, the journal change of a regeneration, and its undo (scripts/ps/certificate.ps1
// Restore-RdpCertificate).
import type { UndoSpec } from './journal.ts';
import { psStep } from './ps-loader.ts';
import { isSddl } from './sddl.ts';
import type { CertificateFacts, EventFacts } from './server-facts.ts';
import { asArray, psUndo, targetPath, type Change, type RawResult, type StepContext } from './server-step.ts';
import type { SessionFacts } from './sessions.ts';
import { validateThumbprint, validateWindowsPath } from './validate.ts';

/** What the target records about one certificate it backed up (and maybe removed). */
export interface CertBackupRecord {
  thumbprint: string;
  cer: string;
  reg: string;
  keyFile: string | null;
  keyDir: string | null;
  keySddl: string | null;
  keyRemoved: boolean;
}

export interface RestartState {
  services?: unknown;
  listening?: boolean;
  port?: number;
  certificate?: CertificateFacts;
}

/** What Restart-RdpService (scripts/ps/restart-termserv.ps1) returns. */
export interface RestartRaw extends RawResult {
  restarted?: boolean;
  before?: RestartState;
  after?: RestartState | null;
  backup?: string | null;
  removed?: CertBackupRecord[] | CertBackupRecord | null;
  unpinned?: string | null;
  plan?: { remove?: string[] | string; unpin?: boolean; restart?: boolean };
  events?: EventFacts | null;
  note?: string | null;
  warnings?: string[] | string;
  problems?: string[] | string;
  refused?: 'sessions' | 'pinned' | null;
  sessions?: SessionFacts | null;
  restore?: string[] | string;
}

/** Validate what the target reported before it is embedded in an undo script. */
export function validRecords(value: unknown): CertBackupRecord[] | null {
  const out: CertBackupRecord[] = [];
  for (const r of asArray<Partial<CertBackupRecord>>(value)) {
    try {
      const thumbprint = validateThumbprint(String(r?.thumbprint ?? ''));
      if (r?.reg !== `${thumbprint}.reg` || r?.cer !== `${thumbprint}.cer`) return null;
      const keyFile = r.keyFile ?? null;
      if (keyFile !== null && !/^[0-9a-f]{32}_[0-9a-f-]{36}$/i.test(keyFile) && !/^[0-9a-f]{40}_[0-9a-f-]{36}$/i.test(keyFile)) return null;
      const keyDir = r.keyDir ? validateWindowsPath(r.keyDir, 'key folder from the target') : null;
      const keySddl = r.keySddl && isSddl(r.keySddl) ? r.keySddl : null;
      out.push({ thumbprint, cer: r.cer, reg: r.reg, keyFile, keyDir, keySddl, keyRemoved: !!r.keyRemoved && !!keyFile && !!keyDir });
    } catch {
      return null;
    }
  }
  return out;
}

export interface RegenUndoData {
  backup: string;
  certificates: CertBackupRecord[];
  unpinned: string | null;
  timeoutSeconds?: number;
  /**
   * UmRdpService ran before the regeneration: the undo starts it again even when it finds it
   * stopped (a run killed between Restart-Service -Force, which stops it, and its start).
   */
  startUmRdpService?: boolean;
}

/** The undo of a regeneration: a generated script for the same target. */
export function buildRestoreCertScript(data: RegenUndoData): string {
  return psStep({
    name: 'restart-termserv-undo',
    summary: `restore the RDP certificate(s) backed up in ${data.backup}`,
    file: 'certificate',
    entry: 'Restore-RdpCertificate',
    params: {
      BackupPath: data.backup,
      Certificates: data.certificates.map((c) => ({ ...c })),
      Unpinned: data.unpinned ?? '',
      TimeoutSeconds: data.timeoutSeconds ?? 60,
      ...(data.startUmRdpService ? { StartUmRdpService: true } : {}),
      DryRun: false,
    },
  });
}

/** Did UmRdpService run before (a RestartRaw's before.services, as PowerShell 5.1 or 7 writes a status)? */
function umRdpRanBefore(raw: RestartRaw): boolean {
  return asArray<{ Name?: unknown; Status?: unknown }>(raw.before?.services).some((s) => s?.Name === 'UmRdpService' && (s.Status === 4 || s.Status === 'Running'));
}

function safeThumbprint(v: string): string | null {
  try {
    return validateThumbprint(v);
  } catch {
    return null;
  }
}

/** The journal change for a regeneration (or none when nothing was removed or unpinned). */
export function regenChange(raw: RestartRaw, ctx: StepContext, timeoutSeconds?: number): Change | null {
  const removed = asArray<CertBackupRecord>(raw.removed);
  if (!removed.length && !raw.unpinned) return null;
  const backup = targetPath(raw.backup);
  const records = validRecords(raw.removed);
  const unpinned = raw.unpinned ? safeThumbprint(raw.unpinned) : null;
  const thumbs = removed.map((r) => r.thumbprint).join(', ');
  const summary = `removed RDP certificate(s) ${thumbs || '(none)'}${raw.unpinned ? ` and the SSLCertificateSHA1Hash pin ${raw.unpinned}` : ''} so TermService creates a new one`;
  let undo: UndoSpec;
  if (!backup || !records || (raw.unpinned && !unpinned)) {
    undo = { kind: 'none', reason: `the target reported backup details rdpfix will not embed in a script; restore by hand from ${String(raw.backup)} (reg import <thumbprint>.reg, copy the key file back)` };
  } else {
    undo = psUndo(ctx, buildRestoreCertScript({ backup, certificates: records, unpinned, ...(timeoutSeconds ? { timeoutSeconds } : {}), ...(umRdpRanBefore(raw) ? { startUmRdpService: true } : {}) }));
  }
  return {
    summary,
    before: { thumbprint: raw.before?.certificate?.thumbprint ?? null, removed: removed.map((r) => r.thumbprint), pinned: raw.unpinned ?? null },
    after: { thumbprint: raw.after?.certificate?.thumbprint ?? null },
    backup: backup ?? null,
    undo,
  };
}
