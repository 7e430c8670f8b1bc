// The one step contract (scripts/lib/report.ts): every script's --json document (each line of a
// fleet, and runCli's JSON error document) has status, summary, cause, changes, evidence, next and
// notes with the right types, and every script accepts --dry-run. The scripts run for real, in
// modes that send nothing beyond this machine (loopback, refusals, listings, usage errors); the
// server steps' documents are also checked on every recorded fixture through a scripted channel.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { clearMachineKeys } from '../scripts/clear-machinekeys.ts';
import { inspectServer } from '../scripts/inspect-server.ts';
import { restartTermserv } from '../scripts/restart-termserv.ts';
import { interpretNla, type NlaMode, type NlaRaw } from '../scripts/toggle-nla.ts';
import { CAUSE_NAMES } from '../scripts/lib/causes.ts';
import { STATUSES } from '../scripts/lib/report.ts';
import { runReport, type RunState } from '../scripts/lib/runner.ts';
import type { StepContext } from '../scripts/lib/server-step.ts';
import { scripted } from './helpers/scripted-runner.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const scripts = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts') && f !== 'start.ts').map((f) => f.replace(/\.ts$/, '')).sort();
const work = mkdtempSync(join(tmpdir(), 'rdpfix-contract-'));
const journal = join(work, 'journal');
const hostsFile = join(work, 'hosts');
writeFileSync(hostsFile, '127.0.0.1:1\n127.0.0.1:2\n');

/** What is wrong with one document against the contract ([] when nothing is). */
function contractProblems(doc: unknown, alsoStatus: string[] = []): string[] {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return ['not a JSON object'];
  const d = doc as Record<string, unknown>;
  const out: string[] = [];
  const strings = (k: string) => Array.isArray(d[k]) && (d[k] as unknown[]).every((x) => typeof x === 'string');
  if (![...STATUSES, ...alsoStatus].includes(d.status as string)) out.push(`status ${JSON.stringify(d.status)} is not one of ${STATUSES.join(', ')}`);
  if (typeof d.summary !== 'string' || !d.summary.trim()) out.push(`summary ${JSON.stringify(d.summary)} is not a non-empty string`);
  else if (d.summary.includes('\n')) out.push('summary is more than one line');
  if (d.cause !== null && !(CAUSE_NAMES as readonly unknown[]).includes(d.cause)) out.push(`cause ${JSON.stringify(d.cause)} is neither null nor a cause of lib/causes.ts`);
  if (!Array.isArray(d.changes)) out.push('changes is not an array');
  else for (const [i, c] of (d.changes as unknown[]).entries()) {
    if (!c || typeof c !== 'object' || typeof (c as { summary?: unknown }).summary !== 'string' || !(c as { summary: string }).summary) out.push(`changes[${i}] has no summary`);
  }
  for (const k of ['evidence', 'next', 'notes']) if (!strings(k)) out.push(`${k} is not an array of strings`);
  return out;
}

interface Case {
  script: string;
  args: string[];
  /** Exit codes this case may end with. */
  codes: number[];
  /** The script changes nothing in this mode: status ok or failed, changes []. */
  readOnly?: boolean;
  /** More than one JSON document (one per line) is expected. */
  lines?: number;
  /** The document is runCli's error document. */
  error?: boolean;
  /** A status outside the contract's five that this case keeps (an existing behaviour test asserts it). */
  alsoStatus?: string[];
}

const notWindows = process.platform !== 'win32';
const cases: Case[] = [
  { script: 'probe-rdp', args: ['127.0.0.1:1'], codes: [1], readOnly: true },
  { script: 'diagnose', args: ['127.0.0.1:1', '--samples', '1'], codes: [1], readOnly: true },
  { script: 'diagnose', args: ['--hosts', hostsFile, '--samples', '1'], codes: [1], readOnly: true, lines: 2 },
  { script: 'test-vpn-latency', args: ['127.0.0.1:1', '--count', '1'], codes: [1], readOnly: true },
  { script: 'lower-mtu', args: ['--probe', '127.0.0.1', '--dry-run'], codes: [0, 1] },
  { script: 'undo', args: ['--list'], codes: [0], readOnly: true },
  // test/undo.test.ts asserts status nothing-to-undo for a selection that selects nothing.
  { script: 'undo', args: ['--last'], codes: [1], alsoStatus: ['nothing-to-undo'] },
  { script: 'run-recipe', args: ['--list'], codes: [0], readOnly: true },
  { script: 'probe-rdp', args: ['127.0.0.1:1', '--no-such-option'], codes: [2], error: true },
  { script: 'run-recipe', args: ['no-such-recipe', '--host', '127.0.0.1'], codes: [2], error: true },
  ...(notWindows
    ? [
        { script: 'disable-rdp-udp', args: [], codes: [2], error: true },
        { script: 'disable-rdp-udp', args: ['--skip-if-not-windows'], codes: [0] },
        ...['inspect-server', 'restart-termserv', 'clear-machinekeys', 'toggle-nla'].map((script) => ({ script, args: ['--target', 'local'], codes: [2], error: true })),
        { script: 'prune-backups', args: ['--older-than', '30', '--target', 'local'], codes: [2], error: true },
      ]
    : []),
];

/** Each script in a mode where --dry-run must be accepted and nothing leaves this machine (exit 0 or 1, never 2). */
const dryRuns: Record<string, string[]> = {
  'probe-rdp': ['127.0.0.1:1'],
  diagnose: ['127.0.0.1:1', '--samples', '1'],
  'test-vpn-latency': ['127.0.0.1:1', '--count', '1'],
  'lower-mtu': ['--probe', '127.0.0.1'],
  'disable-rdp-udp': ['--emit'],
  'inspect-server': ['--emit'],
  'restart-termserv': ['--emit'],
  'clear-machinekeys': ['--emit'],
  'toggle-nla': ['disable', '--emit'],
  'prune-backups': ['--older-than', '30', '--emit'],
  undo: ['--list'],
  'run-recipe': ['--list'],
};

function run(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(root, 'scripts', `${script}.ts`), ...args], {
      cwd: root,
      env: { ...process.env, RDPFIX_JOURNAL: journal, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run every case (a few at a time), with --json and again with --json --dry-run. */
async function runAll<T, R>(items: T[], f: (x: T) => Promise<R>, parallel = 6): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  }));
  return out;
}

const jsonRuns = await runAll(cases.flatMap((c) => [{ c, dry: false }, { c, dry: true }]), async ({ c, dry }) => ({ c, dry, r: await run(c.script, [...c.args, '--json', ...(dry && !c.args.includes('--dry-run') ? ['--dry-run'] : [])]) }));
const dryRunRuns = await runAll(Object.entries(dryRuns), async ([script, args]) => ({ script, r: await run(script, [...args, '--dry-run']) }));

const cli = suite('every script\'s --json document obeys the step contract');

cli('every script has a case here', () => {
  for (const s of scripts) {
    assert.ok(cases.some((c) => c.script === s) || !notWindows, `no --json case for scripts/${s}.ts`);
    assert.ok(dryRuns[s], `no --dry-run case for scripts/${s}.ts`);
  }
});

for (const { c, dry, r } of jsonRuns) {
  cli(`${c.script} ${[...c.args, '--json', ...(dry ? ['--dry-run'] : [])].join(' ').replaceAll(work, 'TMP')}`, () => {
    assert.ok(c.codes.includes(r.code ?? -1), `exit ${r.code}, expected ${c.codes.join(' or ')}: ${r.stdout.slice(0, 300)}${r.stderr.slice(0, 300)}`);
    const lines = r.stdout.trim().split('\n').filter(Boolean);
    assert.is(lines.length, c.lines ?? 1, `JSON documents on stdout: ${r.stdout.slice(0, 500)}`);
    for (const line of lines) {
      const doc = JSON.parse(line) as Record<string, unknown>;
      assert.equal(contractProblems(doc, c.alsoStatus), [], line.slice(0, 500));
      if (c.readOnly) {
        assert.ok(doc.status === 'ok' || doc.status === 'failed', `a read-only script reports ok or failed, not ${String(doc.status)}`);
        assert.equal(doc.changes, [], 'a read-only script changes nothing');
      }
      if (c.error) {
        assert.equal([doc.status, doc.summary, doc.exitCode], ['failed', doc.error, 2], 'the error document: the error is the summary');
        assert.is(typeof doc.error, 'string');
        if (typeof doc.hint === 'string') assert.equal(doc.notes, [doc.hint], 'the hint is the note');
      }
    }
  });
}

for (const { script, r } of dryRunRuns) {
  cli(`${script} accepts --dry-run (${dryRuns[script]!.join(' ')} --dry-run)`, () => {
    assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}: ${r.stderr.slice(0, 300)}`);
    assert.not.match(r.stderr, /unknown argument/);
  });
}

// ---------------------------------------------------------------- server steps, on every fixture

const steps = suite('the server steps\' reports obey the contract on every fixture');
/** A fixture directory's whole step results (the others are pieces of one: a cmdlet's output). */
const fixtures = (dir: string) =>
  readdirSync(join(root, 'test/fixtures', dir)).filter((f) => f.endsWith('.json') && typeof (JSON.parse(readFileSync(join(root, 'test/fixtures', dir, f), 'utf8')) as { status?: unknown }).status === 'string').sort();
const fx = (dir: string, n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures', dir, n), 'utf8')) as never;
const ctxFor = (n: string, run = scripted()): StepContext => ({ target: { kind: 'winrm', host: 'vm1' } as StepContext['target'], dryRun: /dry-run/.test(n), journal, run });

const stepCases: [string, (n: string) => Promise<unknown>][] = [
  ['inspect-server', (n) => inspectServer({}, ctxFor(n, scripted(fx('inspect-server', n))))],
  ['restart-termserv', (n) => restartTermserv(n.startsWith('regenerate') ? { regenerateCert: true } : {}, ctxFor(n, scripted(fx('restart-termserv', n))))],
  ['clear-machinekeys', (n) => clearMachineKeys(n.startsWith('rename') ? { renameFolder: true, force: true } : {}, ctxFor(n, scripted(fx('clear-machinekeys', n))))],
  ['toggle-nla', async (n) => interpretNla(fx('toggle-nla', n) as NlaRaw, ctxFor(n), { mode: (/^(status|enable|disable|restore)/.exec(n)?.[1] ?? 'disable') as NlaMode })],
];

for (const [dir, step] of stepCases) {
  for (const n of fixtures(dir)) {
    steps(`${dir}: ${n}`, async () => {
      const doc = JSON.parse(JSON.stringify(await step(n))) as Record<string, unknown>;
      assert.equal(contractProblems(doc), [], JSON.stringify(doc).slice(0, 500));
      if (doc.status === 'changed' || doc.status === 'would-change') assert.ok((doc.changes as unknown[]).length > 0, `${doc.status} names what it ${doc.status === 'changed' ? 'changed' : 'would change'}`);
      if (doc.status === 'ok') assert.equal(doc.changes, [], 'ok: nothing changed');
    });
  }
}

steps('a channel that could not run the step, and a step that failed on the target', async () => {
  for (const raw of [{ status: 'failed', error: 'Access is denied.' }, { status: 'failed', error: null }]) {
    for (const doc of [await inspectServer({}, ctxFor('x', scripted(raw))), await restartTermserv({}, ctxFor('x', scripted(raw))), await clearMachineKeys({}, ctxFor('x', scripted(raw)))]) {
      assert.equal(contractProblems(JSON.parse(JSON.stringify(doc))), [], JSON.stringify(doc).slice(0, 300));
      assert.is(doc.status, 'failed');
    }
  }
});

steps('a recipe run (runner.runReport): the changes are the steps that changed, the cause the last check\'s', () => {
  const state: RunState = {
    runId: 'r1', recipe: 'service-down', recipeFile: 'recipes/service-down.yaml', host: '10.0.0.4:3389', target: 'winrm://vm1', dryRun: false, params: {},
    started: '2025-06-01T12:00:00.000Z', finished: '2025-06-01T12:01:00.000Z', result: 'failed',
    steps: [
      { id: 'inspect', name: 'Inspect', script: 'inspect-server', on: 'server', status: 'ok', outcome: 'no-listener', detail: '1 problem(s)', ms: 1, exitCode: 1 },
      { id: 'restart', name: 'Restart TermService', script: 'restart-termserv', on: 'server', status: 'changed', outcome: 'changed', detail: 'TermService restarted', ms: 1, exitCode: 0 },
      { id: 'probe', name: 'Probe RDP', script: 'probe-rdp', on: 'client', status: 'failed', outcome: 'certificate-key-unusable', detail: 'expected healthy', ms: 1, exitCode: 1 },
    ],
  };
  const doc = runReport(state);
  assert.equal(contractProblems(doc), []);
  assert.equal([doc.status, doc.cause, doc.changes.map((c) => c.step)], ['failed', 'certificate-key-unusable', ['restart']]);
  assert.equal(doc.next, ['npx tsx scripts/undo.ts --run r1 --yes'], 'a failed run that changed something: the undo command');
  const fixed = runReport({ ...state, result: 'fixed', steps: state.steps.slice(0, 2) });
  assert.equal([fixed.status, fixed.next, fixed.cause], ['ok', [], 'no-listener']);
});

steps.after(() => rmSync(work, { recursive: true, force: true }));

cli.run();
steps.run();
