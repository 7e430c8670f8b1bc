// Runner semantics with scripted step results: the runner is spawned as a user runs it, and its
// steps are stand-ins (test/fixtures/run-recipe/fake-step.ts, through RDPFIX_SCRIPTS_DIR) that log
// their argv and answer from a plan.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseHostsFile } from '../scripts/lib/hosts.ts';
import { changesState, fleetHosts } from '../scripts/lib/runner.ts';
import { parseProblems } from './helpers/powershell.ts';
import { pwshGate, runPwsh } from './helpers/pwsh.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const FAKE = join(root, 'test/fixtures/run-recipe/fake-step.ts');
const STEPS = ['inspect-server', 'restart-termserv', 'probe-rdp', 'clear-machinekeys', 'lower-mtu', 'disable-rdp-udp', 'undo'];

const RECIPE = `name: cert
summary: scripted azure-vm-cert
fixes: [certificate-key-unusable]
steps:
  - id: restart
    name: Restart
    run: restart-termserv
    on: server
  - id: probe-1
    name: Probe
    check: probe-rdp
    args: ['{host}']
    stop_when: healthy
  - id: regenerate
    name: Regenerate
    run: restart-termserv
    on: server
    args: ['--regenerate-cert']
  - id: probe-2
    name: Probe
    check: probe-rdp
    args: ['{host}']
    stop_when: healthy
  - id: machinekeys
    name: MachineKeys
    run: clear-machinekeys
    on: server
  - id: probe-3
    name: Probe
    check: probe-rdp
    args: ['{host}']
    expect: healthy
`;

interface Env {
  dir: string;
  recipe: string;
  run: (args: string[], plan?: unknown, extra?: Record<string, string>) => { code: number | null; signal: string | null; stdout: string; stderr: string };
  log: () => Array<{ name: string; call: number; args: string[]; runId: string }>;
  cleanup: () => void;
}

function setup(recipeText = RECIPE): Env {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-runner-'));
  const scripts = join(dir, 'scripts');
  mkdirSync(scripts);
  for (const s of STEPS) symlinkSync(FAKE, join(scripts, `${s}.ts`));
  const recipe = join(dir, 'cert.yaml');
  writeFileSync(recipe, recipeText);
  const logFile = join(dir, 'steps.log');
  const planFile = join(dir, 'plan.json');
  return {
    dir,
    recipe,
    run(args, plan, extra = {}) {
      if (plan) writeFileSync(planFile, JSON.stringify(plan));
      else if (!existsSync(planFile)) writeFileSync(planFile, '{}');
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/run-recipe.ts'), ...args, '--journal', join(dir, 'journal')], {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, RDPFIX_SCRIPTS_DIR: scripts, FAKE_LOG: logFile, FAKE_PLAN: planFile, RDPFIX_RUN_ID: '', ...extra },
      });
      return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const BROKEN = { json: { status: 'failed', cause: 'certificate-key-unusable' }, exit: 1 };
const HEALTHY = { json: { status: 'ok', cause: 'healthy' } };

const sem = suite('runner semantics');

sem('stops as soon as a check is healthy: the least drastic fix stays', () => {
  const e = setup();
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], { 'restart-termserv': [{ json: { status: 'changed' } }], 'probe-rdp': [HEALTHY] });
    assert.is(r.code, 0, r.stderr);
    assert.equal(e.log().map((l) => l.name), ['restart-termserv', 'probe-rdp']);
    const doc = JSON.parse(r.stdout);
    assert.is(doc.result, 'fixed');
    assert.equal(doc.steps.map((s: { status: string }) => s.status), ['changed', 'ok']);
    assert.equal(e.log()[0]!.args, ['--target=winrm://vm1', '--json'], 'server steps get the channel');
    assert.equal(e.log()[1]!.args, ['--json', '--', 'localhost:3389'], 'checks probe the host');
  } finally {
    e.cleanup();
  }
});

sem('runs on when a check is not yet healthy, and stops at the first failure', () => {
  const e = setup();
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], {
      'restart-termserv': [{ json: { status: 'changed' } }, { json: { status: 'failed', error: 'service did not start' }, exit: 1 }],
      'probe-rdp': [BROKEN],
    });
    assert.is(r.code, 1);
    assert.equal(e.log().map((l) => `${l.name}#${l.call}`), ['restart-termserv#1', 'probe-rdp#1', 'restart-termserv#2']);
    const doc = JSON.parse(r.stdout);
    assert.is(doc.result, 'failed');
    assert.is(doc.steps.at(-1).detail, 'service did not start');
  } finally {
    e.cleanup();
  }
});

// azure-vm-cert's case: TermService cannot regenerate while the old key is unreadable, and the
// MachineKeys repair after it is the fix.
const GO_ON = RECIPE.replace("    args: ['--regenerate-cert']\n", "    args: ['--regenerate-cert']\n    on_failure: continue\n");

sem('on_failure: continue: a failed fix lets the next one run, and the final check decides the run', () => {
  const e = setup(GO_ON);
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], {
      'restart-termserv': [{ json: { status: 'changed' } }, { json: { status: 'failed', error: 'no new certificate (event 1057)' }, exit: 1 }],
      'probe-rdp': [BROKEN, BROKEN, HEALTHY],
      'clear-machinekeys': [{ json: { status: 'changed' } }],
    });
    assert.is(r.code, 0, r.stderr + r.stdout);
    assert.equal(e.log().map((l) => `${l.name}#${l.call}`), ['restart-termserv#1', 'probe-rdp#1', 'restart-termserv#2', 'probe-rdp#2', 'clear-machinekeys#1', 'probe-rdp#3']);
    const doc = JSON.parse(r.stdout);
    assert.is(doc.result, 'completed');
    const regen = doc.steps.find((s: { id: string }) => s.id === 'regenerate');
    assert.is(regen.status, 'failed');
    assert.is(regen.continued, true);
    assert.match(regen.detail, /no new certificate \(event 1057\).*on_failure: continue/);
  } finally {
    e.cleanup();
  }
});

sem('on_failure: continue does not cover bad usage: a step that exits 2 still stops the run', () => {
  const e = setup(GO_ON);
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], {
      'restart-termserv': [{ json: { status: 'changed' } }, { json: { status: 'failed', error: 'bad usage' }, exit: 2 }],
      'probe-rdp': [BROKEN],
    });
    assert.is(r.code, 1);
    assert.equal(e.log().map((l) => `${l.name}#${l.call}`), ['restart-termserv#1', 'probe-rdp#1', 'restart-termserv#2']);
    assert.is(JSON.parse(r.stdout).result, 'failed');
  } finally {
    e.cleanup();
  }
});

sem('on_failure: continue does not go past a refusal: signed-in users without --force wait for the admin', () => {
  const e = setup(GO_ON);
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], {
      'restart-termserv': [{ json: { status: 'changed' } }, { json: { status: 'failed', refused: 'sessions', summary: 'refused: restarting TermService disconnects 1 session(s)' }, exit: 1 }],
      'probe-rdp': [BROKEN],
      'clear-machinekeys': [{ json: { status: 'changed' } }],
    });
    assert.is(r.code, 1);
    assert.equal(e.log().map((l) => `${l.name}#${l.call}`), ['restart-termserv#1', 'probe-rdp#1', 'restart-termserv#2']);
    const doc = JSON.parse(r.stdout);
    assert.is(doc.result, 'failed');
    assert.is(doc.steps.at(-1).continued, undefined);
  } finally {
    e.cleanup();
  }
});

sem('a final check that is not healthy fails the run with what it saw', () => {
  const e = setup();
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], { 'probe-rdp': [BROKEN] });
    assert.is(r.code, 1);
    const doc = JSON.parse(r.stdout);
    assert.is(doc.steps.length, 6);
    assert.match(doc.steps.at(-1).detail, /expected healthy, got certificate-key-unusable/);
  } finally {
    e.cleanup();
  }
});

sem('every step of one run shares the run id in the journal environment', () => {
  const e = setup();
  try {
    e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], { 'probe-rdp': [BROKEN] });
    const ids = new Set(e.log().map((l) => l.runId));
    assert.is(ids.size, 1);
    assert.match([...ids][0]!, /-cert-/);
  } finally {
    e.cleanup();
  }
});

sem('dry run: every state-changing step gets --dry-run, checks never stop it', () => {
  const e = setup();
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--dry-run', '--json'], {
      'restart-termserv': [{ json: { status: 'would-change' } }],
      'clear-machinekeys': [{ json: { status: 'would-change' } }],
      'probe-rdp': [HEALTHY],
    });
    assert.is(r.code, 0, r.stderr);
    const calls = e.log();
    assert.equal(calls.map((l) => l.name), ['restart-termserv', 'probe-rdp', 'restart-termserv', 'probe-rdp', 'clear-machinekeys', 'probe-rdp']);
    for (const c of calls.filter((c) => c.name !== 'probe-rdp')) assert.ok(c.args.includes('--dry-run'), `${c.name} ran without --dry-run`);
    for (const c of calls.filter((c) => c.name === 'probe-rdp')) assert.not.ok(c.args.includes('--dry-run'));
    assert.is(JSON.parse(r.stdout).result, 'dry-run');
  } finally {
    e.cleanup();
  }
});

sem('without --yes and without a terminal it refuses and runs nothing (exit 2)', () => {
  const e = setup();
  try {
    const r = e.run([e.recipe, '--host', 'localhost']);
    assert.is(r.code, 2);
    assert.match(r.stderr, /pass --yes/);
    assert.equal(e.log(), []);
  } finally {
    e.cleanup();
  }
});

sem('hostile input is refused before anything runs (exit 2)', () => {
  const e = setup();
  try {
    for (const args of [
      ['--host', 'vm1;calc', '--yes'],
      ['--host', 'localhost', '--target', "winrm://x'y", '--yes'],
      ['--host', 'localhost', '--param', 'x', '--yes'],
    ]) {
      const r = e.run([e.recipe, ...args]);
      assert.is(r.code, 2, args.join(' '));
    }
    assert.equal(e.log(), []);
  } finally {
    e.cleanup();
  }
});

sem('a server check that could not look (a failed report naming no cause) stops the run before anything changes', () => {
  const e = setup(`name: cert
summary: inspect first
fixes: [certificate-key-unusable]
steps:
  - { id: inspect, name: Inspect, check: inspect-server, on: server }
  - { id: restart, name: Restart, run: restart-termserv, on: server }
`);
  try {
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], { 'inspect-server': [{ json: { status: 'failed', summary: 'winrm://vm1: the channel did not answer' }, exit: 1 }] });
    assert.is(r.code, 1);
    assert.equal(e.log().map((l) => l.name), ['inspect-server']);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.plan.map((p: { changesState: boolean }) => p.changesState), [false, true]);
    assert.is(doc.steps[0].detail, 'winrm://vm1: the channel did not answer');
  } finally {
    e.cleanup();
  }
});

sem('a recipe parameter outside its declared values is refused, naming what was typed (exit 2)', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/run-recipe.ts', 'azure-vm-cert', '--host', '10.0.0.4', '--emit', '--param', 'disconnect=maybe'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 2);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /invalid --param disconnect="maybe": expected one of true, false/);
});

sem('the restart steps of the shipped recipes disconnect signed-in users only when asked (--param disconnect=true)', async () => {
  const { loadRecipe } = await import('../scripts/lib/recipe.ts');
  const { stepArgv } = await import('../scripts/lib/runner.ts');
  for (const name of ['azure-vm-cert', 'service-down', 'listener-hung', 'renew-rdp-cert']) {
    const recipe = loadRecipe(name);
    const restarts = recipe.steps.filter((x) => x.script === 'restart-termserv' || x.script === 'clear-machinekeys');
    assert.ok(restarts.length > 0, name);
    for (const step of restarts) {
      const argv = (disconnect?: string) => stepArgv(step, { host: 'vm1:3389', target: 'local', dryRun: false, params: { ...(recipe.params.disconnect?.default ? { disconnect: recipe.params.disconnect.default } : {}), ...(disconnect ? { disconnect } : {}) } });
      assert.ok(argv().includes('--force=false'), `${name}/${step.id}: no disconnect by default`);
      assert.ok(argv('true').includes('--force=true'), `${name}/${step.id}`);
    }
  }
});

sem('a host that does not resolve is refused before anything runs: no recipe fixes DNS (exit 2)', () => {
  const e = setup();
  try {
    const r = e.run([e.recipe, '--host', 'nosuch.invalid', '--target', 'winrm://vm1', '--yes']);
    assert.is(r.code, 2);
    assert.match(r.stderr, /host "nosuch\.invalid" does not resolve/);
    assert.equal(e.log(), []);
  } finally {
    e.cleanup();
  }
});

sem('in a fleet, a host that does not resolve fails alone: the others run', () => {
  const e = setup();
  try {
    writeFileSync(join(e.dir, 'hosts.txt'), '127.0.0.1\nnosuch.invalid\n');
    const r = e.run([e.recipe, '--hosts', join(e.dir, 'hosts.txt'), '--target', 'winrm://{host}', '--yes', '--json'], { 'probe-rdp': [HEALTHY] });
    assert.is(r.code, 1);
    const records = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const bad = records.find((x) => x.host === 'nosuch.invalid:3389');
    assert.is(bad.result, 'failed');
    assert.match(bad.steps[0].detail, /does not resolve/);
    assert.is(records.find((x) => x.host === '127.0.0.1:3389').result, 'fixed');
    assert.equal(e.log().map((l) => l.args[0]), ['--target=winrm://127.0.0.1', '--json']);
  } finally {
    e.cleanup();
  }
});

// ---

const cond = suite('conditions and platforms');

cond('a step with when: runs only if the earlier outcome matches; a foreign-platform step is skipped with the reason', () => {
  const e = setup(`name: cond
summary: conditions
fixes: [mtu-blackhole]
steps:
  - id: before
    name: Probe
    check: probe-rdp
    args: ['{host}']
  - id: mtu
    name: Lower MTU only on a black hole
    run: lower-mtu
    on: client
    args: ['--auto', '--probe', '{host}']
    when: { step: before, is: [mtu-blackhole] }
  - id: udp
    name: UDP off
    run: disable-rdp-udp
    on: client
    platform: ${process.platform === 'win32' ? 'linux' : 'win32'}
`);
  try {
    writeFileSync(e.recipe.replace('cert.yaml', 'cond.yaml'), readFileSync(e.recipe));
    const r = e.run([e.recipe.replace('cert.yaml', 'cond.yaml'), '--host', 'localhost', '--yes', '--json'], { 'probe-rdp': [{ json: { status: 'failed', cause: 'nla-required' }, exit: 1 }] });
    assert.is(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.steps.map((s: { status: string }) => s.status), ['ok', 'skipped', 'skipped']);
    assert.match(doc.steps[1].detail, /only when before is mtu-blackhole \(it was nla-required\)/);
    assert.match(doc.steps[2].detail, /client step; this machine is/);
    assert.equal(e.log().map((l) => l.name), ['probe-rdp']);
  } finally {
    e.cleanup();
  }
});

// ---

cond('a run step may change state (gets --dry-run, needs confirmation), a check never does: the recipe says which', () => {
  const step = (kind: 'run' | 'check', script: string, args: string[]) => ({ id: 'x', name: 'x', kind, script, on: 'client' as const, args, expect: [], stopWhen: [], line: 1 });
  assert.ok(changesState(step('run', 'lower-mtu', ['--auto', '--probe', '{hostname}'])));
  assert.ok(changesState(step('run', 'restart-termserv', [])));
  assert.not.ok(changesState(step('check', 'lower-mtu', ['--probe', '{hostname}'])));
  assert.not.ok(changesState(step('check', 'inspect-server', [])));
});

// ---

const resume = suite('resume after a crash');

const CHANGED_THEN_BROKEN = { 'restart-termserv': [{ json: { status: 'changed' } }], 'clear-machinekeys': [{ json: { status: 'changed' } }], 'probe-rdp': [BROKEN, BROKEN, HEALTHY] };
// The boundary before each step: [script#call that kills the runner, steps finished before it].
const BOUNDARIES: Array<[string, number]> = [['restart-termserv#1', 0], ['probe-rdp#1', 1], ['restart-termserv#2', 2], ['probe-rdp#2', 3], ['clear-machinekeys#1', 4], ['probe-rdp#3', 5]];

for (const [crashAt, done] of BOUNDARIES) {
  resume(`killed before step ${done + 1} (${crashAt}): --resume runs each step exactly once`, () => {
    const e = setup();
    try {
      const first = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], CHANGED_THEN_BROKEN, { FAKE_CRASH_AT: crashAt });
      assert.is(first.signal, 'SIGKILL', 'the runner was killed');
      assert.is(e.log().length, done);
      const second = e.run(['--resume', '--json']);
      assert.is(second.code, 0, second.stderr + second.stdout);
      const calls = e.log();
      assert.equal(calls.map((l) => `${l.name}#${l.call}`), ['restart-termserv#1', 'probe-rdp#1', 'restart-termserv#2', 'probe-rdp#2', 'clear-machinekeys#1', 'probe-rdp#3']);
      assert.is(new Set(calls.map((l) => l.runId)).size, 1, 'one run id across the crash');
      assert.is(JSON.parse(second.stdout).result, 'completed');
    } finally {
      e.cleanup();
    }
  });
}

resume('a damaged or foreign run file never hides the run to resume, and is named when nothing else is there', () => {
  const e = setup();
  try {
    const first = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], CHANGED_THEN_BROKEN, { FAKE_CRASH_AT: 'probe-rdp#1' });
    assert.is(first.signal, 'SIGKILL');
    const runs = join(e.dir, 'journal', 'runs');
    writeFileSync(join(runs, 'foo.json'), '{"foo":1}');
    writeFileSync(join(runs, 'null.json'), 'null');
    const second = e.run(['--resume', '--json']);
    assert.is(second.code, 0, second.stderr + second.stdout);
    assert.is(JSON.parse(second.stdout).result, 'completed');
    const none = e.run(['--resume']);
    assert.is(none.code, 2);
    assert.match(none.stderr, /no unfinished recipe run to resume \(skipped 2 damaged run files: .*foo\.json/);
  } finally {
    e.cleanup();
  }
});

resume('--resume with nothing unfinished is a usage error', () => {
  const e = setup();
  try {
    assert.is(e.run(['--resume']).code, 2);
  } finally {
    e.cleanup();
  }
});

// ---

const rollback = suite('rollback');

rollback('--rollback after a failure undoes this run (undo --run ID --yes, in the run\'s own --journal), and only then', () => {
  const e = setup();
  try {
    const plan = { 'restart-termserv': [{ json: { status: 'changed' } }, { json: { status: 'failed' }, exit: 1 }], 'probe-rdp': [BROKEN], undo: [{ json: { status: 'changed' } }] };
    const r = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json', '--rollback'], plan);
    assert.is(r.code, 1);
    const undo = e.log().filter((l) => l.name === 'undo');
    assert.is(undo.length, 1);
    const runId = JSON.parse(r.stdout.trim().split('\n').at(-1)!).runId;
    assert.equal(undo[0]!.args, ['--run', runId, '--yes', '--json', '--journal', join(e.dir, 'journal')]);
    assert.is(JSON.parse(r.stdout.trim().split('\n').at(-1)!).rollback, 'ok');

    // Without --rollback, the undo command it prints names the same journal.
    const left = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json'], plan, { FAKE_LOG: join(e.dir, 'left.log') });
    assert.is(left.code, 1);
    assert.equal(JSON.parse(left.stdout.trim().split('\n').at(-1)!).next, [`npx tsx scripts/undo.ts --run ${JSON.parse(left.stdout.trim().split('\n').at(-1)!).runId} --yes --journal ${join(e.dir, 'journal')}`]);

    const ok = e.run([e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--json', '--rollback'], { 'probe-rdp': [HEALTHY] });
    assert.is(ok.code, 0);
    assert.is(e.log().filter((l) => l.name === 'undo').length, 1, 'no rollback after success');
  } finally {
    e.cleanup();
  }
});

// ---

const emit = suite('--emit');

const emitted = (stdout: string) => [...stdout.matchAll(/# emitted by ([\w-]+)|# Step (\d+) \((\w+)/g)].map((m) => m[1] ?? `${m[2]}:${m[3]}`);

emit('checks the server can answer itself stay in the pasted script: one stage runs every fix with the in-server check between them', async () => {
  const e = setup();
  try {
    const r = e.run([e.recipe, '--host', 'vm1', '--emit']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(await parseProblems(r.stdout), []);
    assert.equal(emitted(r.stdout), ['1:server', 'restart-termserv', '2:check', '3:server', 'restart-termserv', '4:check', '5:server', 'clear-machinekeys', '6:check']);
    assert.match(r.stdout, /^# rdpfix recipe cert, stage 1 of 1:/);
    assert.match(r.stdout, /# Step 2 \(check, on the server itself\): Probe/);
    assert.match(r.stdout, /# This is the last stage\./);
    assert.is(e.run([e.recipe, '--host', 'vm1', '--emit', '--stage', '2']).code, 2, 'there is no stage 2');
    assert.equal(e.log(), [], 'emitting runs nothing');
  } finally {
    e.cleanup();
  }
});

// A stop check with options the in-server check cannot honour (--tls-versions) needs the client:
// the recipe splits into stages there, each ending with the line to run from the workstation.
const STAGED = RECIPE.replaceAll("args: ['{host}']\n    stop_when: healthy", "args: ['{host}', '--tls-versions']\n    stop_when: healthy");

emit('a stop check only the client can make ends a stage: stage 1 is the least drastic fix and the line to run from the workstation', async () => {
  const e = setup(STAGED);
  try {
    const r = e.run([e.recipe, '--host', 'vm1', '--emit']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(await parseProblems(r.stdout), []);
    assert.equal(emitted(r.stdout), ['1:server', 'restart-termserv', '2:check']);
    assert.match(r.stdout, /^# rdpfix recipe cert, stage 1 of 3:/);
    assert.match(r.stdout, /# {3}From your workstation run: npx tsx scripts\/probe-rdp\.ts --tls-versions vm1:3389\n# {3}If it reports healthy, you are done/);
    assert.match(r.stdout, /otherwise print and run stage 2: npx tsx scripts\/run-recipe\.ts cert --host vm1:3389 --emit --stage 2/);
    assert.equal(e.log(), [], 'emitting runs nothing');
  } finally {
    e.cleanup();
  }
});

emit('--stage N prints the next, more drastic fix; a stage that does not exist is a usage error', async () => {
  const e = setup(STAGED);
  try {
    const two = e.run([e.recipe, '--host', 'vm1', '--emit', '--stage', '2']);
    assert.is(two.code, 0, two.stderr);
    assert.equal(emitted(two.stdout), ['3:server', 'restart-termserv', '4:check']);
    assert.match(two.stdout, /# emitted by restart-termserv --regenerate-cert/);
    const three = e.run([e.recipe, '--host', 'vm1', '--emit', '--stage', '3']);
    assert.equal(emitted(three.stdout), ['5:server', 'clear-machinekeys', '6:check']);
    assert.match(three.stdout, /# This is the last stage\./);
    const four = e.run([e.recipe, '--host', 'vm1', '--emit', '--stage', '4']);
    assert.is(four.code, 2);
    assert.match(four.stderr, /--stage 4: recipe cert has 3 stages/);
    assert.is(four.stdout, '');
    assert.is(e.run([e.recipe, '--host', 'vm1', '--stage', '2', '--yes']).code, 2, '--stage without --emit');
    assert.equal(e.log(), []);
  } finally {
    e.cleanup();
  }
});

emit('--emit never runs a step, in any mode: --yes, --dry-run, a fleet; with --resume, --rollback or --json it is refused', () => {
  const e = setup();
  try {
    writeFileSync(join(e.dir, 'hosts.txt'), 'vm1\nvm2\n');
    for (const args of [
      ['--host', 'vm1', '--emit', '--yes'],
      ['--host', 'vm1', '--emit', '--dry-run'],
      ['--hosts', join(e.dir, 'hosts.txt'), '--emit', '--yes'],
      ['--hosts', join(e.dir, 'hosts.txt'), '--emit'],
    ]) {
      const r = e.run([e.recipe, ...args]);
      assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^# rdpfix recipe cert, stage 1 of 1/, args.join(' '));
      assert.is((r.stdout.match(/^# rdpfix recipe /gm) ?? []).length, 1, 'one script');
    }
    for (const args of [['--host', 'vm1', '--emit', '--resume'], ['--host', 'vm1', '--emit', '--rollback'], ['--host', 'vm1', '--emit', '--json']]) {
      const r = e.run([e.recipe, ...args]);
      assert.is(r.code, 2, args.join(' '));
      assert.match(r.stderr + r.stdout, /--emit prints a script and runs nothing/);
    }
    assert.equal(e.log(), [], 'no step ran');
    assert.not.ok(existsSync(join(e.dir, 'journal', 'runs')), 'no run was journaled');
  } finally {
    e.cleanup();
  }
});

emit('a fleet gets one script for every host: the server steps do not depend on the host', () => {
  const e = setup();
  try {
    writeFileSync(join(e.dir, 'hosts.txt'), 'vm1\nvm2:3390\n');
    const r = e.run([e.recipe, '--hosts', join(e.dir, 'hosts.txt'), '--emit']);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /# Generated by rdpfix for every host in .*hosts\.txt/);
    assert.match(r.stdout, /probe-rdp\.ts --json -- HOST|probe-rdp\.ts HOST/);
    assert.match(r.stderr, /One script for the 2 hosts/);
  } finally {
    e.cleanup();
  }
});

emit('a step that prints help where a script was expected fails the emit (exit 2) and nothing is printed', () => {
  const e = setup();
  try {
    const plan = join(e.dir, 'emit.json');
    writeFileSync(plan, JSON.stringify({ 'restart-termserv': { help: true } }));
    const r = e.run([e.recipe, '--host', 'vm1', '--emit'], undefined, { FAKE_EMIT: plan });
    assert.is(r.code, 2);
    assert.is(r.stdout, '');
    assert.match(r.stderr, /restart-termserv --emit printed something that is not a generated script/);
  } finally {
    e.cleanup();
  }
});

emit('the header says what runs: the parameters used, and which failed steps go on to the next', async () => {
  const { loadRecipe } = await import('../scripts/lib/recipe.ts');
  const { emitRecipe } = await import('../scripts/lib/recipe-emit.ts');
  const layer = await emitRecipe(loadRecipe('security-layer'), { host: 'vm1:3389', params: { layer: 'rdp' } });
  assert.match(layer, /^# Parameters: layer=rdp\.$/m);
  assert.match(layer, /'SecurityLayer' = 0/, 'and the script sets what the header says');
  assert.match(layer, /^# It stops at the first failed step\.$/m, 'no step of security-layer goes on after failing');
  const recipe = loadRecipe('azure-vm-cert');
  const cert = await emitRecipe(recipe, { host: 'vm1:3389' });
  const goOn = recipe.steps.filter((s) => s.onFailure === 'continue').map((s) => s.name);
  assert.ok(goOn.length > 0);
  const said = /^# It stops at the first failed step, except that a failure of (.*) goes on to the next$/m.exec(cert);
  assert.ok(said, 'names the steps that go on');
  assert.equal(said![1]!.split(' or '), goOn);
});

emit('a recipe parameter outside its values is refused naming it, before any step is emitted', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/run-recipe.ts', 'security-layer', '--host', '10.0.0.4', '--emit', '--param', 'layer=bogus'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 2);
  assert.is(r.stdout, '');
  assert.match(r.stderr, 'invalid --param layer="bogus": expected one of rdp, negotiate, tls');
});

emit('a recipe value that starts with "-" is never read as an option: the script rejects it (exit 2), no help text', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/run-recipe.ts', 'nla-mismatch', '--host', '10.0.0.4', '--emit', '--param', 'for=-1h'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 2, r.stdout);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /invalid --for "-1h"/);
  assert.not.match(r.stderr + r.stdout, /Options:|--help/);
});

emit('stage 1 of every shipped recipe holds every server step up to the first stop check only the client can make', async () => {
  const { listRecipes, loadRecipe } = await import('../scripts/lib/recipe.ts');
  const { emitRecipe, inServerCheck } = await import('../scripts/lib/recipe-emit.ts');
  for (const name of listRecipes()) {
    const recipe = loadRecipe(name);
    const firstStop = recipe.steps.findIndex((s) => s.kind === 'check' && s.stopWhen.length && !inServerCheck(s) && recipe.steps.slice(0, recipe.steps.indexOf(s)).some((x) => x.on === 'server'));
    const expected = recipe.steps.slice(0, firstStop < 0 ? undefined : firstStop).filter((s) => s.on === 'server').map((s) => s.name);
    if (!expected.length) {
      await emitRecipe(recipe, { host: 'vm1.contoso.com:3389' }).then(
        () => assert.unreachable(`${name}: a client-only recipe has nothing to paste`),
        (err: Error) => assert.match(err.message, /has no server-side step/),
      );
      continue;
    }
    const text = await emitRecipe(recipe, { host: 'vm1.contoso.com:3389' });
    assert.equal(await parseProblems(text), [], name);
    assert.ok(text.startsWith(`# rdpfix recipe ${name}, stage 1 of `), name);
    const ran = [...text.matchAll(/^# Step \d+ \(server\): (.*)$/gm)].map((m) => m[1]);
    assert.equal(ran, expected, `${name}: stage 1 server steps`);
    assert.not.match(text, /Serial Console/, `${name}: the Serial Console takes 2,048 characters per paste`);
  }
});

emit('the causes a pasted recipe lets the server answer are the ones its handshake check names (all but unreachable, which is the path)', async () => {
  const { IN_SERVER_CAUSES } = await import('../scripts/lib/recipe-emit.ts');
  const { CAUSE_NAMES } = await import('../scripts/lib/causes.ts');
  const ps = readFileSync(join(root, 'scripts/ps/handshake.ps1'), 'utf8');
  const named = new Set([...ps.matchAll(/New-RdpHandshakeFinding -Cause '([a-z-]+)'/g)].map((m) => m[1]!));
  assert.ok(named.size >= 10, `handshake.ps1 names ${named.size} causes`);
  for (const c of named) assert.ok((CAUSE_NAMES as string[]).includes(c), `handshake.ps1 names ${c}, which diagnose does not know`);
  // unreachable from inside is a full listen queue or a local filter: a recipe's stop on it is about
  // the path from the user's network, which only the client sees.
  assert.equal([...IN_SERVER_CAUSES].sort(), [...named].filter((c) => c !== 'unreachable').sort());
});

// The largest recorded step results, to prove the summary line stays within Run Command's tail.
const BIG = {
  'inspect-server': JSON.parse(readFileSync(join(root, 'test/fixtures/inspect-server/key-unreadable-2019.json'), 'utf8')),
  'restart-termserv': {
    ...JSON.parse(readFileSync(join(root, 'test/fixtures/restart-termserv/regenerate-changed.json'), 'utf8')),
    backup: 'C:\\ProgramData\\rdpfix\\backup\\20261201-231400-123-restart-termserv',
    restore: Array.from({ length: 6 }, (_, i) => `reg import "C:\\ProgramData\\rdpfix\\backup\\20261201-231400-123-restart-termserv\\store-${i}.reg"`),
  },
  'clear-machinekeys': JSON.parse(readFileSync(join(root, 'test/fixtures/clear-machinekeys/repair-regenerated.json'), 'utf8')),
};
// The probe has an option the in-server check cannot honour, so it stays a client check: under pwsh
// here the in-server check would open this machine's own port, not a server's.
const ALL_SERVER = `name: cert
summary: every server step in one stage
fixes: [certificate-key-unusable]
steps:
  - { id: inspect, name: Inspect, run: inspect-server, on: server }
  - { id: restart, name: Restart, run: restart-termserv, on: server }
  - { id: machinekeys, name: MachineKeys, run: clear-machinekeys, on: server }
  - { id: probe, name: Probe, check: probe-rdp, args: ['{host}', '--tls-versions'], expect: healthy }
`;

emit('run by PowerShell, a composite ends with one summary line of at most 2,000 bytes naming every step\'s status', () => {
  if (!pwshGate('composite summary under pwsh')) return;
  const e = setup(ALL_SERVER);
  try {
    const plan = join(e.dir, 'emit.json');
    writeFileSync(plan, JSON.stringify(Object.fromEntries(Object.entries(BIG).map(([k, v]) => [k, { result: v }]))));
    const r = e.run([e.recipe, '--host', 'vm1', '--emit'], undefined, { FAKE_EMIT: plan });
    assert.is(r.code, 0, r.stderr);
    const ran = runPwsh(r.stdout);
    assert.is(ran.code, 0, ran.stderr);
    assert.ok(Buffer.byteLength(ran.stdout) > 4096, 'the whole output is more than Run Command keeps');
    const last = ran.stdout.trimEnd().split('\n').at(-1)!;
    assert.ok(Buffer.byteLength(last) <= 2000, `summary is ${Buffer.byteLength(last)} bytes`);
    const summary = JSON.parse(last);
    assert.is(summary.rdpfix, 'summary');
    assert.is(summary.result, 'completed');
    assert.equal(summary.steps.map((x: { id: string; status: string }) => `${x.id}=${x.status}`), ['inspect=' + BIG['inspect-server'].status, 'restart=' + BIG['restart-termserv'].status, 'machinekeys=' + BIG['clear-machinekeys'].status]);
    assert.match(summary.steps[1].backup, /restart-termserv$/);
  } finally {
    e.cleanup();
  }
});

emit('run by PowerShell, a composite stops at a failed step: later steps are not run, the summary says so', () => {
  if (!pwshGate('composite summary under pwsh')) return;
  const e = setup(ALL_SERVER);
  try {
    const plan = join(e.dir, 'emit.json');
    const huge = { step: 'restart-termserv', status: 'failed', error: `TermService did not start: ${'x'.repeat(6000)}` };
    writeFileSync(plan, JSON.stringify({ 'inspect-server': { result: BIG['inspect-server'] }, 'restart-termserv': { result: huge } }));
    const r = e.run([e.recipe, '--host', 'vm1', '--emit'], undefined, { FAKE_EMIT: plan });
    const ran = runPwsh(r.stdout);
    const last = ran.stdout.trimEnd().split('\n').at(-1)!;
    assert.ok(Buffer.byteLength(last) <= 2000, `summary is ${Buffer.byteLength(last)} bytes`);
    const summary = JSON.parse(last);
    assert.is(summary.result, 'failed');
    assert.equal(summary.steps.map((x: { status: string }) => x.status), [BIG['inspect-server'].status, 'failed', 'not-run']);
    assert.match(summary.steps[1].error, /^TermService did not start/);
    assert.not.match(ran.stdout, /emitted by clear-machinekeys[\s\S]*some progress text[\s\S]*"step":"clear-machinekeys"/);
  } finally {
    e.cleanup();
  }
});

// ---

const fleet = suite('hosts file');

fleet('one host per line with comments, optional per-line target, {host} in the target template', () => {
  const hosts = fleetHosts(parseHostsFile('# lab\nvm1\n10.0.0.5:3390  azure://sub/rg/vm5 # azure one\n\n[::1]\n', 'hosts.txt'), 'hosts.txt', 'winrm://{host}');
  assert.equal(hosts, [
    { host: 'vm1:3389', target: 'winrm://vm1', line: 2 },
    { host: '10.0.0.5:3390', target: 'azure://sub/rg/vm5', line: 3 },
    { host: '[::1]:3389', target: 'winrm://[::1]', line: 5 },
  ]);
});

fleet('a bad line names the file and line', () => {
  assert.throws(() => parseHostsFile('vm1\nvm;2\n', 'hosts.txt'), /hosts\.txt:2: invalid host/);
  assert.throws(() => parseHostsFile('vm1 a b\n', 'hosts.txt'), /hosts\.txt:1: expected HOST\[:PORT\] \[TARGET\]/);
  assert.throws(() => parseHostsFile('# nothing\n', 'hosts.txt'), /no hosts/);
  assert.throws(() => fleetHosts(parseHostsFile("vm1 winrm://x'y\n", 'hosts.txt'), 'hosts.txt', 'local'), /hosts\.txt:1: invalid WinRM host/);
});

fleet('a fleet run gives one record per host and one failing host does not stop the others', () => {
  const e = setup();
  try {
    writeFileSync(join(e.dir, 'hosts.txt'), '127.0.0.1\n127.0.0.2\n127.0.0.3\n');
    const r = e.run([e.recipe, '--hosts', join(e.dir, 'hosts.txt'), '--target', 'winrm://{host}', '--parallel', '2', '--yes', '--json'], {
      'restart-termserv': [{ json: { status: 'changed' } }, { json: { status: 'failed' }, exit: 1 }, { json: { status: 'changed' } }],
      'probe-rdp': [HEALTHY],
    });
    const records = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.is(records.length, 3);
    assert.equal(records.map((x) => x.host).sort(), ['127.0.0.1:3389', '127.0.0.2:3389', '127.0.0.3:3389']);
    assert.is(records.filter((x) => x.result === 'failed').length, 1);
    assert.is(records.filter((x) => x.result === 'fixed').length, 2);
    assert.is(r.code, 1);
    assert.equal(new Set(e.log().filter((l) => l.name === 'restart-termserv').map((l) => l.args[0])), new Set(['--target=winrm://127.0.0.1', '--target=winrm://127.0.0.2', '--target=winrm://127.0.0.3']));
  } finally {
    e.cleanup();
  }
});

fleet('a fleet run streams: --json prints only host records unless --summary adds the counts; the human output ends with them', () => {
  const e = setup();
  try {
    writeFileSync(join(e.dir, 'hosts.txt'), '127.0.0.1\n127.0.0.2\n127.0.0.3\n');
    const plan = { 'restart-termserv': [{ json: { status: 'changed' } }, { json: { status: 'failed' }, exit: 1 }, { json: { status: 'changed' } }], 'probe-rdp': [HEALTHY] };
    const base = [e.recipe, '--hosts', join(e.dir, 'hosts.txt'), '--target', 'winrm://{host}', '--parallel', '1', '--yes'];
    // Each run gets its own step log, so the stand-ins answer from the start of the plan again.
    const fresh = (k: string) => ({ FAKE_LOG: join(e.dir, `steps-${k}.log`) });
    const plain = e.run([...base, '--json'], plan, fresh('plain'));
    assert.is(plain.stderr, '', 'nothing on stderr for --json to a pipe');
    assert.ok(plain.stdout.trim().split('\n').every((l) => JSON.parse(l).host), 'only host records');

    const summed = e.run([...base, '--json', '--summary', '--slowest', '2'], plan, fresh('summed'));
    const lines = summed.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.is(lines.length, 4);
    const last = lines.at(-1);
    assert.is(last.fleet.hosts, 3);
    assert.is(last.fleet.ok, 2);
    assert.equal(last.fleet.causes, [{ cause: 'fixed', hosts: 2 }, { cause: 'failed', hosts: 1 }]);
    assert.is(last.fleet.slowest.length, 2);
    assert.ok(last.fleet.slowest.every((h: { line: number }) => [1, 2, 3].includes(h.line)));
    assert.is(last.status, 'failed');
    assert.is(summed.code, 1);

    const human = e.run([...base, '--progress'], plan, fresh('human'));
    assert.match(human.stdout, /\n3 hosts in [\d.]+ s: 2 ok, 1 failed\n/);
    assert.match(human.stdout, /^ +2 {2}fixed$/m);
    assert.match(human.stdout, /Slowest 3 hosts:/);
    assert.match(human.stdout, /peak RSS \d+ MB/);
    assert.match(human.stderr, /cert: 3\/3 hosts \(100%\)/, 'the progress line, asked for, names the recipe');
  } finally {
    e.cleanup();
  }
});

fleet('a fleet prints each host as its run ends, not in the file\'s order: a host held back is printed after the one that finished', () => {
  const e = setup();
  try {
    writeFileSync(join(e.dir, 'hosts.txt'), '127.0.0.1\n127.0.0.2\n');
    const done = join(e.dir, 'second-host-probed');
    // The first host's restart answers only after the second host's last step has answered.
    const r = e.run([e.recipe, '--hosts', join(e.dir, 'hosts.txt'), '--target', 'winrm://{host}', '--parallel', '2', '--yes', '--json'], {
      'restart-termserv': [{ when: 'winrm://127.0.0.1', json: { status: 'changed' }, waitFor: done }, { json: { status: 'changed' } }],
      'probe-rdp': [{ when: '127.0.0.2:3389', json: HEALTHY.json, touch: done }, HEALTHY],
    });
    assert.is(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').map((l) => JSON.parse(l).host), ['127.0.0.2:3389', '127.0.0.1:3389']);
  } finally {
    e.cleanup();
  }
});

fleet('--summary, --progress and --slowest are for a fleet run: with --host, --emit, --list or --resume they are a usage error', () => {
  const e = setup();
  try {
    writeFileSync(join(e.dir, 'hosts.txt'), '127.0.0.1\n');
    const hosts = join(e.dir, 'hosts.txt');
    for (const [args, named] of [
      [[e.recipe, '--host', 'localhost', '--target', 'winrm://vm1', '--yes', '--summary'], '--summary'],
      [[e.recipe, '--host', 'localhost', '--yes', '--slowest', '3'], '--slowest'],
      [[e.recipe, '--hosts', hosts, '--emit', '--summary', '--progress'], '--summary and --progress'],
      [['--list', '--progress'], '--progress'],
      [['--resume', '--summary'], '--summary'],
    ] as const) {
      const r = e.run([...args]);
      assert.is(r.code, 2, args.join(' '));
      assert.match(r.stderr, `${named} ${named.includes(' and ') ? 'are' : 'is'} for a fleet run (--hosts FILE, without --emit, --list or --resume)`);
    }
    assert.is(e.run([e.recipe, '--host', 'localhost', '--yes', '--no-progress'], { 'probe-rdp': [HEALTHY] }).code, 0, '--no-progress is always fine');
    assert.equal(e.log().map((l) => l.name), ['restart-termserv', 'probe-rdp']);
  } finally {
    e.cleanup();
  }
});

sem.run();
cond.run();
resume.run();
rollback.run();
emit.run();
fleet.run();
