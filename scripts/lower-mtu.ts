// lower-mtu: find the real path MTU to an RDP host and lower this client's interface MTU to it.
//
// What it fixes: a VPN or router on the way carries smaller packets than your interface sends, and
// drops the big ones without the ICMP "fragmentation needed" that would let TCP adapt (a path-MTU
// black hole). RDP then connects (small packets) and dies when the server's TLS certificate flight
// (several KB, full-size segments) should arrive: error 0x904 / extended 0x7. With the client's MTU
// at the path MTU, the client announces a smaller TCP MSS and the server's segments fit.
//
// When to use it: diagnose reports "mtu-blackhole", or RDP fails only over the VPN.
//   --probe HOST            discover the exact path MTU (don't-fragment pings, binary search: lib/pmtu.ts)
//   --interface IF --mtu N  set the MTU (journaled; --dry-run shows what it would do)
//   --auto --probe HOST     probe, then set the outgoing interface to the path MTU
//   --emit                  print the Windows PowerShell that sets it (scripts/ps/lower-mtu.ps1; paste
//                           it on a Windows client)
//
// How to undo it: `npx tsx scripts/lower-mtu.ts --revert [--interface IF]` undoes, per interface,
// every lower-mtu journal entry not undone yet, newest first, through lib/undo.ts exactly as
// `npx tsx scripts/undo.ts ID... --yes` would (the allow-list, the recorded command or script, the
// MTU read back, mark, journal), so the interface ends at its value before the first of those
// changes. When the interface already has that value, the entries are marked undone and nothing
// runs. Without a journal entry (a pasted --emit script, another machine) there is nothing to fall
// back on, as before: it says so (a pasted script prints the netsh command that puts the old MTU back).
// On Linux and macOS the change lasts until the interface is reset (reboot, VPN reconnect);
// on Windows it is persistent unless --temporary.
import { describeTarget, type Target } from './lib/channels.ts';
import { isMain, makeCli, refuseEmitJson, runCli } from './lib/cli.ts';
import { EnvError, RdpfixError, StepError, UsageError } from './lib/errors.ts';
import { stripVTControlCharacters } from 'node:util';
import { journalDir, list, record, undoPermit, type JournalEntry, type UndoSpec } from './lib/journal.ts';
import { chalk, printHuman, printJson, statusWord, withSpinner, type Status } from './lib/output.ts';
import { DEFAULT_BACKUP_DIR, isFoundMtu, mtuScript, windowsMtuChange, type MtuScriptOptions } from './lib/mtu-step.ts';
import { MAX_IP_PACKET, probePathMtu, type PmtuOptions, type PmtuResult } from './lib/pmtu.ts';
import { report, type Report, type ReportChange } from './lib/report.ts';
import { execArgv, readInterfaceMtu, systemProgram } from './lib/route.ts';
import { runStep, settleIntent, type Runner, type StepContext } from './lib/server-step.ts';
import { markAlreadyUndone, openEntries, outcomeLines, planUndo, shellWord, undoEntries, type Exec, type UndoOptions, type UndoOutcome } from './lib/undo.ts';
import { MTU_RANGE, validateHost, validateInt, validateInterface, validateLocalPath, validateMtu, validateWindowsPath } from './lib/validate.ts';

const SCRIPT = 'lower-mtu';
// The Windows script (mtuScript) and its journal change (windowsMtuChange) live in lib/mtu-step.ts,
// shared with lib/step-changes.ts; re-exported for this script's callers.
export { DEFAULT_BACKUP_DIR, mtuScript, windowsMtuChange };
export type { MtuScriptOptions };

export interface SetMtuOptions {
  interface: string;
  mtu: number;
  /** 'found' for a path MTU the probe measured (--auto); 'set' (default) for a typed --mtu. */
  origin?: 'set' | 'found';
  dryRun?: boolean;
  /** Windows: store=active instead of persistent. Ignored elsewhere (always runtime-only there). */
  temporary?: boolean;
  journalDir?: string;
  backupDir?: string;
  platform?: NodeJS.Platform;
  /** How the PowerShell runs on Windows (lib/server-step.ts channelRunner, the local channel, by default). */
  run?: Runner;
}

export interface MtuChange {
  status: Status;
  interface: string;
  before: number | null;
  after: number | null;
  mtu: number;
  platform: NodeJS.Platform;
  /** Journal entry id of the change (null when nothing changed). */
  journal: string | null;
  undo: UndoSpec | null;
  backup: string | null;
  notes: string[];
  error?: string;
}

export interface RevertOptions {
  /** Only this interface (default: every interface lower-mtu changed). */
  interface?: string;
  dryRun?: boolean;
  journalDir?: string;
  platform?: NodeJS.Platform;
  /** How a command undo runs (lib/undo.ts execArgv by default). */
  exec?: Exec;
  /** How a PowerShell undo runs (Windows; lib/server-step.ts channelRunner by default). */
  run?: Runner;
}

/** One interface --revert put back: from the MTU it had, to the MTU before the first open change. */
export interface Reverted {
  interface: string;
  from: number | null;
  to: number;
  status: Status;
  /** The journal entries of this interface, newest first. */
  entries: string[];
  /** What lib/undo.ts did with each of them. */
  results: UndoOutcome[];
  error?: string;
}

/** The step contract (lib/report.ts), then what --revert did per interface. */
export interface RevertResult extends Report {
  dryRun: boolean;
  reverted: Reverted[];
  message: string;
}

/** Set one interface's MTU on this machine: read, (back up,) change, verify, journal. */
export async function setInterfaceMtu(o: SetMtuOptions): Promise<MtuChange> {
  const platform = o.platform ?? process.platform;
  const iface = validateInterface(o.interface, platform);
  const mtu = validateMtu(o.mtu, 4, o.origin);
  const notes = platformNotes(platform, mtu, !!o.temporary);
  if (platform === 'win32') return setWindowsMtu({ ...o, interface: iface, mtu }, notes);

  const state = await readInterfaceMtu(iface, platform);
  if (!state.exists) throw notFound(iface, state.available);
  const before = state.mtu;
  const base = { interface: iface, before, mtu, platform, backup: null, notes };
  if (before === mtu) return { ...base, status: 'ok', after: before, journal: null, undo: null };
  if (o.dryRun) return { ...base, status: 'would-change', after: before, journal: null, undo: null };

  const r = await execArgv(unixMtuArgv(platform, iface, mtu, true));
  if (r.code !== 0) {
    const msg = (r.stderr || r.stdout).trim() || `exit ${r.code}`;
    if (/not permitted|permission denied/i.test(msg)) throw new EnvError(`changing the MTU of ${iface} needs root: ${msg}`, 'run it with sudo');
    throw new StepError(`could not set the MTU of ${iface} to ${mtu}: ${msg}`);
  }
  const after = (await readInterfaceMtu(iface, platform)).mtu;
  const undo: UndoSpec = before === null
    ? { kind: 'none', reason: 'the old MTU could not be read' }
    : !isFoundMtu(before)
      ? { kind: 'none', reason: `the old MTU ${before} is outside ${MTU_RANGE.found[4].join('..')}` }
      : { kind: 'command', argv: unixMtuArgv(platform, iface, before) };
  // Journal whatever changed, even when the read-back disagrees, so it can still be undone.
  const entry = after === before ? null : await record(
    { script: SCRIPT, target: 'client', summary: `MTU of ${iface}: ${before} -> ${after}`, before: { interface: iface, mtu: before }, after: { interface: iface, mtu: after }, backup: null, undo },
    o.journalDir,
  );
  if (after !== mtu) {
    return { ...base, status: 'failed', after, journal: entry?.id ?? null, undo: entry ? undo : null, error: `the MTU of ${iface} reads ${after} after setting ${mtu}` };
  }
  return { ...base, status: 'changed', after, journal: entry!.id, undo };
}

/**
 * Restore MTUs from the journal: per interface, every lower-mtu entry not undone yet is undone
 * newest first through lib/undo.ts (the same allow-list, recorded undo, read-back, marking and
 * journaling as `undo ID`), so the interface ends at its value before the FIRST of those changes.
 */
export async function revertMtu(o: RevertOptions = {}): Promise<RevertResult> {
  const platform = o.platform ?? process.platform;
  const only = o.interface !== undefined ? validateInterface(o.interface, platform) : undefined;
  type Recorded = JournalEntry & { before: { interface: string; mtu: number } };
  const recorded = (e: JournalEntry): e is Recorded =>
    e.script === SCRIPT && typeof (e.before as { mtu?: unknown })?.mtu === 'number' && typeof (e.before as { interface?: unknown })?.interface === 'string';
  const byIf = new Map<string, Recorded[]>();
  for (const e of openEntries(await list(o.journalDir), recorded) as Recorded[]) {
    if (only !== undefined && e.before.interface !== only) continue;
    byIf.set(e.before.interface, [...(byIf.get(e.before.interface) ?? []), e]);
  }
  const dryRun = !!o.dryRun;
  if (!byIf.size) {
    const message = `nothing to revert: the journal (${journalDir(o.journalDir)}) has no MTU change${only ? ` for ${only}` : ''} that is not undone yet`;
    return {
      ...report({
        status: 'ok',
        summary: message,
        notes: ['lower-mtu keeps no record on the interface itself, so without a journal entry there is nothing to put back: a change made by a pasted --emit script is undone with the netsh command that script printed, one made from another machine with that machine\'s journal'],
      }),
      dryRun,
      reverted: [],
      message,
    };
  }
  // recordUndo false: the undos are not journaled (the one difference from `undo ID`), so the
  // journal holds only lower-mtu entries afterwards, as --revert always left it.
  const undoOptions: UndoOptions = { platform, by: 'lower-mtu --revert', recordUndo: false, ...(o.journalDir ? { journal: o.journalDir } : {}), ...(o.exec ? { exec: o.exec } : {}), ...(o.run ? { run: o.run } : {}) };
  const reverted: Reverted[] = [];
  for (const [name, entries] of byIf) {
    const to = entries.at(-1)!.before.mtu; // the oldest: the value before rdpfix touched it
    const r: Reverted = { interface: name, from: null, to, status: 'failed', entries: entries.map((e) => e.id), results: [] };
    try {
      // The journal is data: its interface and MTU are validated like typed ones before use, and
      // every entry's undo must put back this interface.
      r.interface = validateInterface(name, platform);
      validateMtu(to, 4, 'found');
      for (const e of entries) {
        const p = undoPermit(e);
        if (p.ok && p.kind === 'command' && p.iface !== r.interface) throw new StepError(`journal entry ${e.id} records ${r.interface}, but its undo changes ${p.iface}: nothing run`);
      }
      if (platform === 'win32') {
        const newest = (entries[0]!.after as { mtu?: unknown } | null)?.mtu;
        r.from = typeof newest === 'number' ? newest : null;
      } else {
        const state = await readInterfaceMtu(r.interface, platform);
        if (!state.exists) throw new StepError(`interface ${r.interface} no longer exists (a VPN tunnel that was torn down takes its MTU with it)`);
        r.from = state.mtu;
      }
      if (r.from === to && platform !== 'win32') {
        // Already back (a reconnect or a person reset it): nothing runs; the entries are done.
        r.status = 'ok';
        if (!dryRun) for (const e of entries) r.results.push(await markAlreadyUndone(e, `${r.interface} already has MTU ${to}`, undoOptions));
      } else if (dryRun) {
        r.results = planUndo(entries);
        const stuck = r.results.find((x) => x.status !== 'would-change');
        r.status = stuck ? 'failed' : 'would-change';
        if (stuck) r.error = `${stuck.id}: ${stuck.status === 'skipped' ? `no automatic undo: ${stuck.detail}` : stuck.detail}`;
      } else {
        const done = await undoEntries(entries, undoOptions);
        r.results = done.results;
        const stuck = done.results.find((x) => x.status === 'failed') ?? done.results.find((x) => x.status === 'skipped');
        r.status = stuck ? 'failed' : done.status === 'changed' ? 'changed' : 'ok';
        if (stuck) r.error = `${stuck.id}: ${stuck.status === 'skipped' ? `not undone: ${stuck.detail}` : stuck.detail}`;
      }
    } catch (e) {
      r.status = 'failed';
      r.error = (e as Error).message;
    }
    reverted.push(r);
  }
  const worst: Status = reverted.some((r) => r.status === 'failed') ? 'failed'
    : reverted.some((r) => r.status === 'changed') ? 'changed'
    : reverted.some((r) => r.status === 'would-change') ? 'would-change' : 'ok';
  const message = reverted.map((r) => `${r.interface}: ${r.from ?? '?'} -> ${r.to} (${r.status}${r.error ? `: ${r.error}` : ''})`).join('; ');
  const journalFlag = o.journalDir ? ` --journal ${shellWord(o.journalDir)}` : '';
  return {
    ...report({
      status: worst,
      summary: message.replace(/[\r\n]+/g, ' '),
      changes: reverted
        .filter((r) => r.status === 'changed' || r.status === 'would-change')
        .map((r): ReportChange => ({ summary: `MTU of ${r.interface}: ${r.from ?? '?'} -> ${r.to}`, interface: r.interface, before: r.from, after: r.to, entries: r.entries })),
      evidence: reverted.flatMap((r) => outcomeLines(r.results).map((l) => `${r.interface}: ${l}`)),
      next: reverted.filter((r) => r.status === 'failed' && r.results.length && !r.results.some((x) => x.detail.startsWith('refused') || x.detail.startsWith('would refuse'))).map((r) => `npx tsx scripts/lower-mtu.ts --revert --interface ${shellWord(r.interface)}${journalFlag}`),
      notes: [`each interface's open lower-mtu journal entries are undone newest first, as npx tsx scripts/undo.ts ID... --yes undoes them (the same allow-list, read-back and journal)`],
    }),
    dryRun,
    reverted,
    message,
  };
}

export async function main(argv: string[]): Promise<number> {
  const cli = makeCli(argv, SCRIPT)
    .usage(
      '$0 --probe HOST | --interface NAME --mtu N | --auto --probe HOST | --revert\n\n' +
        'Find the exact path MTU to an RDP host (don\'t-fragment pings, binary search, retried so one lost\n' +
        'packet is not taken for "too big"), and lower this machine\'s interface MTU to it — journaled,\n' +
        'reversible with --revert. --emit prints the Windows PowerShell instead of running anything.',
    )
    .option('probe', { type: 'string', describe: 'discover the path MTU to this host (name or address)' })
    .option('interface', { type: 'string', describe: 'interface to change (Linux/macOS name, Windows alias)' })
    .option('mtu', { type: 'string', describe: 'new MTU (576-9000)' })
    .option('auto', { type: 'boolean', default: false, describe: 'probe (--probe HOST), then set the outgoing interface to the path MTU' })
    .option('revert', { type: 'boolean', default: false, describe: 'restore the MTU(s) changed earlier, from the journal' })
    .option('floor', { type: 'string', describe: 'smallest MTU the probe considers (default 576; IPv6 1280)' })
    .option('timeout', { type: 'string', default: '1000', describe: 'per-probe timeout in ms' })
    .option('retries', { type: 'string', default: '1', describe: 'extra pings before a silent size counts as too big' })
    .option('temporary', { type: 'boolean', default: false, describe: 'Windows: store=active (until reboot) instead of persistent' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'inspect and report what would change; change nothing' })
    .option('emit', { type: 'boolean', default: false, describe: 'print the Windows PowerShell for --interface/--mtu (to paste on a Windows client); run nothing' })
    .option('backup-dir', { type: 'string', default: DEFAULT_BACKUP_DIR, describe: 'Windows: folder for the backup of the old value' })
    .option('journal', { type: 'string', describe: 'journal folder (default ~/.rdpfix/journal or $RDPFIX_JOURNAL)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
    .example('$0 --probe 10.8.0.5', 'exact path MTU to the RDP host, and whether it is a black hole')
    .example('$0 --auto --probe vm1.contoso.com', 'probe, then lower the outgoing interface to the path MTU')
    .example('sudo $0 --interface wg0 --mtu 1400', 'set it yourself (Linux; journaled)')
    .example('$0 --revert', 'restore what lower-mtu changed')
    .example("$0 --emit --interface 'Wi-Fi' --mtu 1400 > mtu.ps1", 'PowerShell for a Windows client')
    .epilog(
      'Exit codes: 0 ok/changed (probe: path MTU found, no black hole), 1 black hole found or step failed, 2 bad usage.\n' +
        'Probes: Linux ping -M do -s, Windows ping -f -l, macOS ping -D -s (payload = MTU - 28 for IPv4).\n' +
        'Setting: Linux ip link set dev IF mtu N; macOS ifconfig IF mtu N; Windows netsh interface ipv4 set subinterface.',
    );
  const a = await cli.parseAsync();
  const json = a.json as boolean;
  const dryRun = a['dry-run'] as boolean;
  const jdir = a.journal !== undefined ? validateLocalPath(a.journal as string, 'journal folder') : undefined;
  const backupDir = validateWindowsPath(a['backup-dir'] as string, 'backup folder');
  const modes = [a.probe !== undefined && !a.auto, a.auto, a.revert, a.mtu !== undefined && !a.auto].filter(Boolean).length;
  if (a.emit) {
    refuseEmitJson(true, !!a.json);
    if (a.interface === undefined || a.mtu === undefined) throw new UsageError('--emit needs --interface NAME and --mtu N');
    process.stdout.write(mtuScript({ interface: a.interface as string, mtu: validateMtu(a.mtu as string), temporary: a.temporary as boolean, dryRun, backupDir }));
    return 0;
  }
  if (modes !== 1) throw new UsageError('choose one of: --probe HOST, --interface NAME --mtu N, --auto --probe HOST, --revert');
  if (a.auto && a.probe === undefined) throw new UsageError('--auto needs --probe HOST (the host whose path MTU to use)');
  if (a.mtu !== undefined && !a.auto && a.interface === undefined) throw new UsageError('--mtu needs --interface NAME');
  if (a.auto && a.mtu !== undefined) throw new UsageError('--auto finds the MTU itself; leave out --mtu');

  const fail = (e: unknown): number => {
    if (e instanceof RdpfixError && e.exitCode === 2) throw e;
    const message = e instanceof Error ? e.message : String(e);
    const hint = e instanceof RdpfixError ? e.hint ?? null : null;
    if (json) printJson({ ...report({ status: 'failed', summary: message.replace(/[\r\n]+/g, ' '), notes: hint ? [hint] : [] }), error: message, hint });
    else printHuman(`${statusWord('failed')}: ${message}`, e instanceof RdpfixError && e.hint ? [e.hint] : []);
    return 1;
  };

  try {
    if (a.revert) {
      const r = await revertMtu({ interface: a.interface as string | undefined, dryRun, journalDir: jdir });
      if (json) printJson(r);
      else printHuman(`${statusWord(r.status)}: ${r.message}`);
      return r.status === 'failed' ? 1 : 0;
    }

    if (a.probe !== undefined) {
      const opts: PmtuOptions = {
        host: a.probe as string,
        timeoutMs: validateInt(a.timeout as string, '--timeout (ms)', 50, 60_000),
        retries: validateInt(a.retries as string, '--retries', 0, 10),
        ...(a.floor !== undefined ? { floor: validateMtu(a.floor as string) } : {}),
      };
      // Validate before the spinner, so bad input is exit 2 with nothing sent.
      validateHost(opts.host);
      if (a.interface !== undefined) validateInterface(a.interface as string, process.platform);
      const p = await withSpinner(`probing the path MTU to ${opts.host}`, () => probePathMtu(opts), !json);
      const probeStatus: Status = p.pathMtu === null || p.blackhole ? 'failed' : 'ok';
      if (!a.auto) {
        const s = probeSummary(p);
        if (json) printJson({ ...report({ status: probeStatus, summary: plain(s.verdict), evidence: s.evidence, next: s.next }), ...p });
        else printHuman(s.verdict, s.evidence, s.next);
        return probeStatus === 'ok' ? 0 : 1;
      }
      // --auto: set the outgoing (or given) interface to the path MTU.
      const iface = (a.interface as string | undefined) ?? p.interface;
      let change: MtuChange | null = null;
      let status: Status;
      let message: string;
      if (p.pathMtu === null) {
        status = 'failed';
        message = `cannot lower the MTU: ${p.error ?? 'path MTU unknown'}`;
      } else if (!iface) {
        status = 'failed';
        message = 'cannot tell which interface carries traffic to the host; give --interface NAME';
      } else if (p.interfaceMtu !== null && iface === p.interface && p.pathMtu >= Math.min(p.interfaceMtu, MAX_IP_PACKET)) {
        status = 'ok';
        message = `nothing to lower: the path carries the full interface MTU ${p.interfaceMtu}${p.interfaceMtu > MAX_IP_PACKET ? ` (the largest IP packet, ${MAX_IP_PACKET})` : ''}`;
      } else {
        change = await setInterfaceMtu({ interface: iface, mtu: p.pathMtu, origin: 'found', dryRun, temporary: a.temporary as boolean, journalDir: jdir, backupDir });
        status = change.status;
        message = changeLines(change).verdict;
      }
      const s = probeSummary(p);
      if (json) {
        const c = change ? changeLines(change) : null;
        printJson({
          ...report({ status, summary: c ? c.summary : plain(message), changes: change ? mtuChanges(change) : [], evidence: [plain(s.verdict), ...s.evidence, ...(c?.evidence ?? [])], next: c?.next ?? [], notes: change?.notes ?? [] }),
          ...p,
          change,
          message,
        });
      } else {
        printHuman(message, [s.verdict, ...s.evidence, ...(change ? changeLines(change).evidence : [])]);
      }
      return status === 'failed' ? 1 : 0;
    }

    const c = await setInterfaceMtu({
      interface: a.interface as string,
      mtu: validateMtu(a.mtu as string),
      dryRun,
      temporary: a.temporary as boolean,
      journalDir: jdir,
      backupDir,
    });
    if (json) {
      const l = changeLines(c);
      printJson({ ...report({ status: c.status, summary: l.summary, changes: mtuChanges(c), evidence: l.evidence, next: l.next, notes: c.notes }), ...c });
    } else {
      const l = changeLines(c);
      printHuman(l.verdict, l.evidence);
    }
    return c.status === 'failed' ? 1 : 0;
  } catch (e) {
    return fail(e);
  }
}

// ------------------------------------------------------------------ internals

/** The local undo command for an MTU change (Linux: ip link, macOS: ifconfig). */
function unixMtuArgv(platform: NodeJS.Platform, iface: string, mtu: number, absolute = false): string[] {
  if (platform === 'darwin') return [absolute ? systemProgram('ifconfig') : 'ifconfig', iface, 'mtu', String(mtu)];
  return [absolute ? systemProgram('ip') : 'ip', 'link', 'set', 'dev', iface, 'mtu', String(mtu)];
}


function notFound(iface: string, available: string[]): UsageError {
  return new UsageError(
    `interface ${JSON.stringify(iface)} does not exist on this machine`,
    available.length ? `available: ${available.join(', ')}` : undefined,
  );
}

function platformNotes(platform: NodeJS.Platform, mtu: number, temporary: boolean): string[] {
  const notes: string[] = [];
  if (platform === 'linux') {
    notes.push('Linux: the change lasts until the interface is reset (reboot, VPN reconnect); to keep it, set the MTU in the VPN or NetworkManager profile (e.g. MTU = N in a wg-quick config, or `nmcli connection modify NAME ethernet.mtu N`)');
  } else if (platform === 'darwin') {
    notes.push('macOS: the change lasts until the interface is reset; to keep it use `networksetup -setMTU SERVICE N` or the VPN client setting');
  } else if (platform === 'win32') {
    notes.push(temporary ? 'Windows: store=active, so it reverts at the next reboot' : 'Windows: store=persistent, so it survives reboots; some VPN clients reset it when they reconnect');
  }
  if (mtu < 1280) notes.push('an MTU below 1280 disables IPv6 on this interface');
  return notes;
}

interface WindowsMtuResult {
  [k: string]: unknown;
  status: Status;
  reason?: string;
  error?: string;
  available?: string[];
  before?: number;
  after?: number;
  backup?: string | null;
  store?: string;
}

async function setWindowsMtu(o: SetMtuOptions, notes: string[]): Promise<MtuChange> {
  const target: Target = { kind: 'local' };
  const script = mtuScript({ interface: o.interface, mtu: o.mtu, origin: o.origin, temporary: o.temporary, dryRun: o.dryRun, backupDir: o.backupDir });
  // runStep: an intent entry in the journal before the script runs, its id the script's RecordTag,
  // so a run killed half-way is found by `undo --reconcile --target local` from the record.
  const ctx: StepContext = { target, dryRun: !!o.dryRun, ...(o.journalDir ? { journal: o.journalDir } : {}), ...(o.run ? { run: o.run } : {}) };
  const result = await runStep<WindowsMtuResult>(ctx, script);
  const base = { interface: o.interface, before: result.before ?? null, after: result.after ?? null, mtu: o.mtu, platform: 'win32' as const, backup: result.backup ?? null, notes };
  if (result.status !== 'changed') {
    // The step returned without a change to journal: its intent is settled (a throw below, or a
    // journal that cannot be written, leaves it open for --reconcile, as the server steps do).
    await settleIntent(ctx, []);
    if (result.reason === 'no-such-interface') throw notFound(o.interface, result.available ?? []);
    return { ...base, status: result.status, journal: null, undo: null, ...(result.error ? { error: result.error } : {}) };
  }
  const change = windowsMtuChange(o, result, describeTarget(target));
  const rec = ctx.intent?.record;
  const entry = await record({ script: SCRIPT, target: 'client', ...change, ...(rec ? { targetRecord: rec } : {}) }, o.journalDir);
  await settleIntent(ctx, [entry.id]);
  return { ...base, status: 'changed', journal: entry.id, undo: change.undo };
}

function probeSummary(p: PmtuResult): { verdict: string; evidence: string[]; next: string[] } {
  const evidence = [
    `outgoing interface: ${p.interface ?? 'unknown'}${p.interfaceMtu ? `, MTU ${p.interfaceMtu}` : ''}`,
    `${p.probes} probes in ${(p.elapsedMs / 1000).toFixed(1)} s between ${p.floor} and ${p.ceiling}: ${p.steps.map((s) => `${s.mtu}${s.answer === 'reply' ? '✓' : s.answer === 'too-big' ? `✗${s.hint ? `(${s.hint})` : ''}` : s.answer === 'silent' ? '·' : '!'}`).join(' ')}`,
  ];
  const next: string[] = [];
  if (p.pathMtu === null) return { verdict: chalk.red(`Path MTU to ${p.host} unknown: ${p.error ?? 'no answer'}`), evidence, next };
  const v = `${p.address === p.host ? p.host : `${p.host} (${p.address})`}`;
  if (p.blackhole) {
    if (p.interface) next.push(`npx tsx scripts/lower-mtu.ts --interface ${p.interface} --mtu ${p.pathMtu}`, `npx tsx scripts/lower-mtu.ts --auto --probe ${p.host}`);
    return {
      verdict: chalk.red(`Path MTU black hole: packets above ${p.pathMtu} bytes to ${v} vanish without an ICMP "fragmentation needed"`),
      evidence: [...evidence, `the interface sends up to ${p.ceiling}: large TLS/RDP segments will stall (error 0x904)`],
      next,
    };
  }
  if (p.pathMtu < p.ceiling) {
    return {
      verdict: chalk.green(`Path MTU to ${v} is ${p.pathMtu}; routers report it, so TCP adapts (no black hole)`),
      evidence: [...evidence, `lowering the interface MTU to ${p.pathMtu} is optional`],
      next,
    };
  }
  return { verdict: chalk.green(`Path MTU to ${v} is ${p.pathMtu}: the full interface MTU gets through`), evidence, next };
}

function changeLines(c: MtuChange): { verdict: string; summary: string; evidence: string[]; next: string[] } {
  const what = `MTU of ${c.interface}`;
  const summary =
    c.status === 'ok' ? `${what} is already ${c.mtu}`
    : c.status === 'would-change' ? `would set ${what} from ${c.before} to ${c.mtu} (dry run, nothing changed)`
    : c.status === 'changed' ? `${what} ${c.before} -> ${c.after}`
    : `${what}: ${(c.error ?? 'failed').replace(/[\r\n]+/g, ' ')}`;
  const evidence = [...c.notes];
  if (c.journal) evidence.push(`journal: ${c.journal} (undo: npx tsx scripts/lower-mtu.ts --revert)`);
  if (c.backup) evidence.push(`backup: ${c.backup}`);
  const next = c.journal ? [`npx tsx scripts/lower-mtu.ts --revert --interface ${shellWord(c.interface)}`] : [];
  return { verdict: `${statusWord(c.status)}: ${summary}`, summary, evidence, next };
}

/** The step contract's changes for one MTU change (or, in a dry run, the one it would make). */
function mtuChanges(c: MtuChange): ReportChange[] {
  if (c.status === 'would-change') return [{ summary: `MTU of ${c.interface}: ${c.before} -> ${c.mtu}`, interface: c.interface, before: c.before, after: c.mtu }];
  if (c.after === c.before || c.after === null) return [];
  return [{ summary: `MTU of ${c.interface}: ${c.before} -> ${c.after}`, interface: c.interface, before: c.before, after: c.after, journal: c.journal }];
}

/** A human line without its colour, for the JSON document. */
const plain = (s: string) => stripVTControlCharacters(s);

if (isMain(import.meta.url)) await runCli(main);
