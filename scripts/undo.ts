// undo: list the change journal and undo changes — one entry, the newest N, everything the most
// recent script or recipe run changed (`--last`), or one run by id (`--run`) — newest first.
//
// What it does: each journal entry (lib/journal.ts) carries its own undo: a generated PowerShell
// script for the same target (run through the same channel the change went through, e.g.
// winrm://vm1 or azure://SUB/RG/VM; the script reads back what it restored and reports 'changed',
// 'ok' when already restored, or 'failed'), or a local command run as an argv array (e.g. the MTU a
// client-side step changed: `ip link set dev X mtu 1500`; exit 0, and an optional verify command,
// mean undone). Each undone entry is marked with the outcome, and the undo itself is journaled
// (script 'undo'), so `undo --last` never undoes an undo. It stops at the first failure: undoing
// older changes under a newer one that could not be undone would leave a mix nobody tested.
// A journal file is data, not a program: damaged or foreign files are listed as damaged and
// skipped, and an entry's undo runs only if the journal's allow-list grants it (lib/journal.ts
// undoPermit): a command only in the MTU shapes lower-mtu records, a PowerShell script only when
// the entry carries this rdpfix's seal. A refused undo runs nothing and fails the undo.
// Selecting nothing (an empty journal, an unknown run) is exit 1 with the reason, never a silent 0.
// When to use it: after a fix made things worse, or to end a temporary change early.
// Safety: without --yes it asks on a terminal and refuses (exit 2) when stdin is not one.
// --dry-run shows what would be undone; --emit prints the undo scripts to paste; nothing is run.
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { describeTarget, parseTarget } from './lib/channels.ts';
import { RdpfixError, UsageError } from './lib/errors.ts';
import { currentRunId, isUndoEntry, journalDir, markUndone, readJournal, record, UNDO_SCRIPT, undoPermit, type DamagedFile, type JournalEntry } from './lib/journal.ts';
import { chalk, confirm, printHuman, printJson, statusWord, withSpinner, type Status } from './lib/output.ts';
import { execArgv as execProgram, parseIfconfigMtu, parseIpLinkMtu, systemProgram } from './lib/route.ts';
import { channelRunner, type Runner } from './lib/server-step.ts';
import { validateInt, validateLocalPath } from './lib/validate.ts';

// ---------------------------------------------------------------- types

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a local argv command (never through a shell). Tests pass a fake. */
export type Exec = (argv: string[]) => Promise<CommandResult>;

/** The real one: no shell, C locale; a bare program name is looked up in sbin too (where `ip` is). */
export const execArgv: Exec = async (argv) => {
  const [cmd, ...args] = argv as [string, ...string[]];
  const r = await execProgram([cmd.includes('/') ? cmd : systemProgram(cmd), ...args], 120_000);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr || (r.error ? `${cmd}: ${r.error}` : '') };
};

export interface UndoOptions {
  journal?: string;
  run?: Runner;
  exec?: Exec;
  /** Called before each entry (human progress). */
  onEntry?: (e: JournalEntry) => void;
  /** The platform command undos are checked against (default: this machine's). */
  platform?: NodeJS.Platform;
}

export interface UndoOutcome {
  id: string;
  script: string;
  target: string;
  summary: string;
  status: Status;
  detail: string;
  /** Id of the journal entry recording this undo. */
  undoEntry?: string;
}

/** 'nothing-to-undo': the selection was valid and selected nothing (exit 1, nothing run). */
export type UndoStatus = Status | 'nothing-to-undo';

export interface UndoReport {
  status: UndoStatus;
  summary: string;
  dryRun: boolean;
  results: UndoOutcome[];
  /** Exact commands to run next (retry, list); prose goes to notes. */
  next: string[];
  notes: string[];
  /** Journal files that are not valid entries: skipped, named with why. */
  damaged: DamagedFile[];
}

// ---------------------------------------------------------------- selection

/** Entries by id, in the order given; an unknown id is a usage error, a damaged one says why. */
export async function byIds(ids: string[], dir?: string): Promise<JournalEntry[]> {
  const { entries, damaged } = await readJournal(dir);
  const out: JournalEntry[] = [];
  for (const id of ids) {
    if (!/^[A-Za-z0-9-]{1,120}$/.test(id)) throw new UsageError(`invalid journal id ${JSON.stringify(id)}`);
    const e = entries.find((x) => x.id === id);
    if (!e) {
      const bad = damaged.find((d) => d.file.endsWith(`/${id}.json`) || d.file.endsWith(`\\${id}.json`));
      if (bad) throw new UsageError(`journal entry ${id} is damaged and cannot be undone: ${bad.why}`, `the file: ${bad.file}`);
      throw new UsageError(`no journal entry ${JSON.stringify(id)} in ${journalDir(dir)}`, 'list them with: npx tsx scripts/undo.ts --list');
    }
    out.push(e);
  }
  return out;
}

/** The newest run (optionally on one target), not yet undone, newest first. */
export function lastRunFor(all: JournalEntry[], target: string | undefined): JournalEntry[] {
  const mine = all.filter((e) => !isUndoEntry(e) && (!target || e.target === target));
  const last = mine.at(-1);
  return last ? mine.filter((e) => e.runId === last.runId && !e.undone).reverse() : [];
}

/** Read back the MTU of a Linux or macOS interface through `exec` (null when it cannot be read). */
async function readBackMtu(exec: Exec, platform: 'linux' | 'darwin', iface: string, verify?: string[]): Promise<{ mtu: number | null; argv: string[] }> {
  const argv = verify ?? (platform === 'linux' ? ['ip', 'link', 'show', 'dev', iface] : ['ifconfig', iface]);
  const r = await exec(argv);
  const mtu = r.code === 0 ? (platform === 'linux' ? parseIpLinkMtu(r.stdout) : parseIfconfigMtu(r.stdout)) : null;
  return { mtu, argv };
}

// ---------------------------------------------------------------- undo

function resultStatus(raw: unknown): { status: string; detail: string; backup: string | null; after: unknown } {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const problems = Array.isArray(r.problems) ? (r.problems as unknown[]).map(String) : typeof r.problems === 'string' ? [r.problems] : [];
  const skipped = Array.isArray(r.skipped) ? (r.skipped as unknown[]).map(String) : typeof r.skipped === 'string' ? [r.skipped] : [];
  const detail = [typeof r.error === 'string' ? r.error : '', ...problems, ...skipped.map((s) => `kept: ${s}`)].filter(Boolean).join('; ');
  return { status: typeof r.status === 'string' ? r.status : 'failed', detail, backup: typeof r.backup === 'string' ? r.backup : null, after: r.after ?? null };
}

/** Undo one entry (does not check `undone`; the caller selects). */
export async function undoEntry(e: JournalEntry, o: UndoOptions = {}): Promise<UndoOutcome> {
  const base = { id: e.id, script: e.script, target: e.target, summary: e.summary };
  let status: Status;
  let detail = '';
  let backup: string | null = null;
  let after: unknown = e.before;
  const u = undoPermit(e);
  if (!u.ok) return { ...base, status: 'failed', detail: `refused, nothing run: ${u.why}` };
  if (u.kind === 'command' && u.platform !== (o.platform ?? process.platform)) {
    return { ...base, status: 'failed', detail: `refused, nothing run: the undo is a ${u.platform} command and this machine runs ${o.platform ?? process.platform}` };
  }
  try {
    if (u.kind === 'none') {
      return { ...base, status: 'skipped', detail: `cannot be undone automatically: ${u.reason}` };
    }
    if (u.kind === 'powershell') {
      // The same channel the change went through, validated like a --target.
      let target;
      try {
        target = parseTarget(u.target);
      } catch (err) {
        return { ...base, status: 'failed', detail: `refused, nothing run: the recorded target is not valid: ${(err as Error).message}` };
      }
      const raw = await (o.run ?? channelRunner)(target, u.script);
      const r = resultStatus(raw);
      backup = r.backup;
      if (r.after !== null) after = r.after;
      detail = r.detail;
      status = r.status === 'changed' ? 'changed' : r.status === 'ok' ? 'ok' : 'failed';
      if (status === 'ok' && !detail) detail = 'already as before (nothing to put back)';
    } else {
      const exec = o.exec ?? execArgv;
      const r = await exec(u.argv);
      if (r.code !== 0) {
        status = 'failed';
        detail = `${u.argv.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`;
      } else if (u.platform === 'win32') {
        status = 'changed';
        detail = `ran ${u.argv.join(' ')}`;
      } else {
        // The exit code of ip/ifconfig is not the proof: the MTU read back is.
        const back = await readBackMtu(exec, u.platform, u.iface, u.verify);
        status = back.mtu === u.mtu ? 'changed' : 'failed';
        after = { interface: u.iface, mtu: back.mtu };
        detail = back.mtu === u.mtu ? `ran ${u.argv.join(' ')}; ${back.argv.join(' ')} reads MTU ${back.mtu}` : `ran ${u.argv.join(' ')}, but ${back.argv.join(' ')} reads MTU ${back.mtu ?? '(unreadable)'}, not ${u.mtu}`;
      }
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    status = 'failed';
    detail = err instanceof RdpfixError && err.hint ? `${err.message} (${err.hint})` : (err as Error).message;
  }
  const out: UndoOutcome = { ...base, status, detail };
  if (status === 'changed' || status === 'ok') {
    await markUndone(e.id, { time: new Date().toISOString(), status, ...(detail ? { detail } : {}) }, o.journal);
  }
  if (status !== 'ok') {
    // The undo is itself a change (or a failed attempt at one): journal it, never to be undone
    // by `undo --last`.
    const rec = await record(
      {
        script: UNDO_SCRIPT,
        target: e.target,
        summary: `undo of ${e.id} (${e.script}): ${status}${detail ? ` — ${detail.slice(0, 200)}` : ''}`,
        before: e.after,
        after,
        backup,
        undo: { kind: 'none', reason: `to redo, run ${e.script} again` },
      },
      o.journal,
    );
    out.undoEntry = rec.id;
  }
  return out;
}

/** Undo entries newest first; stops at the first failure (the rest are reported, not run). */
export async function undoEntries(entries: JournalEntry[], o: UndoOptions = {}): Promise<UndoReport> {
  currentRunId();
  const results: UndoOutcome[] = [];
  let failed = false;
  for (const e of entries) {
    if (failed) {
      results.push({ id: e.id, script: e.script, target: e.target, summary: e.summary, status: 'skipped', detail: 'not attempted: a newer undo failed first' });
      continue;
    }
    if (e.undone) {
      results.push({ id: e.id, script: e.script, target: e.target, summary: e.summary, status: 'ok', detail: `already undone (${e.undone.time}, ${e.undone.status})` });
      continue;
    }
    o.onEntry?.(e);
    const r = await undoEntry(e, o);
    results.push(r);
    if (r.status === 'failed') failed = true;
  }
  const n = (s: Status) => results.filter((r) => r.status === s).length;
  const status: UndoStatus = !results.length ? 'nothing-to-undo' : failed ? 'failed' : n('changed') ? 'changed' : 'ok';
  const firstFailed = results.find((r) => r.status === 'failed');
  const summary = !results.length
    ? 'nothing to undo'
    : firstFailed
      ? `undo ${firstFailed.detail.startsWith('refused') ? 'refused' : 'failed'} at ${firstFailed.id}; ${n('changed')} undone before it, ${n('skipped')} not attempted or not undoable`
      : `${n('changed')} change(s) undone${n('ok') ? `, ${n('ok')} already as before` : ''}${n('skipped') ? `, ${n('skipped')} cannot be undone automatically` : ''}`;
  const journalFlag = o.journal ? ` --journal ${shellWord(o.journal)}` : '';
  const next = firstFailed && !firstFailed.detail.startsWith('refused') ? [`npx tsx scripts/undo.ts ${firstFailed.id} --yes${journalFlag}`] : [];
  const notes = firstFailed ? [`${firstFailed.id}: ${firstFailed.detail}`] : [];
  return { status, summary, dryRun: false, results, next, notes, damaged: [] };
}

/** A path as one word for a printed shell command (single quotes unless it is plain). */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------- CLI

function entryLine(e: JournalEntry): string {
  const permit = e.undone ? null : undoPermit(e);
  const state = e.undone ? chalk.dim(` [undone ${e.undone.status}]`) : permit && !permit.ok ? chalk.red(` [undo refused: ${permit.why.split(':')[0]}]`) : '';
  return `${e.id}  ${chalk.dim(e.time.slice(0, 19).replace('T', ' '))}  ${e.script.padEnd(17)} ${e.target.padEnd(22)} ${e.summary.replace(/[\r\n]+/g, ' ')}${state}`;
}

const damagedLine = (d: DamagedFile) => `${chalk.red('damaged')} ${d.file}: ${d.why} (skipped)`;

/** One line of a pasted script: what an undo cannot do, as a comment that cannot break out of it. */
const comment = (s: string) => `# ${s.replace(/[\r\n]+/g, ' ')}`;

export async function main(argv: string[], o: Omit<UndoOptions, 'journal' | 'onEntry'> = {}): Promise<number> {
  const args = await makeCli(argv, 'undo')
    .command('$0 [ids..]', 'undo journal entries', (y) => y.positional('ids', { type: 'string', array: true, describe: 'journal entry ids to undo (newest first)' }))
    .usage('$0 --list [--target T]\n$0 ID... [--yes]\n$0 --last [N] [--yes]\n$0 --run RUN_ID [--yes]\n\nUndo what rdpfix changed, newest first, through the same channel each change was made on.')
    .option('list', { type: 'boolean', default: false, describe: 'list journal entries (newest first) and damaged journal files' })
    .option('last', { type: 'string', describe: 'undo everything the most recent script or recipe run changed; with N, the newest N changes' })
    .option('run', { type: 'string', describe: 'undo every change of one run (the id a recipe run prints)' })
    .option('target', { type: 'string', describe: 'only entries for this target (local, winrm://HOST, ssh://USER@HOST, azure://SUB/RG/VM, client)' })
    .option('all', { type: 'boolean', default: false, describe: 'with --list: every entry, not just the newest 50' })
    .option('yes', { type: 'boolean', default: false, describe: 'do not ask for confirmation' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'show what would be undone; run nothing' })
    .option('emit', { type: 'boolean', default: false, describe: 'print the undo scripts (to paste on the server); run nothing' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object with a top-level "status"' })
    .option('journal', { type: 'string', describe: 'journal folder (default ~/.rdpfix/journal, or RDPFIX_JOURNAL)' })
    .example('$0 --list --target azure://SUB/rg-web/web-01', 'what rdpfix changed on that VM')
    .example('$0 --last --yes', 'undo everything the last script or recipe run changed')
    .example('$0 20250101-120000123-toggle-nla-a1b2c3 --yes', 'undo one change')
    .example('$0 --last --emit > undo.ps1', 'the undo scripts, to paste into the Run command blade')
    .epilog(
      'Each undo is verified by the undo itself and journaled; entries that cannot be undone say why.\n' +
        'Undo runs only what the journal allows for the entry: the MTU commands lower-mtu records, and PowerShell ' +
        'undos sealed by this rdpfix for this user (key ~/.rdpfix/journal.key). Damaged journal files are named and skipped.\n' +
        'Exit codes: 0 undone (or already as before), 1 nothing to undo, an undo failed or was refused, 2 bad usage.',
    )
    .parseAsync();
  const dir = args.journal !== undefined ? validateLocalPath(args.journal, '--journal') : undefined;
  const target = args.target === undefined ? undefined : args.target === 'client' ? 'client' : describeTarget(parseTarget(args.target));
  const ids = (args.ids ?? []) as string[];
  const modes = [args.list, args.last !== undefined, args.run !== undefined, ids.length > 0].filter(Boolean).length;
  if (modes !== 1) throw new UsageError('choose one of: --list, --last [N], --run RUN_ID, or entry ids');
  if (args.run !== undefined && !/^[A-Za-z0-9-]{1,80}$/.test(args.run)) throw new UsageError(`invalid run id ${JSON.stringify(args.run)}`);
  const count = args.last !== undefined && args.last !== '' ? validateInt(args.last, '--last', 1, 1000) : undefined;
  const forTarget = (e: JournalEntry) => !target || e.target === target;
  const jdir = journalDir(dir);
  const { entries: all, damaged } = await readJournal(dir);
  const damagedNotes = damaged.length
    ? [`${damaged.length} damaged journal file(s) were skipped; if one belonged to what you selected, its change is not undone: ${damaged.map((d) => `${d.file} (${d.why})`).join('; ')}`]
    : [];

  if (args.list) {
    const mine = all.filter(forTarget).reverse();
    const shown = args.all ? mine : mine.slice(0, 50);
    if (args.json) printJson({ status: 'ok', journal: jdir, entries: shown, damaged });
    else {
      printHuman(
        `${mine.length} journal entr${mine.length === 1 ? 'y' : 'ies'}${target ? ` for ${target}` : ''} in ${jdir}${shown.length < mine.length ? ` (newest ${shown.length}; --all for every one)` : ''}${damaged.length ? `, ${damaged.length} damaged file(s)` : ''}`,
        [...shown.map(entryLine), ...damaged.map(damagedLine)],
      );
    }
    return 0;
  }

  let entries: JournalEntry[];
  let selector: string;
  if (ids.length) {
    entries = (await byIds(ids, dir)).filter(forTarget);
    selector = `${ids.length === 1 ? 'the entry' : 'none of the entries'} ${ids.join(', ')} ${ids.length === 1 ? 'is not' : 'is'} on ${target}`;
  } else if (args.run !== undefined) {
    entries = all.filter((e) => e.runId === args.run && !e.undone && !isUndoEntry(e) && forTarget(e)).reverse();
    const known = all.some((e) => e.runId === args.run);
    selector = known ? `run ${args.run} has no change${target ? ` on ${target}` : ''} that is not undone yet` : `no change of run ${args.run} is in the journal`;
  } else if (count === undefined) {
    entries = lastRunFor(all, target);
    selector = `no script or recipe run${target ? ` on ${target}` : ''} with a change that is not undone yet`;
  } else {
    entries = all.filter((e) => !e.undone && !isUndoEntry(e) && forTarget(e)).reverse().slice(0, count);
    selector = `no change${target ? ` on ${target}` : ''} that is not undone yet`;
  }

  if (!entries.length) {
    // A valid request that selects nothing: say so, exit 1 (a cron job or `> undo.ps1` must not
    // read it as success), and print nothing a pipe would take for a script.
    const summary = `nothing to undo: ${selector} (journal ${jdir})`;
    const report: UndoReport = { status: 'nothing-to-undo', summary, dryRun: !!args['dry-run'], results: [], next: [`npx tsx scripts/undo.ts --list${dir ? ` --journal ${shellWord(dir)}` : ''}`], notes: damagedNotes, damaged };
    if (args.json) printJson(report);
    else process.stderr.write(`${summary}\n${damagedNotes.map((n) => `  ${n}\n`).join('')}`);
    return 1;
  }
  if (damaged.length && !args.json) process.stderr.write(`${chalk.yellow('warning:')} ${damagedNotes[0]}\n`);

  if (args.emit) {
    const parts: string[] = [];
    const refused: UndoOutcome[] = [];
    const emitted: Array<{ id: string; target: string; script: string }> = [];
    for (const e of entries) {
      const p = undoPermit(e);
      const base = { id: e.id, script: e.script, target: e.target, summary: e.summary };
      if (!p.ok) {
        refused.push({ ...base, status: 'failed', detail: `refused: ${p.why}` });
        parts.push(`${comment(`${e.id} (${e.script} on ${e.target}): not emitted: ${p.why}`)}\n`);
      } else if (p.kind === 'powershell') {
        emitted.push({ id: e.id, target: e.target, script: p.script });
        parts.push(`${comment(`undo of ${e.id} (${e.script} on ${e.target}): ${e.summary}`)}\n${p.script}`);
      } else if (p.kind === 'command') {
        parts.push(`${comment(`undo of ${e.id} runs on the machine that made it (not PowerShell): ${JSON.stringify(p.argv)}`)}\n`);
      } else {
        parts.push(`${comment(`${e.id} cannot be undone automatically: ${p.reason}`)}\n`);
      }
    }
    const header = [
      comment(`rdpfix undo: ${entries.length} journal entr${entries.length === 1 ? 'y' : 'ies'}, newest first, from ${jdir}.`),
      comment('Pasting this does not update that journal: afterwards, run the same undo from the client (each undo'),
      comment("reports 'ok' when the change is already undone) or it will still list these changes as open."),
      '',
    ].join('\n');
    if (args.json) {
      printJson({ status: refused.length ? 'failed' : 'ok', summary: `${emitted.length} undo script(s)${refused.length ? `, ${refused.length} refused` : ''}`, scripts: emitted, refused, notes: damagedNotes, damaged });
    } else {
      process.stdout.write(`${header}${parts.join('\n')}`);
      for (const r of refused) process.stderr.write(`${chalk.red('refused')} ${r.id}: ${r.detail}\n`);
    }
    return refused.length ? 1 : 0;
  }

  if (args['dry-run']) {
    const results: UndoOutcome[] = entries.map((e) => {
      const p = undoPermit(e);
      const base = { id: e.id, script: e.script, target: e.target, summary: e.summary };
      if (!p.ok) return { ...base, status: 'failed', detail: `would refuse: ${p.why}` };
      if (p.kind === 'none') return { ...base, status: 'skipped', detail: p.reason };
      return { ...base, status: 'would-change', detail: p.kind === 'powershell' ? `PowerShell on ${p.target}` : `local: ${p.argv.join(' ')}` };
    });
    const refused = results.filter((r) => r.status === 'failed').length;
    const report: UndoReport = {
      status: refused ? 'failed' : 'would-change',
      summary: `would undo ${entries.length - refused} change(s), newest first${refused ? `; ${refused} would be refused` : ''}`,
      dryRun: true,
      results,
      next: [],
      notes: damagedNotes,
      damaged,
    };
    if (args.json) printJson(report);
    else printHuman(`${statusWord(report.status)}  ${report.summary}`, report.results.map((r) => `${r.id}  ${r.summary}  ${chalk.dim(r.detail)}`));
    return refused ? 1 : 0;
  }

  if (!args.yes) {
    if (args.json) throw new UsageError('with --json there is no prompt: pass --yes (or --dry-run)');
    process.stderr.write(`${entries.map(entryLine).join('\n')}\n`);
    if (!(await confirm(`Undo ${entries.length} change(s) above, newest first?`, 'undo changes state and needs confirmation: pass --yes (or --dry-run to see what it would do)'))) return 1;
  }
  const report = await withSpinner(`undoing ${entries.length} change(s)`, () => undoEntries(entries, { ...o, ...(dir ? { journal: dir } : {}) }), !args.json);
  report.damaged = damaged;
  report.notes.push(...damagedNotes);
  if (args.json) printJson(report);
  else {
    printHuman(
      `${statusWord(report.status)}  ${report.summary}`,
      report.results.map((r) => `${statusWord(r.status)} ${r.id}  ${r.summary}${r.detail ? chalk.dim(`  (${r.detail})`) : ''}`),
      report.next,
    );
  }
  return report.status === 'failed' ? 1 : 0;
}

if (isMain(import.meta.url)) await runCli(main);
