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
// When to use it: after a fix made things worse, or to end a temporary change early.
// Safety: without --yes it asks on a terminal and refuses (exit 2) when stdin is not one.
// --dry-run shows what would be undone; --emit prints the undo scripts to paste; nothing is run.
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { describeTarget, parseTarget } from './lib/channels.ts';
import { RdpfixError, UsageError } from './lib/errors.ts';
import { currentRunId, get, isUndoEntry, journalDir, lastRun, list, markUndone, newest, record, runEntries, UNDO_SCRIPT, type JournalEntry } from './lib/journal.ts';
import { chalk, confirm, printHuman, printJson, statusWord, withSpinner, type Status } from './lib/output.ts';
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

export const execArgv: Exec = async (argv) => {
  const { $ } = await import('zx');
  const [cmd, ...args] = argv as [string, ...string[]];
  const p = await $({ nothrow: true, quiet: true, timeout: 120_000 })`${cmd} ${args}`;
  return { code: p.exitCode, stdout: p.stdout, stderr: p.stderr };
};

export interface UndoOptions {
  journal?: string;
  run?: Runner;
  exec?: Exec;
  /** Called before each entry (human progress). */
  onEntry?: (e: JournalEntry) => void;
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

export interface UndoReport {
  status: Status;
  summary: string;
  dryRun: boolean;
  results: UndoOutcome[];
}

// ---------------------------------------------------------------- selection

/** Entries by id, in the order given; unknown ids are a usage error. */
export async function byIds(ids: string[], dir?: string): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  for (const id of ids) {
    if (!/^[A-Za-z0-9-]{1,120}$/.test(id)) throw new UsageError(`invalid journal id ${JSON.stringify(id)}`);
    const e = await get(id, dir);
    if (!e) throw new UsageError(`no journal entry ${JSON.stringify(id)} in ${journalDir(dir)}`, 'list them with: npx tsx scripts/undo.ts --list');
    out.push(e);
  }
  return out;
}

/** The newest run (optionally on one target), not yet undone, newest first. */
export async function lastRunFor(target: string | undefined, dir?: string): Promise<JournalEntry[]> {
  if (!target) return lastRun(dir);
  const mine = (await list(dir)).filter((e) => !isUndoEntry(e) && e.target === target);
  const last = mine.at(-1);
  return last ? mine.filter((e) => e.runId === last.runId && !e.undone).reverse() : [];
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
  const u = e.undo;
  try {
    if (u.kind === 'none') {
      return { ...base, status: 'skipped', detail: `cannot be undone automatically: ${u.reason}` };
    }
    if (u.kind === 'powershell') {
      // The same channel the change went through; a journal edited by hand still cannot inject:
      // parseTarget validates it like a --target.
      const target = parseTarget(u.target || e.target);
      const raw = await (o.run ?? channelRunner)(target, u.script);
      const r = resultStatus(raw);
      backup = r.backup;
      if (r.after !== null) after = r.after;
      detail = r.detail;
      status = r.status === 'changed' ? 'changed' : r.status === 'ok' ? 'ok' : 'failed';
      if (status === 'ok' && !detail) detail = 'already as before (nothing to put back)';
    } else {
      if (!Array.isArray(u.argv) || !u.argv.length || !u.argv.every((a) => typeof a === 'string')) throw new UsageError(`journal entry ${e.id} has no valid undo command`);
      const exec = o.exec ?? execArgv;
      const r = await exec(u.argv);
      if (r.code !== 0) {
        status = 'failed';
        detail = `${u.argv.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`;
      } else if (u.verify?.length) {
        const v = await exec(u.verify);
        status = v.code === 0 ? 'changed' : 'failed';
        detail = v.code === 0 ? `ran ${u.argv.join(' ')}; verified` : `ran ${u.argv.join(' ')}, but the check ${u.verify.join(' ')} exited ${v.code}`;
      } else {
        status = 'changed';
        detail = `ran ${u.argv.join(' ')}`;
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
  const status: Status = failed ? 'failed' : n('changed') ? 'changed' : 'ok';
  const summary = !results.length
    ? 'nothing to undo'
    : failed
      ? `undo failed at ${results.find((r) => r.status === 'failed')!.id}; ${n('changed')} undone before it, ${n('skipped')} not attempted or not undoable`
      : `${n('changed')} change(s) undone${n('ok') ? `, ${n('ok')} already as before` : ''}${n('skipped') ? `, ${n('skipped')} cannot be undone automatically` : ''}`;
  return { status, summary, dryRun: false, results };
}

// ---------------------------------------------------------------- CLI

function entryLine(e: JournalEntry): string {
  const state = e.undone ? chalk.dim(` [undone ${e.undone.status}]`) : '';
  return `${e.id}  ${chalk.dim(e.time.slice(0, 19).replace('T', ' '))}  ${e.script.padEnd(17)} ${e.target.padEnd(22)} ${e.summary}${state}`;
}

export async function main(argv: string[], o: Omit<UndoOptions, 'journal' | 'onEntry'> = {}): Promise<number> {
  const args = await makeCli(argv, 'undo')
    .command('$0 [ids..]', 'undo journal entries', (y) => y.positional('ids', { type: 'string', array: true, describe: 'journal entry ids to undo (newest first)' }))
    .usage('$0 --list [--target T]\n$0 ID... [--yes]\n$0 --last [N] [--yes]\n$0 --run RUN_ID [--yes]\n\nUndo what rdpfix changed, newest first, through the same channel each change was made on.')
    .option('list', { type: 'boolean', default: false, describe: 'list journal entries (newest first)' })
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
    .epilog('Each undo is verified by the undo itself and journaled; entries that cannot be undone say why.')
    .parseAsync();
  const dir = args.journal !== undefined ? validateLocalPath(args.journal, '--journal') : undefined;
  const target = args.target === undefined ? undefined : args.target === 'client' ? 'client' : describeTarget(parseTarget(args.target));
  const ids = (args.ids ?? []) as string[];
  const modes = [args.list, args.last !== undefined, args.run !== undefined, ids.length > 0].filter(Boolean).length;
  if (modes !== 1) throw new UsageError('choose one of: --list, --last [N], --run RUN_ID, or entry ids');
  const forTarget = (e: JournalEntry) => !target || e.target === target;

  if (args.list) {
    const all = (await list(dir)).filter(forTarget).reverse();
    const shown = args.all ? all : all.slice(0, 50);
    if (args.json) printJson({ status: 'ok', journal: journalDir(dir), entries: shown });
    else {
      printHuman(`${all.length} journal entr${all.length === 1 ? 'y' : 'ies'}${target ? ` for ${target}` : ''} in ${journalDir(dir)}${shown.length < all.length ? ` (newest ${shown.length}; --all for every one)` : ''}`, shown.map(entryLine));
    }
    return 0;
  }

  let entries: JournalEntry[];
  if (ids.length) entries = (await byIds(ids, dir)).filter(forTarget);
  else if (args.run !== undefined) {
    if (!/^[A-Za-z0-9-]{1,80}$/.test(args.run)) throw new UsageError(`invalid run id ${JSON.stringify(args.run)}`);
    entries = (await runEntries(args.run, dir)).filter(forTarget);
  } else if (args.last === '') entries = await lastRunFor(target, dir);
  else entries = await newest(validateInt(args.last!, '--last', 1, 1000), dir, forTarget);

  if (args.emit) {
    const parts = entries.map((e) =>
      e.undo.kind === 'powershell'
        ? `# undo of ${e.id} (${e.script} on ${e.target}): ${e.summary.replace(/[\r\n]+/g, ' ')}\n${e.undo.script}`
        : e.undo.kind === 'command'
          ? `# undo of ${e.id} runs on the machine that made it (not PowerShell): ${JSON.stringify(e.undo.argv)}\n`
          : `# ${e.id} cannot be undone automatically: ${e.undo.reason.replace(/[\r\n]+/g, ' ')}\n`,
    );
    process.stdout.write(parts.join('\n'));
    return 0;
  }

  if (args['dry-run']) {
    const report: UndoReport = {
      status: entries.length ? 'would-change' : 'ok',
      summary: entries.length ? `would undo ${entries.length} change(s), newest first` : 'nothing to undo',
      dryRun: true,
      results: entries.map((e) => ({ id: e.id, script: e.script, target: e.target, summary: e.summary, status: e.undo.kind === 'none' ? 'skipped' : 'would-change', detail: e.undo.kind === 'none' ? e.undo.reason : e.undo.kind === 'powershell' ? `PowerShell on ${e.undo.target}` : `local: ${e.undo.argv.join(' ')}` })),
    };
    if (args.json) printJson(report);
    else printHuman(`${statusWord(report.status)}  ${report.summary}`, report.results.map((r) => `${r.id}  ${r.summary}  ${chalk.dim(r.detail)}`));
    return 0;
  }

  if (!entries.length) {
    const report: UndoReport = { status: 'ok', summary: 'nothing to undo', dryRun: false, results: [] };
    if (args.json) printJson(report);
    else printHuman(`${statusWord('ok')}  nothing to undo`);
    return 0;
  }
  if (!args.yes) {
    if (args.json) throw new UsageError('with --json there is no prompt: pass --yes (or --dry-run)');
    process.stderr.write(`${entries.map(entryLine).join('\n')}\n`);
    if (!(await confirm(`Undo ${entries.length} change(s) above, newest first?`, 'undo changes state and needs confirmation: pass --yes (or --dry-run to see what it would do)'))) return 1;
  }
  const report = await withSpinner(`undoing ${entries.length} change(s)`, () => undoEntries(entries, { ...o, ...(dir ? { journal: dir } : {}) }), !args.json);
  if (args.json) printJson(report);
  else {
    printHuman(
      `${statusWord(report.status)}  ${report.summary}`,
      report.results.map((r) => `${statusWord(r.status)} ${r.id}  ${r.summary}${r.detail ? chalk.dim(`  (${r.detail})`) : ''}`),
    );
  }
  return report.status === 'failed' ? 1 : 0;
}

if (isMain(import.meta.url)) await runCli(main);
