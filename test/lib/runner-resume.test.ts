// The runner's --resume after this process was killed in the MIDDLE of a mutating step (the
// boundary case is test/run-recipe.test.ts): it reconciles the step's intent entry with the target's
// record first, and a step the target says completed is not run again.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { list, readJournal, recordIntent } from '../../scripts/lib/journal.ts';
import { parseRecipe } from '../../scripts/lib/recipe.ts';
import { loadRuns, runRecipe, type StepExecutor } from '../../scripts/lib/runner.ts';
import type { Runner } from '../../scripts/lib/server-step.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const RAW = JSON.parse(readFileSync(join(root, 'test/fixtures/restart-termserv/regenerate-changed.json'), 'utf8')) as Record<string, unknown>;
const T = 'winrm://vm1';
const RECIPE = parseRecipe(
  `name: cert
summary: regenerate, then check
fixes: [certificate-key-unusable]
steps:
  - id: regenerate
    name: Regenerate
    run: restart-termserv
    on: server
    args: ['--regenerate-cert']
  - id: probe
    name: Probe
    check: probe-rdp
    args: ['{host}']
    stop_when: healthy
`,
  'cert.yaml',
);
let dir = '';

const record = (tag: string, phase: 'intent' | 'complete') => ({
  schema: 'rdpfix-target-record/1', id: '20250601-120000-321-restart-termserv-a1b2c3', step: 'restart-termserv', tag, computer: 'VM1', user: 'S-1-5-18', pid: 1, processStarted: '', started: '2025-06-01T12:00:00Z', updated: '2025-06-01T12:00:01Z',
  finished: phase === 'complete' ? '2025-06-01T12:00:02Z' : null, phase, backup: String(RAW.backup), options: { timeoutSeconds: 60 }, result: RAW, assume: RAW, nested: null, undone: null,
});
const records = (rec: unknown): Runner => async () => ({ step: 'target-records', status: 'ok', root: 'C:\\ProgramData\\rdpfix\\backup', records: [{ record: rec, running: false, size: 1, folder: 'C:\\x' }], damaged: [] });

const r = suite('resume after a kill inside a mutating step');
r.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-resume-'));
  process.env.RDPFIX_JOURNAL_KEY = join(dir, 'key');
});
r.after.each(() => rmSync(dir, { recursive: true, force: true }));

/** The first run: the regenerate step's process writes its intent entry and then the runner dies. */
async function killedRun(): Promise<string> {
  const exec: StepExecutor = async (step, _argv, env) => {
    if (step.id === 'regenerate') {
      await recordIntent({ script: 'restart-termserv', target: T, runId: env.RDPFIX_RUN_ID! }, dir);
      throw new Error('killed');
    }
    return { exitCode: 0, json: { status: 'ok', cause: 'healthy' }, stderr: '' };
  };
  await runRecipe(RECIPE, { host: '192.0.2.10', target: T, dryRun: false, journal: dir, exec }).then(() => assert.unreachable('the kill ends the run'), () => undefined);
  const [run] = loadRuns(dir);
  assert.ok(run && !run.finished && run.steps.length === 0, 'the run was saved before the step finished');
  return run!.runId;
}

for (const [phase, rerun] of [['complete', false], ['intent', true]] as const) {
  r(`the target's record is ${phase === 'complete' ? 'complete: the step is not run again' : 'stopped half-way: the step runs again (its change is journaled first)'}`, async () => {
    const runId = await killedRun();
    const [intent] = (await readJournal(dir)).entries.filter((e) => e.intent);
    const ran: string[] = [];
    const exec: StepExecutor = async (step) => {
      ran.push(step.id);
      return { exitCode: 0, json: step.id === 'probe' ? { status: 'ok', cause: 'healthy' } : { status: 'ok' }, stderr: '' };
    };
    const [saved] = loadRuns(dir);
    const state = await runRecipe(RECIPE, { host: '192.0.2.10', target: T, dryRun: false, journal: dir, exec, resume: saved!, records: records(record(intent!.id, phase)) });
    assert.is(state.runId, runId);
    assert.equal(ran, rerun ? ['regenerate', 'probe'] : ['probe']);
    const step = state.steps.find((s) => s.id === 'regenerate')!;
    if (!rerun) {
      assert.is(step.status, 'changed');
      assert.match(step.detail, /completed on the target before the interruption/);
    }
    const changes = await list(dir);
    assert.is(changes.length, 1, 'the regeneration is journaled once, from the record');
    assert.is(changes[0]!.runId, runId);
    assert.is(changes[0]!.targetRecord, '20250601-120000-321-restart-termserv-a1b2c3');
    assert.is(state.result, 'fixed');
  });
}

r.run();
