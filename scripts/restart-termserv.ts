// restart-termserv: restart Remote Desktop Services and prove the listener is back; optionally
// replace a broken self-signed RDP certificate.
//
// What it fixes: a TermService that is stopped, hung or holding a stale certificate (0x904/0x7,
// "nothing listens", "no certificate"). It restarts TermService with -Force (which stops
// UmRdpService too; that is started again), waits for Running with a timeout, confirms something
// listens on the RDP port again, and reports the certificate thumbprint before and after.
// --regenerate-cert: first backs up each certificate in the Remote Desktop store (Export-Certificate
// of the public cert, `reg export` of its store entry — certificate plus the link to its key — and a
// copy of its key container file) into C:\ProgramData\rdpfix\backup\<time>-restart-termserv, then
// removes it so the restart creates a fresh one, and verifies that it did (and that NETWORK SERVICE
// can read the new key). An orphaned SSLCertificateSHA1Hash pin (certificate gone or expired) is
// backed up and removed too — unlike Azure's ResetRDPCert it never forces SecurityLayer 0 or
// MinEncryptionLevel 1. A valid CA-issued pinned certificate is left alone unless --replace-pinned.
// Sessions: a restart disconnects every RDP session. Before anything changes it lists the signed-in
// sessions (WTS API: user, session id, state, client) and refuses when any but the caller's would be
// disconnected, unless --force; --dry-run reports them.
// When to use it: diagnose says no-listener, certificate-expired or certificate-key-unusable.
// Its PowerShell is scripts/ps/restart-termserv.ps1 (certificate backup and undo: certificate.ps1).
// Undo: a plain restart has nothing to undo. A regeneration is journaled: `npx tsx scripts/undo.ts
// --last --yes` re-imports the old store entry (and key, pin), removes the new certificate (backed up
// first) and restarts TermService.
import { backupRoot } from './lib/backup.ts';
import { regenChange, type CertBackupRecord, type RestartRaw, type RestartState } from './lib/certificate.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { psStep } from './lib/ps-loader.ts';
import type { EventRecord } from './lib/server-facts.ts';
import { describeSession, sessionImpact, sessionText, type SessionRecord } from './lib/sessions.ts';
import { applyHandshake, asArray, attachJournal, baseReport, handshakeOf, journalChanges, nextCommand, psDate, reportChange, runStep, serverFlags, serverMain, serviceStatus, withServerOptions, type StepContext, type StepReport } from './lib/server-step.ts';
import { validateInt, validatePort, validateThumbprint } from './lib/validate.ts';

export interface RestartOptions {
  /** Seconds to wait for Running, for the listener and for a new certificate (default 60). */
  timeoutSeconds?: number;
  regenerateCert?: boolean;
  /** Regenerate only while this certificate is still in use/in the store; otherwise report ok. */
  onlyThumbprint?: string;
  /** Also remove the certificate's own key container (clear-machinekeys step 4). */
  removeKey?: boolean;
  /** Replace a valid pinned (CA-issued) certificate: remove the pin and fall back to self-signed. */
  replacePinned?: boolean;
  /** Restart even though other signed-in sessions are disconnected (--force). */
  disconnectSessions?: boolean;
  /** Backup root on the target (default C:\ProgramData\rdpfix\backup). */
  backupRoot?: string;
  /** Port to check for the listener (default: PortNumber from the registry). */
  port?: number;
}

export interface RestartReport extends StepReport {
  thumbprintBefore: string | null;
  thumbprintAfter: string | null;
  restarted: boolean;
  events: EventRecord[];
  /** The signed-in sessions other than the caller's that a restart disconnects. */
  disconnects: SessionRecord[];
}

/** Restart TermService on a target (and regenerate its certificate); journals what it removed. */
export async function restartTermserv(opts: RestartOptions, ctx: StepContext): Promise<RestartReport> {
  const raw = await runStep<RestartRaw>(ctx, buildRestartScript(opts, ctx.dryRun));
  const report = interpretRestart(raw, ctx, opts);
  const change = regenChange(raw, ctx, opts.timeoutSeconds);
  if (change) {
    attachJournal(report, await journalChanges(ctx, 'restart-termserv', [change]), ctx);
    if (report.status === 'failed' && report.undo) {
      report.next.unshift(report.undo);
      report.notes.push(`the first command puts the old certificate back (${change.summary})`);
    }
  }
  return report;
}

// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'restart-termserv'))
    .usage('$0 [--regenerate-cert [--thumbprint T]] [--target CHANNEL] [options]\n\nRestart Remote Desktop Services, wait for it and for the listener, and report the certificate before and\nafter. --regenerate-cert backs up and removes the RDP certificate first so Windows creates a fresh one.')
    .option('regenerate-cert', { type: 'boolean', default: false, describe: 'back up and remove the Remote Desktop store certificate(s) (and an orphaned pin) so the restart creates a new one' })
    .option('thumbprint', { type: 'string', describe: 'regenerate only while this certificate is still in use (a second run then reports ok)' })
    .option('remove-key', { type: 'boolean', default: false, describe: "also remove the certificate's own key container (backed up); for an unreadable key" })
    .option('force', { type: 'boolean', default: false, describe: 'restart although it disconnects the signed-in users listed (without it, other sessions make it refuse)' })
    .option('replace-pinned', { type: 'boolean', default: false, describe: 'with --regenerate-cert: replace a valid pinned (CA-issued) certificate: remove the pin, fall back to self-signed' })
    .option('timeout', { type: 'string', default: '60', describe: 'seconds to wait for Running, the listener and a new certificate (10-600)' })
    .option('port', { type: 'string', describe: 'port to check for the listener (default: PortNumber from the registry)' })
    .option('backup-dir', { type: 'string', describe: 'backup folder on the target (default C:\\ProgramData\\rdpfix\\backup)' })
    .example('$0 --target azure://SUB/RG/VM', 'restart through Run Command and check the listener')
    .example('$0 --dry-run --target winrm://vm1', 'who would be disconnected, and what would change')
    .example('$0 --force --target winrms://vm1', 'restart although other users are signed in')
    .example('$0 --regenerate-cert --emit > regen.ps1', 'the script to paste on the server')
    .epilog('Undo a regeneration: npx tsx scripts/undo.ts --last --yes')
    .parseAsync();
  const flags = serverFlags(args);
  if ((args.thumbprint !== undefined || args['remove-key'] || args['replace-pinned']) && !args['regenerate-cert']) {
    throw new UsageError('--thumbprint, --remove-key and --replace-pinned only apply with --regenerate-cert');
  }
  const opts: RestartOptions = {
    timeoutSeconds: validateInt(args.timeout, '--timeout', 10, 600),
    regenerateCert: args['regenerate-cert'],
    removeKey: args['remove-key'],
    replacePinned: args['replace-pinned'],
    disconnectSessions: args.force,
    ...(args.thumbprint !== undefined ? { onlyThumbprint: validateThumbprint(args.thumbprint) } : {}),
    ...(args.port !== undefined ? { port: validatePort(args.port, '--port') } : {}),
    ...(args['backup-dir'] !== undefined ? { backupRoot: backupRoot(args['backup-dir']) } : {}),
  };
  return serverMain(flags, {
    title: opts.regenerateCert ? 'regenerating the RDP certificate' : 'restarting TermService',
    emit: (dry) => buildRestartScript(opts, dry),
    execute: (ctx) => restartTermserv(opts, ctx),
  });
}

// ---------------------------------------------------------------- internals

/** What the result drops first, in order, to fit Run Command's 4 KB. */
const DROP = ['before.certificate.store', 'after.certificate.store', 'events.newest', 'before.certificate.key.sddl', 'before.services', 'sessions.list'];

/** The generated script for one restart (scripts/ps/restart-termserv.ps1 Restart-RdpService). */
export function buildRestartScript(opts: RestartOptions, dryRun: boolean): string {
  return psStep({
    name: 'restart-termserv',
    summary: opts.regenerateCert ? 'back up and remove the RDP certificate, restart TermService, verify a new one' : 'restart TermService and verify the listener',
    file: 'restart-termserv',
    entry: 'Restart-RdpService',
    params: {
      TimeoutSeconds: opts.timeoutSeconds ?? 60,
      RegenerateCert: !!opts.regenerateCert,
      OnlyThumbprint: opts.onlyThumbprint ?? '',
      RemoveKey: !!opts.removeKey,
      ReplacePinned: !!opts.replacePinned,
      DisconnectSessions: !!opts.disconnectSessions,
      BackupRoot: opts.backupRoot ?? '',
      Port: opts.port ?? 0,
      Drop: DROP,
      DryRun: dryRun,
    },
  });
}

const termStatus = (s?: RestartState | null) =>
  serviceStatus(asArray<{ Name?: string; Status?: unknown }>(s?.services).find((x) => x?.Name === 'TermService')?.Status) ?? 'unknown';

/** The restart-termserv arguments that repeat this run (for next-step commands). */
function cliArgs(opts: RestartOptions, extra: { force?: boolean; replacePinned?: boolean } = {}): string[] {
  const a: string[] = [];
  if (opts.regenerateCert) a.push('--regenerate-cert');
  if (opts.onlyThumbprint) a.push('--thumbprint', opts.onlyThumbprint);
  if (opts.removeKey) a.push('--remove-key');
  if (opts.replacePinned || extra.replacePinned) a.push('--replace-pinned');
  if (opts.disconnectSessions || extra.force) a.push('--force');
  return a;
}

/** Turn the raw result into a report (pure; tested on fixtures). */
export function interpretRestart(raw: RestartRaw, ctx: StepContext, opts: RestartOptions = {}): RestartReport {
  const running = termStatus(raw.before) === 'Running';
  // A result without a services list (dropped to fit 4 KB) was judged by the target itself.
  const impact = sessionImpact(raw.sessions, raw.before?.services === undefined ? true : running);
  const r: RestartReport = {
    ...baseReport('restart-termserv', ctx),
    thumbprintBefore: raw.before?.certificate?.thumbprint ?? null,
    thumbprintAfter: raw.after?.certificate?.thumbprint ?? null,
    restarted: !!raw.restarted,
    events: asArray<EventRecord>(raw.events?.newest),
    disconnects: impact.others,
    before: raw.before ?? null,
    after: raw.after ?? null,
    backup: raw.backup ?? null,
  };
  const removed = asArray<CertBackupRecord>(raw.removed).map((x) => x.thumbprint);
  const problems = asArray<string>(raw.problems);
  // Check the target's verdict: a "changed" with the old certificate still in use, or the service
  // down, is a failed verification whatever the script concluded.
  if (raw.status === 'changed') {
    // (services may have been dropped to fit 4 KB; the target checked them too)
    if (raw.after?.services !== undefined && termStatus(raw.after) !== 'Running') problems.push('TermService is not running after the restart');
    if (raw.after && raw.after.listening === false) problems.push(`nothing listens on port ${raw.after.port ?? 3389}`);
    if (opts.regenerateCert && (!r.thumbprintAfter || removed.includes(r.thumbprintAfter))) problems.push('no new certificate is in use');
  }
  const status = ['ok', 'changed', 'would-change', 'failed'].includes(raw.status) ? (raw.status as RestartReport['status']) : 'failed';
  r.status = status === 'changed' && problems.length ? 'failed' : status;
  r.warnings.push(...asArray<string>(raw.warnings));
  if (raw.error) r.error = raw.error;
  // The refusal is TypeScript's decision too: a restart that disconnected others without --force
  // is reported as such, whatever the target concluded.
  if (raw.restarted && impact.blocks && !opts.disconnectSessions) {
    r.warnings.push(`TermService was restarted without --force although it disconnected ${sessionText(impact) || `sessions (${impact.unknown})`}`);
  }
  const refusedForSessions = raw.refused === 'sessions' || (r.status === 'failed' && !raw.restarted && impact.blocks && !opts.disconnectSessions && /disconnect/.test(raw.error ?? ''));

  const port = raw.after?.port ?? raw.before?.port ?? opts.port ?? 3389;
  const plan = raw.plan ?? {};
  const planRemove = asArray<string>(plan.remove);
  const removeText = [planRemove.length ? `certificate(s) ${planRemove.join(', ')}` : '', plan.unpin ? 'the SSLCertificateSHA1Hash pin' : ''].filter(Boolean).join(' and ');
  const disconnectText = impact.unknown ? `may disconnect signed-in users (the sessions could not be listed: ${impact.unknown})` : `disconnects ${impact.others.length + impact.more} session(s): ${sessionText(impact)}`;
  switch (r.status) {
    case 'ok':
      r.summary = raw.note ?? 'nothing to do';
      break;
    case 'would-change':
      r.summary = `would ${removeText ? `back up and remove ${removeText}, then ` : ''}restart TermService (currently ${termStatus(raw.before)}, certificate ${r.thumbprintBefore ?? 'none'})${impact.blocks ? `; that ${disconnectText}${opts.disconnectSessions ? '' : ', so the real run refuses without --force'}` : ''}`;
      break;
    case 'changed':
      r.summary = `TermService restarted and listening on port ${port}; certificate ${r.thumbprintBefore ?? 'none'} → ${r.thumbprintAfter ?? 'none'}`;
      break;
    default:
      r.summary = refusedForSessions
        ? `refused: restarting TermService ${disconnectText}; nothing was changed (pass --force to restart anyway)`
        : raw.error ?? (problems.length ? problems.join('; ') : 'the restart failed');
  }
  r.evidence.push(`before: TermService ${termStatus(raw.before)}, ${raw.before?.listening ? 'listening' : 'not listening'}, certificate ${r.thumbprintBefore ?? 'none'}`);
  if (raw.sessions && !impact.unknown) {
    const signedIn = impact.others.length + impact.more + (impact.own ? 1 : 0);
    r.evidence.push(signedIn ? `signed in: ${[...(impact.own ? [`${describeSession(impact.own)} (this session)`] : []), sessionText(impact)].filter(Boolean).join('; ')}` : 'signed in: nobody');
  }
  if (impact.own && (raw.restarted || r.status === 'would-change')) r.warnings.push(`your own session ${impact.own.id} is disconnected by the restart too`);
  if (raw.after) r.evidence.push(`after: TermService ${termStatus(raw.after)}, ${raw.after.listening ? 'listening' : 'not listening'}, certificate ${r.thumbprintAfter ?? 'none'}`);
  if (status === 'changed' && problems.length) r.evidence.push(...problems.map((p) => `verification: ${p}`));
  applyHandshake(r, handshakeOf(raw));
  r.refused = raw.refused ?? (refusedForSessions ? 'sessions' : null);
  const na = psDate(raw.after?.certificate?.inUse?.NotAfter);
  if (na && r.status === 'changed') r.evidence.push(`new certificate valid until ${na.toISOString().slice(0, 10)}`);
  for (const e of r.events) r.evidence.push(`event ${e.Id} ${e.ProviderName ?? ''} ${psDate(e.TimeCreated)?.toISOString() ?? ''}: ${e.Message ?? ''}`.trim());
  if (refusedForSessions) {
    r.next.push(nextCommand('restart-termserv', cliArgs(opts, { force: true }), ctx));
    r.notes.push('tell the users listed first: the restart ends their connection (their sessions stay, and they can reconnect when the listener is back)');
  } else if (r.status === 'failed' && !raw.restarted && (raw.refused === 'pinned' || /pinned certificate/.test(raw.error ?? ''))) {
    r.next.push(nextCommand('restart-termserv', cliArgs(opts, { replacePinned: true }), ctx));
  } else if (r.status === 'failed' && raw.restarted && !opts.regenerateCert && (r.cause === 'certificate-key-unusable' || r.cause === 'certificate-expired' || r.cause === 'closed-by-server')) {
    // The restart did not bring a usable certificate back: the next step up is a new one.
    r.next.push(nextCommand('restart-termserv', cliArgs({ ...opts, regenerateCert: true }), ctx));
  } else if (r.status === 'failed' && opts.regenerateCert && !opts.removeKey) {
    r.next.push(nextCommand('clear-machinekeys', opts.disconnectSessions ? ['--force'] : [], ctx));
  } else if (r.status === 'failed') {
    r.next.push(nextCommand('inspect-server', [], ctx));
  }
  if (r.status === 'changed') r.notes.push('probe RDP from your workstation: npx tsx scripts/diagnose.ts HOST');
  if (r.status === 'would-change') r.next.push(nextCommand('restart-termserv', cliArgs(opts, { force: impact.blocks }), ctx));
  // The contract's changes (lib/report.ts): in a dry run what the plan would change, else what was
  // changed (the certificate removal the journal records, and the restart itself).
  if (r.status === 'would-change') {
    if (removeText) r.changes.push({ summary: `back up and remove ${removeText}`, remove: planRemove, unpin: !!plan.unpin });
    r.changes.push({ summary: `restart TermService${impact.blocks ? `: that ${disconnectText}` : ''}`, before: termStatus(raw.before) });
  } else {
    const cert = regenChange(raw, ctx, opts.timeoutSeconds);
    if (cert) r.changes.push(reportChange(cert));
    if (raw.restarted) r.changes.push({ summary: `restarted TermService (${termStatus(raw.before)} before, ${termStatus(raw.after)} after)`, before: termStatus(raw.before), after: termStatus(raw.after) });
  }
  return r;
}

if (isMain(import.meta.url)) await runCli(main);
