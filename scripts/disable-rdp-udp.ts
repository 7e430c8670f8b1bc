// disable-rdp-udp: make the Windows Remote Desktop client (mstsc) use TCP only.
//
// What it fixes: RDP 8+ opens a UDP side channel after connecting over TCP. On paths that drop or
// mangle UDP (some VPNs, carrier NAT, UDP-hostile firewalls) sessions freeze, reconnect, or drop with
// 0x904-like socket errors. The client policy fClientDisableUDP = 1 under
//   HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services\Client   (note the \Client subkey;
// without it the value is silently ignored) turns the UDP transport off on this client.
//
// When to use it: test-vpn-latency shows a usable TCP path but sessions still stall, or the VPN is
// known to drop UDP. It is a setting of the Windows CLIENT you connect FROM (not the server).
// It runs as generated PowerShell: locally on Windows, through --target on a remote Windows client,
// or pasted (--emit): scripts/ps/disable-rdp-udp.ps1. It backs the key up with `reg export` first and
// is journaled.
//
// How to undo it: `npx tsx scripts/disable-rdp-udp.ts --enable` removes the value again (UDP back on);
// `undo` restores exactly the previous value from the journal. mstsc reads it at start: reopen it.
import { describeTarget, parseTarget, TARGET_HELP, type Target } from './lib/channels.ts';
import { runStep, settleIntent, type RawResult, type StepContext } from './lib/server-step.ts';
import { isMain, makeCli, refuseEmitJson, runCli } from './lib/cli.ts';
import { EnvError, StepError } from './lib/errors.ts';
import { record } from './lib/journal.ts';
import { printHuman, printJson, statusWord, withSpinner, type Status } from './lib/output.ts';
import type { Report } from './lib/report.ts';
import { DEFAULT_BACKUP_DIR, POLICY_KEY, POLICY_REG_KEY, udpChange, udpPolicyScript, VALUE_NAME, type UdpScriptOptions } from './lib/udp-step.ts';
import { validateLocalPath, validateWindowsPath } from './lib/validate.ts';

const SCRIPT = 'disable-rdp-udp';
// The policy key and value, the generated script (udpPolicyScript) and the journal change
// (udpChange) live in lib/udp-step.ts, shared with lib/step-changes.ts; re-exported for callers.
export { DEFAULT_BACKUP_DIR, POLICY_KEY, POLICY_REG_KEY, udpChange, udpPolicyScript, VALUE_NAME };
export type { UdpScriptOptions };

export interface UdpOptions {
  /** true: remove the policy (UDP back on). Default: disable UDP. */
  enable?: boolean;
  dryRun?: boolean;
  /** Where to run: a Target or a --target string (default local). */
  target?: Target | string;
  backupDir?: string;
  journalDir?: string;
  /**
   * On a machine that is not Windows with --target local, report status 'skipped' (for the recipe
   * runner) instead of failing with exit 2.
   */
  skipIfNotWindows?: boolean;
  /** For tests: the platform to assume (default process.platform). */
  platform?: NodeJS.Platform;
}

/** The step contract (lib/report.ts) and the value before and after. */
export interface UdpResult extends Report {
  status: Status;
  target: string;
  key: string;
  before: number | null;
  after: number | null;
  backup: string | null;
  /** Journal entry id (null when nothing changed). */
  journal: string | null;
  reason?: string;
  error?: string;
}

/** Turn the RDP client's UDP transport off (or on again with enable), backed up and journaled. */
export async function setRdpUdp(o: UdpOptions = {}): Promise<UdpResult> {
  const target = typeof o.target === 'string' ? parseTarget(o.target) : o.target ?? { kind: 'local' };
  const platform = o.platform ?? process.platform;
  const backupDir = validateWindowsPath(o.backupDir ?? DEFAULT_BACKUP_DIR, 'backup folder');
  const where = describeTarget(target);
  const base = { target: where, key: POLICY_REG_KEY, backup: null, journal: null };
  if (target.kind === 'local' && platform !== 'win32') {
    const reason = notWindowsReason(platform);
    if (o.skipIfNotWindows) return withContract({ ...base, status: 'skipped', before: null, after: null, reason }, target, !!o.enable);
    throw new EnvError(reason, 'run it on the Windows client you connect from, use --target winrm://HOST | ssh://USER@HOST for a remote Windows client, or --emit to get the script to paste');
  }
  const value = o.enable ? null : 1;
  const script = udpPolicyScript({ value, dryRun: o.dryRun, backupDir });
  // Through runStep: an intent entry first, the script tagged with it (lib/server-step.ts), so a run
  // killed or cut off after the change is found by undo --reconcile in the target's record.
  const ctx: StepContext = { target, dryRun: !!o.dryRun, ...(o.journalDir ? { journal: o.journalDir } : {}) };
  const result = await runStep<ScriptResult & RawResult>(ctx, script);
  const out: UdpCore = {
    ...base,
    status: result.status,
    before: result.before ?? null,
    after: result.after ?? null,
    backup: result.backup ?? null,
    ...(result.error ? { error: result.error } : {}),
  };
  if (result.status === 'changed') {
    const entry = await record(
      { script: SCRIPT, target: target.kind === 'local' ? 'client' : where, ...udpChange(out.before, out.after, out.backup, where, backupDir), ...(ctx.intent?.record ? { targetRecord: ctx.intent.record } : {}) },
      o.journalDir,
    );
    out.journal = entry.id;
    await settleIntent(ctx, [entry.id]);
  } else {
    await settleIntent(ctx, []);
  }
  return withContract(out, target, !!o.enable);
}

export async function main(argv: string[]): Promise<number> {
  const cli = makeCli(argv, SCRIPT)
    .usage(
      '$0 [--enable] [--dry-run] [--target T | --emit]\n\n' +
        `Make the Windows Remote Desktop client use TCP only: ${VALUE_NAME}=1 under\n` +
        `${POLICY_REG_KEY}. --enable removes it again. Backed up (reg export), journaled.`,
    )
    .option('enable', { type: 'boolean', default: false, describe: 'remove the policy: let the client use UDP again' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'inspect and report what would change; change nothing' })
    .option('target', { type: 'string', default: 'local', describe: TARGET_HELP })
    .option('emit', { type: 'boolean', default: false, describe: 'print the PowerShell instead of running it (paste it on the Windows client)' })
    .option('skip-if-not-windows', { type: 'boolean', default: false, describe: "with --target local on Linux/macOS: report 'skipped' (exit 0) instead of exit 2" })
    .option('backup-dir', { type: 'string', default: DEFAULT_BACKUP_DIR, describe: 'folder on the Windows client for the reg export backup' })
    .option('journal', { type: 'string', describe: 'journal folder (default ~/.rdpfix/journal or $RDPFIX_JOURNAL)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
    .example('$0', 'on the Windows client, in an elevated terminal: RDP over TCP only')
    .example('$0 --dry-run', 'show whether it would change anything')
    .example('$0 --enable', 'UDP back on')
    .example('$0 --target winrm://jumpbox01', 'on a remote Windows client (e.g. a jump box)')
    .example('$0 --emit > disable-rdp-udp.ps1', 'the script to paste into an elevated PowerShell')
    .epilog('Exit codes: 0 ok/changed/skipped, 1 failed, 2 bad usage or not a Windows client. Reopen mstsc after a change.');
  const a = await cli.parseAsync();
  const json = a.json as boolean;
  const dryRun = a['dry-run'] as boolean;
  const backupDir = validateWindowsPath(a['backup-dir'] as string, 'backup folder');
  const target = parseTarget(a.target as string);
  const journalDir = a.journal !== undefined ? validateLocalPath(a.journal as string, 'journal folder') : undefined;
  if (a.emit) {
    refuseEmitJson(true, !!a.json);
    process.stdout.write(udpPolicyScript({ value: a.enable ? null : 1, dryRun, backupDir }));
    return 0;
  }
  let r: UdpResult;
  try {
    r = await withSpinner(`${a.enable ? 'enabling' : 'disabling'} RDP client UDP on ${describeTarget(target)}`, () =>
      setRdpUdp({ enable: a.enable as boolean, dryRun, target, backupDir, journalDir, skipIfNotWindows: a['skip-if-not-windows'] as boolean }), !json);
  } catch (e) {
    if (!(e instanceof StepError)) throw e;
    r = withContract({ status: 'failed', target: describeTarget(target), key: POLICY_REG_KEY, before: null, after: null, backup: null, journal: null, error: e.message }, target, a.enable as boolean);
  }
  if (json) printJson(r);
  else printHuman(`${statusWord(r.status)}: ${r.summary}`, [...r.evidence, ...r.notes.map((n) => `note: ${n}`)], r.next);
  return r.status === 'failed' ? 1 : 0;
}

// ------------------------------------------------------------------ internals

interface ScriptResult {
  status: Status;
  before?: number | null;
  after?: number | null;
  backup?: string | null;
  error?: string;
}

type UdpCore = Omit<UdpResult, keyof Report> & { status: Status };

/** The result with the contract's summary, changes, evidence, next and notes in front. */
function withContract(r: UdpCore, target: Target, enable: boolean): UdpResult {
  const show = (v: number | null) => (v === null ? '(absent)' : String(v));
  const after = r.status === 'would-change' ? (enable ? null : 1) : r.after;
  const arrow = `${VALUE_NAME} ${show(r.before)} -> ${show(after)} on ${r.target}`;
  const summary =
    r.status === 'skipped' ? r.reason ?? 'skipped'
    : r.status === 'ok' ? `${VALUE_NAME} is already ${show(r.after)} on ${r.target}`
    : r.status === 'would-change' ? `${arrow} (dry run, nothing changed)`
    : r.status === 'changed' ? arrow
    : r.error ?? 'the change failed';
  const changes = r.status === 'changed' || r.status === 'would-change' ? [{ summary: arrow, before: r.before, after, backup: r.backup }] : [];
  const evidence = [`key: ${POLICY_REG_KEY}`, ...(r.backup ? [`backup: ${r.backup}`] : []), ...(r.journal ? [`journal: ${r.journal}`] : [])];
  const where = target.kind === 'local' ? [] : ['--target', describeTarget(target)];
  const next = r.status === 'changed' ? [['npx tsx scripts/disable-rdp-udp.ts', ...(enable ? [] : ['--enable']), ...where].join(' ')] : [];
  const notes = r.status === 'changed' ? ['reopen the Remote Desktop client (mstsc reads the policy at start)'] : [];
  const { status, ...rest } = r;
  return { status, summary, cause: null, changes, evidence, next, notes, ...rest };
}

/** The explanation for a non-Windows machine, shared by the error and the 'skipped' status. */
function notWindowsReason(platform: NodeJS.Platform): string {
  return `${VALUE_NAME} is a setting of the Windows Remote Desktop client (mstsc); this machine runs ${platform}, so there is nothing to change here`;
}

if (isMain(import.meta.url)) await runCli(main);
