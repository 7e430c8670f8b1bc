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
// The undo core (selection, allow-list, running, verifying, marking, journaling) is lib/undo.ts;
// toggle-nla --restore and lower-mtu --revert go through it too. This file is its CLI.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { describeTarget, parseTarget } from './lib/channels.ts';
import { UsageError } from './lib/errors.ts';
import { isIntent, journalDir, openIntents, readJournal, undoPermit, type DamagedFile, type JournalEntry } from './lib/journal.ts';
import { importTargetRecords, reconcileIntents, type ReconcileOutcome } from './lib/reconcile.ts';
import { parseTargetRecord, recordChanges, type ListedRecord, type TargetRecord } from './lib/target-record.ts';
import { chalk, confirm, printHuman, printJson, statusWord, withSpinner } from './lib/output.ts';
import { byIds, lastRunFor, openEntries, outcomeLines, planUndo, shellWord, undoChanges, undoEntries, type UndoOptions, type UndoOutcome, type UndoReport } from './lib/undo.ts';
import { validateInt, validateLocalPath } from './lib/validate.ts';

// ---------------------------------------------------------------- CLI

function entryLine(e: JournalEntry): string {
  const when = `${e.id}  ${chalk.dim(e.time.slice(0, 19).replace('T', ' '))}  ${e.script.padEnd(17)} ${e.target.padEnd(22)}`;
  if (isIntent(e)) {
    return e.resolved
      ? chalk.dim(`${when} started: ${e.resolved.outcome}${e.resolved.entries.length ? ` (${e.resolved.entries.length} change(s))` : ''}`)
      : `${when} ${chalk.yellow('outcome unknown')}: the step did not return; run undo --reconcile${e.target === 'client' ? '' : ` --target ${e.target}`}`;
  }
  const permit = e.undone ? null : undoPermit(e);
  const state = e.undone ? chalk.dim(` [undone ${e.undone.status}]`) : permit && !permit.ok ? chalk.red(` [undo refused: ${permit.why.split(':')[0]}]`) : '';
  const backup = e.backup ? chalk.dim(` (backup on the target: ${e.backup})`) : '';
  return `${when} ${e.summary.replace(/[\r\n]+/g, ' ')}${backup}${state}`;
}

function recordLine(r: ListedRecord, known: Set<string>): string {
  const rec = r.record;
  const kb = `${Math.max(1, Math.round(r.size / 1024))} KB`;
  const state = rec.undone ? chalk.dim(`undone ${rec.undone.time.slice(0, 19).replace('T', ' ')}`) : r.running ? chalk.cyan('running') : rec.phase === 'complete' ? String(rec.result.status ?? 'complete') : chalk.yellow('stopped half-way');
  const from = rec.tag ? (known.has(rec.tag) ? 'this journal' : 'another client') : 'pasted / Run Command';
  return `${rec.id}  ${rec.step.padEnd(17)} ${state}  by ${rec.user || '?'} from ${from}  backup ${r.folder} (${kb})`;
}

const reconcileLine = (r: ReconcileOutcome) => `${r.id}  ${r.script} on ${r.target}: ${r.state}${r.detail ? chalk.dim(` (${r.detail})`) : ''}`;

const damagedLine = (d: DamagedFile) => `${chalk.red('damaged')} ${d.file}: ${d.why} (skipped)`;

/** One line of a pasted script: what an undo cannot do, as a comment that cannot break out of it. */
const comment = (s: string) => `# ${s.replace(/[\r\n]+/g, ' ')}`;

const isDirectory = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

export async function main(argv: string[], o: Omit<UndoOptions, 'journal' | 'onEntry'> = {}): Promise<number> {
  const args = await makeCli(argv, 'undo')
    .command('$0 [ids..]', 'undo journal entries', (y) => y.positional('ids', { type: 'string', array: true, describe: 'journal entry ids to undo (newest first)' }))
    .usage('$0 --list [--target T]\n$0 ID... [--yes]\n$0 --last [N] [--yes]\n$0 --run RUN_ID [--yes]\n$0 --reconcile [--target T]\n$0 --target T --from-target [--list | RECORD_ID... | --yes]\n$0 --record-file record.json --emit\n\nUndo what rdpfix changed, newest first, through the same channel each change was made on.')
    .option('list', { type: 'boolean', default: false, describe: 'list journal entries (newest first) and damaged journal files' })
    .option('last', { type: 'string', describe: 'undo everything the most recent script or recipe run changed; with N, the newest N changes' })
    .option('run', { type: 'string', describe: 'undo every change of one run (the id a recipe run prints)' })
    .option('reconcile', { type: 'boolean', default: false, describe: 'find out what steps that did not return (killed, channel dropped) did, from the target\'s records, and journal it' })
    .option('from-target', { type: 'boolean', default: false, describe: 'with --target: list (--list) or undo what the TARGET\'s records hold, whoever made the change and from wherever (ids are record ids)' })
    .option('record-file', { type: 'string', describe: 'with --emit: the undo script of one target record copied off the server (its record.json), for a server you reach only by pasting' })
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
    .example('$0 --reconcile', 'after a killed run or a dropped channel: what changed, from the targets\' records')
    .example('$0 --target winrm://vm1 --from-target --list', 'what rdpfix changed on vm1, from any machine')
    .example('$0 --record-file record.json --emit > undo.ps1', 'undo a pasted change: its record.json copied off the server, the undo to paste back')
    .epilog(
      'Each undo is verified by the undo itself and journaled; entries that cannot be undone say why.\n' +
        'Undo runs only what the journal allows for the entry: the MTU commands lower-mtu records, and PowerShell ' +
        'undos sealed by this rdpfix for this user (key ~/.rdpfix/journal.key). Damaged journal files are named and skipped.\n' +
        'A step that did not return (killed, channel dropped) is listed as "outcome unknown": --reconcile reads what it did from ' +
        'the target\'s record (C:\\ProgramData\\rdpfix\\backup\\<id>\\record.json, written before its first change) and journals it. ' +
        '--from-target lists or undoes what a target\'s records hold, whoever made the change and from wherever.\n' +
        'Exit codes: 0 undone (or already as before; --reconcile: every step resolved), 1 nothing to undo, an undo failed or ' +
        'was refused (--reconcile: an outcome is still unknown), 2 bad usage.',
    )
    .parseAsync();
  const dir = args.journal !== undefined ? validateLocalPath(args.journal, '--journal') : undefined;
  // A journal folder named on the command line that is not there is a typo, not "nothing to undo".
  // Only where the journal is read for what to list or undo: --reconcile, --from-target and
  // --record-file create it or do not use it.
  const readsJournal = !args.reconcile && !args['from-target'] && args['record-file'] === undefined;
  if (dir !== undefined && readsJournal && !isDirectory(dir)) throw new UsageError(`--journal ${JSON.stringify(args.journal)}: ${existsSync(dir) ? 'not a folder' : 'no such folder'} (the default is ~/.rdpfix/journal)`);
  const target = args.target === undefined ? undefined : args.target === 'client' ? 'client' : describeTarget(parseTarget(args.target));
  const ids = (args.ids ?? []) as string[];
  if (args['record-file'] !== undefined) return fromRecordFile(args['record-file'], args, ids);
  if (args['from-target']) return fromTarget(args, ids, dir, o);
  if (args.reconcile) {
    if (args.list || args.last !== undefined || args.run !== undefined || ids.length || args.emit || args['dry-run']) throw new UsageError('--reconcile takes only --target, --journal and --json');
    return reconcileCli(target, dir, !!args.json, o);
  }
  const modes = [args.list, args.last !== undefined, args.run !== undefined, ids.length > 0].filter(Boolean).length;
  if (modes !== 1) throw new UsageError('choose one of: --list, --last [N], --run RUN_ID, entry ids, --reconcile, or --target T --from-target');
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
    const summary = `${mine.length} journal entr${mine.length === 1 ? 'y' : 'ies'}${target ? ` for ${target}` : ''} in ${jdir}${shown.length < mine.length ? ` (newest ${shown.length}; --all for every one)` : ''}${damaged.length ? `, ${damaged.length} damaged file(s)` : ''}`;
    if (args.json) printJson({ status: 'ok', summary, cause: null, changes: [], evidence: [], next: [], notes: damagedNotes, journal: jdir, entries: shown, damaged });
    else printHuman(summary, [...shown.map(entryLine), ...damaged.map(damagedLine)]);
    return 0;
  }

  let entries: JournalEntry[];
  let selector: string;
  if (ids.length) {
    entries = (await byIds(ids, dir)).filter(forTarget);
    selector = `${ids.length === 1 ? 'the entry' : 'none of the entries'} ${ids.join(', ')} ${ids.length === 1 ? 'is not' : 'is'} on ${target}`;
  } else if (args.run !== undefined) {
    entries = openEntries(all, (e) => e.runId === args.run && forTarget(e));
    const known = all.some((e) => e.runId === args.run);
    selector = known ? `run ${args.run} has no change${target ? ` on ${target}` : ''} that is not undone yet` : `no change of run ${args.run} is in the journal`;
  } else if (count === undefined) {
    entries = lastRunFor(all, target);
    selector = `no script or recipe run${target ? ` on ${target}` : ''} with a change that is not undone yet`;
  } else {
    entries = openEntries(all, forTarget).slice(0, count);
    selector = `no change${target ? ` on ${target}` : ''} that is not undone yet`;
  }

  if (!entries.length) {
    // A valid request that selects nothing: say so, exit 1 (a cron job or `> undo.ps1` must not
    // read it as success), and print nothing a pipe would take for a script.
    const summary = `nothing to undo: ${selector} (journal ${jdir})`;
    const report: UndoReport = {
      status: 'nothing-to-undo',
      summary,
      cause: null,
      dryRun: !!args['dry-run'],
      results: [],
      changes: [],
      evidence: [],
      next: [`npx tsx scripts/undo.ts --list${dir ? ` --journal ${shellWord(dir)}` : ''}`],
      notes: damagedNotes,
      damaged,
    };
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
      printJson({
        status: refused.length ? 'failed' : 'ok',
        summary: `${emitted.length} undo script(s)${refused.length ? `, ${refused.length} refused` : ''}`,
        cause: null,
        changes: [],
        evidence: [...emitted.map((x) => `${x.id}: undo script for ${x.target}`), ...outcomeLines(refused)],
        next: [],
        notes: ['pasting these does not update the journal: afterwards, run the same undo from the client (each undo reports ok when the change is already undone)', ...damagedNotes],
        scripts: emitted,
        refused,
        damaged,
      });
    } else {
      process.stdout.write(`${header}${parts.join('\n')}`);
      for (const r of refused) process.stderr.write(`${chalk.red('refused')} ${r.id}: ${r.detail}\n`);
    }
    return refused.length ? 1 : 0;
  }

  if (args['dry-run']) {
    const results = planUndo(entries);
    const refused = results.filter((r) => r.status === 'failed').length;
    const report: UndoReport = {
      status: refused ? 'failed' : 'would-change',
      summary: `would undo ${entries.length - refused} change(s), newest first${refused ? `; ${refused} would be refused` : ''}`,
      cause: null,
      dryRun: true,
      results,
      changes: undoChanges(results),
      evidence: outcomeLines(results),
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

// ---------------------------------------------------------------- reconcile and the target's records

async function reconcileCli(target: string | undefined, dir: string | undefined, json: boolean, o: Omit<UndoOptions, 'journal' | 'onEntry'>): Promise<number> {
  const intents = await openIntents(dir, (e) => !target || e.target === target);
  if (!intents.length) {
    const summary = `nothing to reconcile: every step in ${journalDir(dir)}${target ? ` on ${target}` : ''} returned or was reconciled`;
    if (json) printJson({ status: 'ok', summary, cause: null, changes: [], evidence: [], next: [], notes: [], results: [] });
    else printHuman(`${statusWord('ok')}  ${summary}`, []);
    return 0;
  }
  const results = await withSpinner(`reading the records of ${new Set(intents.map((e) => e.target)).size} target(s)`, () => reconcileIntents(intents, { ...(dir ? { journal: dir } : {}), ...(o.run ? { run: o.run } : {}) }), !json);
  const open = results.filter((r) => r.state === 'unknown' || r.state === 'running');
  const journaled = results.reduce((n, r) => n + r.entries.length, 0);
  const summary = `${results.length - open.length} of ${results.length} step(s) reconciled, ${journaled} change(s) journaled${open.length ? `; ${open.length} still unknown` : ''}`;
  const journalFlag = dir ? ` --journal ${shellWord(dir)}` : '';
  const runs = [...new Set(results.filter((r) => r.entries.length).map((r) => r.runId))];
  const next = [...runs.map((r) => `npx tsx scripts/undo.ts --run ${r} --yes${journalFlag}`), ...(open.length ? [`npx tsx scripts/undo.ts --reconcile${target ? ` --target ${target}` : ''}${journalFlag}`] : [])];
  const status = open.length ? 'failed' : 'ok';
  if (json) printJson({ status, summary, cause: null, changes: [], evidence: results.map(reconcileLine), next, notes: [], results });
  else printHuman(`${statusWord(status)}  ${summary}`, results.map(reconcileLine), next);
  return open.length ? 1 : 0;
}

interface FromTargetArgs {
  target?: string;
  list?: boolean;
  yes?: boolean;
  'dry-run'?: boolean;
  emit?: boolean;
  json?: boolean;
  last?: string;
  run?: string;
  reconcile?: boolean;
}

async function fromTarget(args: FromTargetArgs, ids: string[], dir: string | undefined, o: Omit<UndoOptions, 'journal' | 'onEntry'>): Promise<number> {
  if (args.target === undefined || args.target === 'client') throw new UsageError('--from-target needs --target CHANNEL (the server whose records to read)');
  if (args.last !== undefined || args.run !== undefined || args.reconcile) throw new UsageError('--from-target takes record ids, --list, --dry-run, --emit or --yes; not --last, --run or --reconcile');
  for (const id of ids) if (!/^[A-Za-z0-9-]{1,120}$/.test(id)) throw new UsageError(`invalid record id ${JSON.stringify(id)}`);
  const where = describeTarget(parseTarget(args.target));
  const ro = { ...(dir ? { journal: dir } : {}), ...(o.run ? { run: o.run } : {}) };
  const json = !!args.json;
  if (args.list) {
    const { listing } = await withSpinner(`reading the records of ${where}`, () => importTargetRecords(where, { ...ro, persist: false }), !json);
    const known = new Set((await readJournal(dir)).entries.map((e) => e.id));
    const summary = `${listing.records.length} record(s) on ${where} in ${listing.root || 'the backup root'}${listing.damaged.length ? `, ${listing.damaged.length} damaged` : ''}`;
    if (json) printJson({ status: 'ok', summary, cause: null, changes: [], evidence: [], next: [], notes: [], root: listing.root, records: listing.records, damaged: listing.damaged });
    else printHuman(summary, [...listing.records.map((r) => recordLine(r, known)), ...listing.damaged.map(damagedLine)]);
    return 0;
  }
  const persist = !args['dry-run'] && !args.emit;
  if (persist && !args.yes) {
    if (json) throw new UsageError('with --json there is no prompt: pass --yes (or --dry-run)');
    const preview = await importTargetRecords(where, { ...ro, persist: false, ids });
    if (!preview.entries.length) return nothingFromTarget(where, preview.skipped, json);
    process.stderr.write(`${preview.entries.map(entryLine).join('\n')}\n`);
    if (!(await confirm(`Undo ${preview.entries.length} change(s) above (from the records on ${where}), newest first?`, 'undo changes state and needs confirmation: pass --yes (or --dry-run to see what it would do)'))) return 1;
  }
  const got = await withSpinner(`reading the records of ${where}`, () => importTargetRecords(where, { ...ro, persist, ids }), !json);
  const skippedLines = got.skipped.map((s) => `${s.record}: not undone: ${s.why}`);
  if (!got.entries.length) return nothingFromTarget(where, got.skipped, json);
  if (args.emit) {
    const parts = got.entries.map((e) => (e.undo.kind === 'powershell' ? `${comment(`undo of ${e.targetRecord} (${e.script} on ${e.target}): ${e.summary}`)}\n${e.undo.script}` : `${comment(`${e.targetRecord}: ${e.undo.kind === 'none' ? e.undo.reason : 'not a PowerShell undo'}`)}\n`));
    if (json) printJson({ status: 'ok', summary: `${got.entries.length} undo script(s) from the records on ${where}`, cause: null, changes: [], evidence: skippedLines, next: [], notes: [], scripts: got.entries.map((e) => ({ record: e.targetRecord, script: e.undo.kind === 'powershell' ? e.undo.script : null })) });
    else process.stdout.write(`${comment(`rdpfix undo from the records on ${where}, newest first.`)}\n\n${parts.join('\n')}`);
    return 0;
  }
  if (args['dry-run']) {
    const results = got.entries.map((e) => ({ id: e.id, script: e.script, target: e.target, summary: e.summary, status: e.undo.kind === 'none' ? ('skipped' as const) : ('would-change' as const), detail: e.undo.kind === 'none' ? e.undo.reason : `record ${e.targetRecord}` }));
    const report: UndoReport = { status: 'would-change', summary: `would undo ${results.filter((r) => r.status === 'would-change').length} change(s) from the records on ${where}, newest first`, cause: null, dryRun: true, results, changes: undoChanges(results), evidence: [...outcomeLines(results), ...skippedLines], next: [], notes: [], damaged: got.listing.damaged };
    if (json) printJson(report);
    else printHuman(`${statusWord(report.status)}  ${report.summary}`, report.evidence);
    return 0;
  }
  const report = await withSpinner(`undoing ${got.entries.length} change(s)`, () => undoEntries(got.entries, { ...o, ...(dir ? { journal: dir } : {}), by: `undo --from-target` }), !json);
  report.evidence.push(...skippedLines);
  report.damaged = got.listing.damaged;
  if (json) printJson(report);
  else printHuman(`${statusWord(report.status)}  ${report.summary}`, report.results.map((r) => `${statusWord(r.status)} ${r.id}  ${r.summary}${r.detail ? chalk.dim(`  (${r.detail})`) : ''}`).concat(skippedLines), report.next);
  return report.status === 'failed' ? 1 : 0;
}

/**
 * The undo script of one target record given as a file (its record.json copied off a server reached
 * only through the Serial Console or Run Command): printed for pasting, never run, never journaled.
 * The undo script itself reads the server's state first and refuses what changed since.
 */
async function fromRecordFile(file: string, args: FromTargetArgs & { 'from-target'?: boolean }, ids: string[]): Promise<number> {
  const path = validateLocalPath(file, '--record-file');
  if (!args.emit) throw new UsageError('--record-file goes with --emit: it prints the undo script to paste on the server; nothing is run from here');
  if (args['from-target'] || args.list || args.last !== undefined || args.run !== undefined || args.reconcile || ids.length || args.yes || args['dry-run']) {
    throw new UsageError('--record-file takes only --emit and --json');
  }
  let rec: TargetRecord;
  try {
    rec = parseTargetRecord(JSON.parse((await readFile(path, 'utf8')).replace(/^\uFEFF/, '')));
  } catch (e) {
    throw new UsageError(`--record-file ${JSON.stringify(file)}: not an rdpfix target record: ${(e as Error).message}`);
  }
  const json = !!args.json;
  if (rec.undone) {
    const summary = `record ${rec.id} was undone already (${rec.undone.time}${rec.undone.by ? `, by ${rec.undone.by}` : ''}): nothing to paste`;
    if (json) printJson({ status: 'nothing-to-undo', summary, cause: null, changes: [], evidence: [], next: [], notes: [], scripts: [] });
    else process.stderr.write(`${summary}\n`);
    return 1;
  }
  const changes = recordChanges(rec, { target: parseTarget('local'), dryRun: false });
  const scripts = changes.filter((c) => c.undo.kind === 'powershell').map((c) => ({ summary: c.summary, script: (c.undo as { script: string }).script }));
  const none = changes.filter((c) => c.undo.kind !== 'powershell').map((c) => `${c.summary}: ${c.undo.kind === 'none' ? c.undo.reason : 'not a PowerShell undo'}`);
  if (!scripts.length) {
    const summary = `record ${rec.id} (${rec.step}) holds no change with an undo script${none.length ? `: ${none.join('; ')}` : ''}`;
    if (json) printJson({ status: 'nothing-to-undo', summary, cause: null, changes: [], evidence: none, next: [], notes: [], scripts: [] });
    else process.stderr.write(`${summary}\n`);
    return 1;
  }
  // Newest change first, as every undo runs (a nested regeneration is undone before the repair that made it).
  const ordered = [...scripts].reverse();
  if (json) printJson({ status: 'ok', summary: `${ordered.length} undo script(s) for record ${rec.id} (${rec.step} on ${rec.computer || 'the server'})`, cause: null, changes: [], evidence: none, next: [], notes: [], record: rec.id, scripts: ordered.map((x) => ({ record: rec.id, summary: x.summary, script: x.script })) });
  else process.stdout.write(`${comment(`rdpfix undo of record ${rec.id} (${rec.step} on ${rec.computer || 'the server'}, ${rec.phase === 'complete' ? 'completed' : 'stopped half-way'}); paste it on that server.`)}\n\n${ordered.map((x) => `${comment(`undo: ${x.summary}`)}\n${x.script}`).join('\n')}`);
  return 0;
}

function nothingFromTarget(where: string, skipped: Array<{ record: string; why: string }>, json: boolean): number {
  const summary = `nothing to undo on ${where}: no record there holds a change that is not undone yet`;
  const evidence = skipped.map((s) => `${s.record}: ${s.why}`);
  if (json) printJson({ status: 'nothing-to-undo', summary, cause: null, changes: [], evidence, next: [], notes: [], results: [], damaged: [] });
  else process.stderr.write(`${summary}\n${evidence.map((l) => `  ${l}\n`).join('')}`);
  return 1;
}

if (isMain(import.meta.url)) await runCli(main);
