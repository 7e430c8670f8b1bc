// clear-machinekeys: repair the permissions that stop TermService from reading its RDP key — the
// classic Azure VM 0x904/0x7 — narrowly, on evidence, backed up, and undoably.
//
// What it does, least drastic first:
//  1. Acts only on evidence: NETWORK SERVICE cannot read an RDP key container, the key cannot be
//     opened even as SYSTEM, Schannel 36870/36871 or RemoteConnectionManager 1055/1057/1058 events,
//     or a MachineKeys folder ACL that differs from the default. No evidence → 'ok', nothing changed.
//  2. Backs up first into C:\ProgramData\rdpfix\backup\<time>-clear-machinekeys: `icacls MachineKeys
//     /save … /t /c` (restorable with `icacls …\Crypto\RSA /restore`, unlike the text dumps in
//     Microsoft's article), the folder's SDDL, and a copy plus the SDDL of each container it will
//     touch. If any backup file is missing it stops with nothing changed.
//  3. Repairs narrowly: the folder's default descriptor (O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA))
//     if it differs, and only the RDP key container(s): SYSTEM Full and NETWORK SERVICE Read, plus
//     Administrators Read up to build 14393 or NT SERVICE\SessionEnv Full from 17763 — by SID
//     (*S-1-5-18, *S-1-5-20, *S-1-5-32-544, S-1-5-80-…), denies for those SIDs removed, other entries
//     kept. Never `takeown /r`, never a recursive grant (that would hand NETWORK SERVICE every
//     private key on the machine: IIS, SQL Server, other certificates).
//  4. If the key is still unusable, removes only the RDP certificate and its own key (backed up) and
//     restarts TermService through restart-termserv's own functions, then verifies a new
//     certificate exists and NETWORK SERVICE can read its key.
// --rename-folder --force: the drastic fix many guides give (rename MachineKeys to MachineKeys_old_…,
// start a fresh folder). Every other service's keys live there too; it is journaled and undoable.
// When to use it: inspect-server names certificate-key-unusable with a clear-machinekeys fix, or
// restart-termserv --regenerate-cert failed. Must run as SYSTEM to read key ACLs from build 17763
// (Azure Run Command does; over WinRM/SSH an administrator may be refused — it says so).
// Its PowerShell is scripts/ps/clear-machinekeys.ps1 (step 4 through restart-termserv.ps1 and certificate.ps1).
// Undo: `npx tsx scripts/undo.ts --last --yes` puts the certificate, then the ACLs (or the folder) back.
import { backupRoot } from './lib/backup.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { buildRestoreAclScript, buildRestoreFolderScript, clearChanges, type AclRestoreItem, type ClearRaw, type ContainerState, type FolderRestoreData, type KeyState, type RegenSummary } from './lib/machinekeys-step.ts';
import { psStep } from './lib/ps-loader.ts';
import { compareContainerAcl, isSddl, networkServiceCanRead, sameSecurity } from './lib/sddl.ts';
import { keyFindings, type Finding } from './lib/server-facts.ts';
import { aceSetsParam, DEFAULT_MACHINEKEYS_SDDL, expectedContainerAces } from './lib/server-ps.ts';
import { sessionImpact, sessionText } from './lib/sessions.ts';
import { applyHandshake, asArray, attachJournal, baseReport, handshakeOf, journalChanges, nextCommand, reportChange, runStep, serverFlags, serverMain, withServerOptions, type StepContext, type StepReport } from './lib/server-step.ts';
import { validateInt } from './lib/validate.ts';

export interface ClearOptions {
  /** Step 4: regenerate the certificate when the key is still unusable (default true). */
  regenerate?: boolean;
  /** Restart TermService after an ACL repair so it picks the key up (default true). */
  restart?: boolean;
  /** The drastic fix; requires force. */
  renameFolder?: boolean;
  force?: boolean;
  /** Restart TermService although it disconnects other signed-in sessions (--force). */
  disconnectSessions?: boolean;
  eventHours?: number;
  timeoutSeconds?: number;
  backupRoot?: string;
}

export interface ClearReport extends StepReport {
  evidenceFound: string[];
  findings: Finding[];
  regenerated: boolean;
}

/** Repair the RDP key's permissions on a target, on evidence. */
export async function clearMachineKeys(opts: ClearOptions, ctx: StepContext): Promise<ClearReport> {
  if (opts.renameFolder && !opts.force) throw new UsageError(RENAME_WARNING);
  const raw = await runStep<ClearRaw>(ctx, buildClearScript(opts, ctx.dryRun));
  const report = interpretClear(raw, ctx, opts);
  const changes = clearChanges(raw, ctx, opts);
  if (changes.length) {
    attachJournal(report, await journalChanges(ctx, 'clear-machinekeys', changes), ctx);
    if (report.status === 'failed' && report.undo) report.next.unshift(`undo what was changed: ${report.undo}`);
  }
  return report;
}

export const RENAME_WARNING =
  '--rename-folder renames the whole MachineKeys folder: the private keys of IIS, SQL Server and every other machine certificate live there too and stop working until it is put back. It needs --force (the default repair touches only the RDP key); --force also lets its TermService restart disconnect signed-in users.';

// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'clear-machinekeys'))
    .usage('$0 [--target CHANNEL] [options]\n\nOn evidence only: back up, then repair the ACLs of the RDP key container(s) and the MachineKeys folder\n(by SID, for the Windows build), and regenerate the RDP certificate if its key is still unusable.')
    .option('regenerate', { type: 'boolean', default: true, describe: 'if the key is still unusable after the ACL repair, remove only the RDP certificate and its key and let TermService create new ones (--no-regenerate to stop after the ACLs)' })
    .option('restart', { type: 'boolean', default: true, describe: 'restart TermService after an ACL repair so it picks the key up (--no-restart to skip)' })
    .option('rename-folder', { type: 'boolean', default: false, describe: 'DRASTIC: rename MachineKeys to MachineKeys_old_<time> and start fresh (needs --force; every service\'s keys are in there)' })
    .option('force', { type: 'boolean', default: false, describe: 'go ahead although it is disruptive: restart TermService even when it disconnects the signed-in users listed; required to confirm --rename-folder' })
    .option('event-hours', { type: 'string', default: '72', describe: 'how far back events count as evidence (hours, 1-720)' })
    .option('timeout', { type: 'string', default: '60', describe: 'seconds to wait for TermService, the listener and a new certificate (10-600)' })
    .option('backup-dir', { type: 'string', describe: 'backup folder on the target (default C:\\ProgramData\\rdpfix\\backup)' })
    .example('$0 --dry-run --target azure://SUB/RG/VM', 'show the evidence and what would be repaired (runs as SYSTEM)')
    .example('$0 --target azure://SUB/RG/VM', 'repair on evidence, backed up; undo with undo.ts --last --yes')
    .example('$0 --emit > fix-keys.ps1', 'the script to paste into the Run command blade or a SYSTEM shell')
    .epilog('Never takeown /r, never a recursive grant: only the RDP key container(s) and the folder itself are touched.')
    .parseAsync();
  const flags = serverFlags(args);
  if (args['rename-folder'] && !args.force) throw new UsageError(RENAME_WARNING);
  const opts: ClearOptions = {
    regenerate: args.regenerate,
    restart: args.restart,
    renameFolder: args['rename-folder'],
    force: args.force,
    disconnectSessions: args.force,
    eventHours: validateInt(args['event-hours'], '--event-hours', 1, 720),
    timeoutSeconds: validateInt(args.timeout, '--timeout', 10, 600),
    ...(args['backup-dir'] !== undefined ? { backupRoot: backupRoot(args['backup-dir']) } : {}),
  };
  return serverMain(flags, {
    title: 'checking and repairing the RDP key permissions',
    emit: (dry) => buildClearScript(opts, dry),
    execute: (ctx) => clearMachineKeys(opts, ctx),
  });
}

// ---------------------------------------------------------------- internals

// The raw result's shape, the undo scripts and the journal changes (clearChanges) live in
// lib/machinekeys-step.ts, shared with lib/step-changes.ts; re-exported for this script's callers.
export { buildRestoreAclScript, buildRestoreFolderScript, clearChanges };
export type { AclRestoreItem, ClearRaw, ContainerState, FolderRestoreData, KeyState, RegenSummary };

/** What the result drops first, in order, to fit Run Command's 4 KB. */
const DROP = ['before.containers', 'after.containers', 'before.events', 'regenerate.plan', 'restart.plan', 'before.folder', 'after.folder', 'sessions.list', 'restart.problems', 'regenerate.problems'];

/** The repair script (scripts/ps/clear-machinekeys.ps1 Repair-RdpMachineKey). */
export function buildClearScript(opts: ClearOptions, dryRun: boolean): string {
  return psStep({
    name: 'clear-machinekeys',
    summary: opts.renameFolder ? 'on evidence, rename MachineKeys (drastic) and regenerate the RDP certificate' : 'on evidence, back up and repair the RDP key ACLs; regenerate the certificate if still unusable',
    file: 'clear-machinekeys',
    entry: 'Repair-RdpMachineKey',
    params: {
      AceSets: aceSetsParam(),
      DefaultFolderSddl: DEFAULT_MACHINEKEYS_SDDL,
      BackupRoot: opts.backupRoot ?? '',
      EventHours: opts.eventHours ?? 72,
      Regenerate: opts.regenerate ?? true,
      Restart: opts.restart ?? true,
      RenameFolder: !!opts.renameFolder,
      DisconnectSessions: !!opts.disconnectSessions,
      TimeoutSeconds: opts.timeoutSeconds ?? 60,
      Drop: DROP,
      DryRun: dryRun,
    },
  });
}

const EVIDENCE_TEXT: Array<[RegExp, (m: RegExpExecArray) => string]> = [
  [/^key-unreadable:(.+)$/, (m) => `NETWORK SERVICE cannot read the RDP key container ${m[1]}`],
  [/^key-acl-unreadable:(.+)$/, (m) => `even SYSTEM cannot read the ACL of ${m[1]}`],
  [/^key-open-failed$/, () => 'the private key cannot be opened even as SYSTEM'],
  [/^event-(\d+)$/, (m) => `event ${m[1]} (${{ '36870': 'Schannel: cannot access the private key', '36871': 'Schannel: cannot create the TLS credential', '1055': 'cannot access the private key', '1057': 'cannot create a self-signed certificate', '1058': 'cannot replace the expired certificate' }[m[1]!] ?? 'key problem'})`],
  [/^folder-acl$/, () => 'the MachineKeys folder ACL differs from the default'],
];

export function describeEvidence(e: string): string {
  for (const [re, f] of EVIDENCE_TEXT) {
    const m = re.exec(e);
    if (m) return f(m);
  }
  return e;
}

/** Re-check, in TypeScript, every descriptor the target says it repaired. */
export function verifyRepair(raw: ClearRaw): string[] {
  const problems: string[] = [];
  const build = raw.before?.build ?? 0;
  const folder = raw.changed?.folder;
  if (folder) {
    if (!folder.after || !isSddl(folder.after) || !sameSecurity(folder.after, DEFAULT_MACHINEKEYS_SDDL)) problems.push(`the MachineKeys folder ACL did not read back as the default (${folder.after ?? 'unreadable'})`);
  }
  for (const c of asArray<{ path: string; kind: 'listener' | 'other'; after: string | null }>(raw.changed?.containers)) {
    if (!c.after || !isSddl(c.after)) {
      problems.push(`${c.path}: the repaired ACL could not be read back`);
      continue;
    }
    if (c.kind === 'listener') {
      const cmp = compareContainerAcl(c.after, expectedContainerAces(build));
      if (!cmp.matches) problems.push(`${c.path}: after the repair ${cmp.aces.filter((a) => a.state !== 'ok').map((a) => `${a.who} ${a.state}`).join(', ') || `owner ${cmp.owner}`}`);
    } else if (!networkServiceCanRead(c.after)) {
      problems.push(`${c.path}: NETWORK SERVICE still cannot read it`);
    }
  }
  return problems;
}

export function interpretClear(raw: ClearRaw, ctx: StepContext, opts: ClearOptions = {}): ClearReport {
  const evidence = asArray<string>(raw.evidence);
  const before = raw.before ?? {};
  const findings = keyFindings(
    {
      ...(before.build !== undefined ? { build: before.build } : {}),
      ...(before.runAs !== undefined ? { runAs: before.runAs } : {}),
      folderSddl: before.folder?.sddl ?? null,
      containers: before.containers,
      key: before.certificate
        ? {
            file: before.certificate.keyFile ?? null,
            ...(typeof before.certificate.opened === 'boolean' ? { opened: before.certificate.opened } : {}),
            error: before.certificate.error ?? null,
            sddl: asArray<ContainerState>(before.containers).find((c) => c.name && c.name === before.certificate?.keyFile?.split('\\').at(-1))?.sddl ?? null,
          }
        : null,
      hasPrivateKey: before.certificate?.hasPrivateKey ?? null,
      eventCounts: before.events ?? {},
    },
    (args) => nextCommand('clear-machinekeys', args, ctx),
  );
  const r: ClearReport = {
    ...baseReport('clear-machinekeys', ctx),
    before: raw.before ?? null,
    after: raw.after ?? null,
    backup: raw.backup ?? null,
    evidenceFound: evidence,
    findings,
    regenerated: raw.regenerate?.status === 'changed',
  };
  const problems = [...asArray<string>(raw.problems)];
  let status = (['ok', 'changed', 'would-change', 'failed'].includes(raw.status) ? raw.status : 'failed') as ClearReport['status'];
  if (status === 'changed' && raw.mode !== 'rename') {
    const v = verifyRepair(raw);
    if (v.length) {
      problems.push(...v);
      status = 'failed';
    }
  }
  r.status = status;
  if (raw.error) r.error = raw.error;
  const plan = raw.plan ?? {};
  const planned = [plan.folder ? 'the MachineKeys folder ACL' : '', ...asArray<string>(plan.containers)].filter(Boolean);
  switch (status) {
    case 'ok':
      r.summary = raw.note ?? 'nothing to do';
      break;
    case 'would-change':
      r.summary = plan.rename
        ? `would rename MachineKeys (with ${plan.otherKeys ?? '?'} other keys in it) and regenerate the RDP certificate`
        : planned.length
          ? `would back up and repair ${planned.join(', ')}; then regenerate the certificate only if the key is still unusable`
          : `would regenerate the RDP certificate (remove it and its key, restart TermService)`;
      break;
    case 'changed':
      r.summary = raw.mode === 'rename'
        ? `MachineKeys renamed to ${raw.renamed?.to}; new certificate ${raw.regenerate?.thumbprintAfter ?? '?'}`
        : `${[asArray(raw.changed?.containers).length || raw.changed?.folder ? `repaired ${planned.join(', ') || 'the ACLs'}` : '', r.regenerated ? `regenerated the certificate (${raw.regenerate?.thumbprintBefore ?? 'none'} → ${raw.regenerate?.thumbprintAfter ?? '?'})` : ''].filter(Boolean).join('; ')}; the key is usable by TermService`;
      break;
    default:
      r.summary = raw.error ?? (problems.join('; ') || 'the repair failed');
  }
  if (evidence.length) r.evidence.push(`evidence: ${evidence.map(describeEvidence).join('; ')}`);
  for (const c of asArray<{ path: string; before: string | null; after: string | null }>(raw.changed?.containers)) r.evidence.push(`${c.path}: ${c.before ?? '?'} → ${c.after ?? '?'}`);
  if (raw.changed?.folder) r.evidence.push(`MachineKeys: ${raw.changed.folder.before ?? '?'} → ${raw.changed.folder.after ?? '?'}`);
  if (status === 'failed' && problems.length && r.summary !== problems.join('; ')) r.evidence.push(...problems);
  r.warnings.push(...new Set([...asArray<string>(raw.warnings), ...asArray<string>(raw.restart?.warnings), ...asArray<string>(raw.regenerate?.warnings)]));
  applyHandshake(r, handshakeOf(raw));
  r.refused = raw.refused ?? null;
  // A repair that read back but after which a client's handshake still fails: the next rung.
  if (status === 'failed' && (r.cause === 'certificate-key-unusable' || r.cause === 'closed-by-server' || r.cause === 'certificate-expired')) {
    if (!raw.restart && !raw.regenerate) r.next.push(nextCommand('restart-termserv', opts.disconnectSessions ? ['--force'] : [], ctx));
    else if (!raw.regenerate) r.next.push(nextCommand('restart-termserv', ['--regenerate-cert', ...(opts.disconnectSessions ? ['--force'] : [])], ctx));
    else r.next.push(nextCommand('inspect-server', [], ctx));
  }
  if (opts.renameFolder || raw.mode === 'rename') {
    r.warnings.push(`--rename-folder moves every machine key aside, not just RDP's: IIS, SQL Server and other certificates' keys${plan.otherKeys !== undefined ? ` (${plan.otherKeys} other files)` : ''} stop working until restored (undo puts the folder back)`);
  }
  const impact = sessionImpact(raw.sessions, true);
  const others = sessionText(impact);
  const args = [...(opts.renameFolder ? ['--rename-folder'] : []), ...(opts.renameFolder || opts.disconnectSessions ? ['--force'] : [])];
  if (raw.refused === 'sessions') {
    r.summary = `refused: the repair ends with a TermService restart, which disconnects ${impact.unknown ? `signed-in users (the sessions could not be listed: ${impact.unknown})` : others}; nothing was changed (pass --force to go ahead)`;
    r.next.push(nextCommand('clear-machinekeys', [...args.filter((a) => a !== '--force'), '--force'], ctx));
  } else if (raw.sessions && impact.blocks && (status === 'would-change' || raw.restart || raw.regenerate)) {
    r.warnings.push(`the TermService restart ${status === 'would-change' ? 'would disconnect' : 'disconnected'} ${impact.unknown ? 'signed-in users (the sessions could not be listed)' : others}${status === 'would-change' && !opts.disconnectSessions ? '; the real run refuses without --force' : ''}`);
  }
  if (status === 'failed' && /run this as SYSTEM/.test(raw.error ?? '')) {
    r.notes.push(`reading the RDP key ACL needs SYSTEM from build 17763: Azure Run Command runs as SYSTEM (${nextCommand('clear-machinekeys', args, { ...ctx, target: { kind: 'azure', subscription: 'SUB', resourceGroup: 'RG', vm: 'VM' } })}), or run the --emit script in a SYSTEM PowerShell (psexec -s -i powershell.exe)`);
  }
  if (status === 'changed') r.notes.push('probe RDP from your workstation: npx tsx scripts/diagnose.ts HOST');
  if (status === 'would-change') r.next.push(nextCommand('clear-machinekeys', [...args, ...(impact.blocks && !args.includes('--force') ? ['--force'] : [])], ctx));
  // The contract's changes (lib/report.ts): in a dry run what the plan would change, else what was
  // changed (the journaled ACL repair, rename or regeneration, and the TermService restart).
  if (status === 'would-change') {
    if (plan.rename) r.changes.push({ summary: `rename MachineKeys (with ${plan.otherKeys ?? '?'} other keys in it) and regenerate the RDP certificate`, rename: true });
    else if (planned.length) r.changes.push(...planned.map((x) => ({ summary: `back up and repair ${x}`, path: x })));
    else r.changes.push({ summary: 'regenerate the RDP certificate (remove it and its key, restart TermService)' });
  } else {
    r.changes.push(...clearChanges(raw, ctx, opts).map(reportChange));
    if (raw.restart?.restarted) r.changes.push({ summary: 'restarted TermService so it loads the repaired key' });
  }
  return r;
}

if (isMain(import.meta.url)) await runCli(main);
