// The Node side of the bridge the Pester tests use (test/windows/Emit.ps1 Invoke-RdpfixEmit): the
// PowerShell under test is the REAL text the TypeScript builders generate, and the undo a test
// replays is the one the step's real TypeScript would journal. One process per batch:
//   stdin   one JSON array of requests
//   stdout  one JSON array of answers, in the same order
// Requests:
//   { "build": NAME, "args": [...] }              -> { "script": TEXT }
//   { "undo": STEP, "raw": {...}, "options": {} } -> { "changes": [{ summary, before, after, backup, undo }], "via": HOW }
//   { "record": {...record.json} }               -> { "changes": [...], "via": HOW } (lib/target-record.ts recordChanges)
//   { "interpret": STEP, "raw": {...} }           -> { "report": the step's report for --target local }
//   { "corpus": "examples" }                      -> { "scripts": [{ label, script }] } (test/examples/*.ts)
// A request that fails gets { "error": "..." } (the others still run); the exit code is 0 unless
// stdin is not a JSON array (2, with the reason on stderr).
//
// `changes` per step, for target local and not a dry run (the context serverFlags + contextFrom
// build for --target local), from the raw result exactly as the target would return it: what
// stepChanges (scripts/lib/step-changes.ts) gives, the one entry point every step script's journal
// change goes through (regenChange, clearChanges, nlaChanges, udpChange, windowsMtuChange); its
// comment says which options each step reads and what an absent one means.
import { buildClearScript, buildRestoreAclScript, buildRestoreFolderScript } from '../../scripts/clear-machinekeys.ts';
import { udpPolicyScript } from '../../scripts/disable-rdp-udp.ts';
import { buildInspectScript, interpretInspect } from '../../scripts/inspect-server.ts';
import { buildRestoreCertScript } from '../../scripts/lib/certificate.ts';
import { isMain } from '../../scripts/lib/cli.ts';
import { exampleScripts } from '../helpers/ps-corpus.ts';
import { emitRecipe, type EmitOptions } from '../../scripts/lib/recipe-emit.ts';
import { loadRecipe } from '../../scripts/lib/recipe.ts';
import { windowsRouteScript } from '../../scripts/lib/route.ts';
import { parseTargetRecord, recordChanges } from '../../scripts/lib/target-record.ts';
import { contextFrom, serverFlags, type Change, type StepContext } from '../../scripts/lib/server-step.ts';
import { isMutatingStep, MUTATING_STEPS, stepChanges } from '../../scripts/lib/step-changes.ts';
import type { UndoSpec } from '../../scripts/lib/journal.ts';
import { mtuScript } from '../../scripts/lower-mtu.ts';
import { buildRestartScript } from '../../scripts/restart-termserv.ts';
import { buildPruneScript } from '../../scripts/prune-backups.ts';
import { buildNlaScript, buildNlaUndoScript, expiryTaskScript } from '../../scripts/toggle-nla.ts';

type Builder = (...args: never[]) => string | Promise<string>;

/** Every builder of generated PowerShell, by the name a test asks for. */
export const BUILDERS: ReadonlyMap<string, Builder> = new Map<string, Builder>([
  ['buildNlaScript', buildNlaScript],
  ['buildNlaUndoScript', buildNlaUndoScript],
  ['expiryTaskScript', expiryTaskScript],
  ['buildRestartScript', buildRestartScript],
  ['buildRestoreCertScript', buildRestoreCertScript],
  ['buildClearScript', buildClearScript],
  ['buildRestoreAclScript', buildRestoreAclScript],
  ['buildRestoreFolderScript', buildRestoreFolderScript],
  ['buildInspectScript', buildInspectScript],
  // prune-backups: PruneOptions ({ olderThanDays, backupRoot? }), then dryRun.
  ['buildPruneScript', buildPruneScript],
  ['udpPolicyScript', udpPolicyScript],
  // lower-mtu: the set script, and (with origin 'found') the undo --revert replays on Windows.
  ['mtuScript', mtuScript],
  // test-vpn-latency's route lookup on Windows.
  ['windowsRouteScript', windowsRouteScript],
  // run-recipe --emit: a recipe by name (recipes/NAME.yaml), then EmitOptions ({ host, stage, dryRun, params }).
  ['emitRecipe', (name: string, o: EmitOptions = {}) => emitRecipe(loadRecipe(name), o)],
]);

export interface AnswerChange { summary: string; before: unknown; after: unknown; backup: string | null; undo: UndoSpec }
export type Answer = { script: string } | { changes: AnswerChange[]; via: string } | { report: unknown } | { scripts: Array<{ label: string; script: string }> } | { error: string };

/** The context a server step gets for --target local, not a dry run (as main() builds it). */
function localContext(): StepContext {
  return contextFrom(serverFlags({ target: 'local' }));
}

const asChange = (c: Change): AnswerChange => ({ summary: c.summary, before: c.before, after: c.after, backup: c.backup, undo: c.undo });

function record(v: unknown, what: string): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** The journal changes a step records for a raw result (and options as passed), on --target local. */
function undoAnswer(step: string, raw: Record<string, unknown>, options: Record<string, unknown>): { changes: AnswerChange[]; via: string } {
  if (!isMutatingStep(step)) throw new Error(`unknown undo step "${step}" (known: ${MUTATING_STEPS.join(', ')})`);
  return { changes: stepChanges(step, raw, localContext(), options).map(asChange), via: 'stepChanges (scripts/lib/step-changes.ts)' };
}

/** A step's own interpretation of a raw result, as its TypeScript reports it for --target local. */
export const INTERPRETERS: ReadonlyMap<string, (raw: Record<string, unknown>) => unknown> = new Map<string, (raw: Record<string, unknown>) => unknown>([
  ['inspect-server', (raw) => interpretInspect(raw as Parameters<typeof interpretInspect>[0], localContext())],
]);

/** Answer one request; an error is an answer, not a crash. */
export async function answer(request: unknown): Promise<Answer> {
  try {
    const r = record(request, 'a request');
    if (typeof r.build === 'string') {
      const fn = BUILDERS.get(r.build);
      if (!fn) throw new Error(`unknown builder "${r.build}" (known: ${[...BUILDERS.keys()].join(', ')})`);
      const args = r.args ?? [];
      if (!Array.isArray(args)) throw new Error(`builder "${r.build}": args must be a JSON array`);
      const script = await (fn as (...a: unknown[]) => string | Promise<string>)(...args);
      if (typeof script !== 'string') throw new Error(`builder "${r.build}" returned no script text`);
      return { script };
    }
    if (typeof r.undo === 'string') {
      return undoAnswer(r.undo, record(r.raw, `undo "${r.undo}": raw`), r.options === undefined ? {} : record(r.options, `undo "${r.undo}": options`));
    }
    if (r.record !== undefined) {
      // A target record as record.ps1 wrote it (record.json): the changes undo --reconcile / --from-target journal from it.
      const rec = parseTargetRecord(record(r.record, 'record'));
      return { changes: recordChanges(rec, localContext()).map(asChange), via: `recordChanges (scripts/lib/target-record.ts), phase ${rec.phase}` };
    }
    if (typeof r.interpret === 'string') {
      const fn = INTERPRETERS.get(r.interpret);
      if (!fn) throw new Error(`unknown interpreter "${r.interpret}" (known: ${[...INTERPRETERS.keys()].join(', ')})`);
      return { report: fn(record(r.raw, `interpret "${r.interpret}": raw`)) };
    }
    if (r.corpus === 'examples') {
      // Every example of test/examples/*.ts: each builder in each of its modes, as the goldens hold them.
      return { scripts: (await exampleScripts()).map((x) => ({ label: x.label, script: x.text })) };
    }
    throw new Error('a request names a "build", an "undo", an "interpret" or the "corpus" examples');
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

async function main(): Promise<number> {
  // stdout carries exactly one JSON document: anything a builder logs goes to stderr.
  console.log = console.error;
  console.info = console.error;
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += chunk;
  let requests: unknown;
  try {
    requests = JSON.parse(text);
  } catch (e) {
    process.stderr.write(`emit.ts: stdin is not JSON: ${(e as Error).message}\n`);
    return 2;
  }
  if (!Array.isArray(requests)) {
    process.stderr.write('emit.ts: stdin must be a JSON array of requests\n');
    return 2;
  }
  const answers: Answer[] = [];
  for (const r of requests) answers.push(await answer(r));
  await new Promise<void>((resolve, reject) => process.stdout.write(JSON.stringify(answers), (e) => (e ? reject(e) : resolve())));
  return 0;
}

if (isMain(import.meta.url)) process.exitCode = await main();
