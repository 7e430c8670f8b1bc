import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshenBundles, listRecipes, loadRecipe, parseRecipe, RecipeError, scriptArgv, stepArgs } from '../../scripts/lib/recipe.ts';

const SCRIPTS = ['inspect-server', 'restart-termserv', 'probe-rdp', 'toggle-nla'];
const GOOD = `name: demo
summary: a demo
fixes: [certificate-key-unusable]
params:
  layer:
    description: the layer
    default: negotiate
steps:
  - id: restart
    name: Restart
    run: restart-termserv
    on: server
  - name: Probe
    check: probe-rdp
    args: ['{host}', '--layer', '{layer}']
    stop_when: healthy
  - name: Only if not healthy
    run: toggle-nla
    on: server
    when: { step: restart, is: [changed] }
`;

const shipped = suite('shipped recipes');

shipped('every shipped recipe loads and validates', () => {
  const names = listRecipes();
  for (const n of ['azure-vm-cert', 'renew-rdp-cert', 'security-layer', 'nla-mismatch', 'vpn-mtu', 'unstable-network', 'service-down']) {
    assert.ok(names.includes(n), `ships ${n}`);
  }
  for (const n of names) {
    const r = loadRecipe(n);
    assert.is(r.name, n);
    assert.ok(r.steps.length > 0);
  }
});

shipped('an unknown recipe name lists the real ones', () => {
  assert.throws(() => loadRecipe('nope'), /unknown recipe "nope"; expected one of .*azure-vm-cert/);
});

// ---

const parse = suite('parseRecipe');

parse('a valid recipe becomes typed steps with lines, defaults and placeholders', () => {
  const r = parseRecipe(GOOD, 'recipes/demo.yaml', SCRIPTS);
  assert.equal(r.steps.map((s) => [s.id, s.kind, s.script, s.on, s.line]), [
    ['restart', 'run', 'restart-termserv', 'server', 9],
    ['step-2', 'check', 'probe-rdp', 'client', 13],
    ['step-3', 'run', 'toggle-nla', 'server', 17],
  ]);
  assert.equal(r.steps[1]!.stopWhen, ['healthy']);
  assert.equal(r.steps[2]!.when, { step: 'restart', is: ['changed'] });
  assert.equal(stepArgs(r.steps[1]!, { host: 'vm1:3389', layer: 'tls' }), { args: ['--layer=tls'], positionals: ['vm1:3389'] });
});

parse('on_failure: continue is kept on its run step; stop, the default, adds nothing', () => {
  const go = parseRecipe(GOOD.replace('    on: server\n  - name: Probe', '    on: server\n    on_failure: continue\n  - name: Probe'), 'recipes/demo.yaml', SCRIPTS);
  assert.is(go.steps[0]!.onFailure, 'continue');
  assert.is(go.steps[2]!.onFailure, undefined);
  const stop = parseRecipe(GOOD.replace('    on: server\n  - name: Probe', '    on: server\n    on_failure: stop\n  - name: Probe'), 'recipes/demo.yaml', SCRIPTS);
  assert.not.ok('onFailure' in stop.steps[0]!);
});

parse('a value can never become an option: it is joined to its option, positionals come apart', () => {
  const r = parseRecipe(GOOD, 'recipes/demo.yaml', SCRIPTS);
  assert.equal(stepArgs(r.steps[1]!, { host: '-h', layer: '--help' }), { args: ['--layer=--help'], positionals: ['-h'] });
  const literal = { ...r.steps[2]!, args: ['disable', '--regenerate-cert', '--for', '{for}'] };
  assert.equal(stepArgs(literal, { for: '-1h' }), { args: ['disable', '--regenerate-cert', '--for=-1h'], positionals: [] });
});

// Each mistake: the edit to GOOD, and the exact "file:line: field: message" start expected.
const MISTAKES: Array<[string, (s: string) => string, RegExp]> = [
  ['broken YAML', (s) => s.replace('steps:', 'steps: [unclosed'), /^recipes\/demo\.yaml:\d+: not valid YAML/],
  ['unknown top-level field', (s) => s.replace('summary:', 'sumary:'), /^recipes\/demo\.yaml:2: sumary: unknown field; expected one of name, summary/],
  ['name not matching the file', (s) => s.replace('name: demo', 'name: other'), /^recipes\/demo\.yaml:1: name: must match the file name/],
  ['unknown cause in fixes', (s) => s.replace('[certificate-key-unusable]', '[cert-broken]'), /^recipes\/demo\.yaml:3: fixes: unknown value "cert-broken"; expected one of healthy, no-listener/],
  ['unknown script', (s) => s.replace('run: restart-termserv', 'run: restart-termservice'), /^recipes\/demo\.yaml:11: steps\[1\]\.run: unknown script "restart-termservice"; expected one of/],
  ['both run and check', (s) => s.replace('    run: restart-termserv\n', '    run: restart-termserv\n    check: probe-rdp\n'), /^recipes\/demo\.yaml:9: steps\[1\]\.run: expected exactly one of run/],
  ['a run step without on', (s) => s.replace('    on: server\n  - name: Probe', '  - name: Probe'), /^recipes\/demo\.yaml:9: steps\[1\]\.on: missing; expected server or client/],
  ['a bad on value', (s) => s.replace('on: server\n  - name: Probe', 'on: serv\n  - name: Probe'), /^recipes\/demo\.yaml:12: steps\[1\]\.on: expected server or client, got "serv"/],
  ['unknown placeholder', (s) => s.replace('{layer}', '{layr}'), /^recipes\/demo\.yaml:15: steps\[2\]\.args: unknown placeholder \{layr\}/],
  ['unknown step field', (s) => s.replace('stop_when: healthy', 'stop-when: healthy'), /^recipes\/demo\.yaml:16: steps\[2\]\.stop-when: unknown field/],
  ['unknown outcome', (s) => s.replace('stop_when: healthy', 'stop_when: fine'), /^recipes\/demo\.yaml:16: steps\[2\]\.stop_when: unknown value "fine"/],
  ['when on a later or unknown step', (s) => s.replace('step: restart', 'step: later'), /^recipes\/demo\.yaml:20: steps\[3\]\.when\.step: no earlier step has id "later"/],
  ['duplicate id', (s) => s.replace('  - name: Probe', '  - id: restart\n    name: Probe'), /^recipes\/demo\.yaml:13: steps\[2\]\.id: duplicate id "restart"/],
  ['missing step name', (s) => s.replace('    name: Restart\n', ''), /^recipes\/demo\.yaml:9: steps\[1\]\.name: missing; expected a string/],
  ['empty steps', (s) => s.replace(/steps:[\s\S]*/, 'steps: []\n'), /^recipes\/demo\.yaml:8: steps: expected a non-empty list of steps/],
  ['bad platform', (s) => s.replace('    on: server\n    when', '    on: server\n    platform: windows\n    when'), /^recipes\/demo\.yaml:20: steps\[3\]\.platform: expected win32, linux or darwin/],
  ['{host} in a server step', (s) => s.replace("    on: server\n  - name: Probe", "    on: server\n    args: ['{host}']\n  - name: Probe"), /^recipes\/demo\.yaml:13: steps\[1\]\.args: \{host\} is for client steps/],
  ['an option and its value in one item', (s) => s.replace("'--layer', '{layer}'", "'--layer={layer}'"), /^recipes\/demo\.yaml:15: steps\[2\]\.args: write "--layer" and its value as two items/],
  ['a default outside the declared values', (s) => s.replace('    default: negotiate\n', "    default: negotiate\n    values: [tls, rdp]\n"), /^recipes\/demo\.yaml:7: params\.layer\.default: "negotiate" is not one of the values tls, rdp/],
  ['a bad on_failure value', (s) => s.replace('    on: server\n  - name: Probe', '    on: server\n    on_failure: ignore\n  - name: Probe'), /^recipes\/demo\.yaml:13: steps\[1\]\.on_failure: expected stop \(the default\) or continue/],
  ['on_failure: continue on a check', (s) => s.replace('    stop_when: healthy\n', '    stop_when: healthy\n    on_failure: continue\n'), /^recipes\/demo\.yaml:17: steps\[2\]\.on_failure: only a run step can go on after failing/],
  ['param named host', (s) => s.replace('  layer:\n', '  host:\n'), /^recipes\/demo\.yaml:5: params\.host: expected a lower-case name/],
];

for (const [what, edit, expected] of MISTAKES) {
  parse(`mistake: ${what} → line-numbered error`, () => {
    try {
      parseRecipe(edit(GOOD), 'recipes/demo.yaml', SCRIPTS);
    } catch (e) {
      assert.instance(e, RecipeError);
      assert.is((e as RecipeError).exitCode, 2);
      assert.match((e as Error).message, expected);
      return;
    }
    assert.unreachable('accepted a broken recipe');
  });
}

// A recipe's steps are the user's commands: the checkout's own scripts run through the fast path
// (./rdpfix NAME, no TypeScript loader), stand-ins in RDPFIX_SCRIPTS_DIR through tsx.
const steps = suite('how steps run');
const root = fileURLToPath(new URL('../..', import.meta.url));

steps('the checkout\'s own scripts run through ./rdpfix, and answer as the script does', () => {
  const saved = process.env.RDPFIX_SCRIPTS_DIR;
  delete process.env.RDPFIX_SCRIPTS_DIR;
  try {
    const argv = scriptArgv('probe-rdp', ['--help']);
    assert.equal(argv, [join(root, 'rdpfix'), 'probe-rdp', '--help']);
    const r = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /^npx tsx scripts\/probe-rdp\.ts HOST/);
  } finally {
    if (saved !== undefined) process.env.RDPFIX_SCRIPTS_DIR = saved;
  }
});

steps('RDPFIX_SCRIPTS_DIR\'s scripts run through tsx from that folder', () => {
  const saved = process.env.RDPFIX_SCRIPTS_DIR;
  process.env.RDPFIX_SCRIPTS_DIR = '/tmp/stand-ins';
  try {
    const argv = scriptArgv('probe-rdp', ['--json', '--', 'h']);
    assert.is(argv[0], '--import');
    assert.match(argv[1]!, /tsx/);
    assert.equal(argv.slice(2), ['/tmp/stand-ins/probe-rdp.ts', '--json', '--', 'h']);
  } finally {
    if (saved === undefined) delete process.env.RDPFIX_SCRIPTS_DIR;
    else process.env.RDPFIX_SCRIPTS_DIR = saved;
  }
});

steps('before a fleet, a stale bundle of its steps is rebuilt once, up front', () => {
  const saved = process.env.RDPFIX_SCRIPTS_DIR;
  delete process.env.RDPFIX_SCRIPTS_DIR;
  const bundle = join(root, 'dist', 'test-vpn-latency.mjs');
  try {
    utimesSync(bundle, new Date(0), new Date(0));
    assert.ok(freshenBundles(['test-vpn-latency', 'test-vpn-latency']));
    assert.ok(statSync(bundle).mtimeMs > Date.now() - 120_000, 'rebuilt');
  } finally {
    if (saved !== undefined) process.env.RDPFIX_SCRIPTS_DIR = saved;
  }
});

shipped.run();
parse.run();
steps.run();
