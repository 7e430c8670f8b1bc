// probe-rdp's usage, without the lab: hostile or malformed input is bad usage (exit 2) and
// connects nowhere; a name that does not resolve is its own cause. Against xrdp and scripted peers
// in real namespaces: test/lab/probe-rdp.lab.test.ts.
// Run: npx tsx test/probe-rdp.test.ts
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));
const PROBE = join(root, 'scripts', 'probe-rdp.ts');

const cli = suite('probe-rdp: usage');
const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', PROBE, ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 });

cli('hostile or malformed input is exit 2, names the value, and connects nowhere', () => {
  for (const [args, mentions] of [
    [['10.0.0.4;reboot'], '10.0.0.4;reboot'],
    [['$(evil)'], '$(evil)'],
    [['10.0.0.4', '10.0.0.5'], 'expected one HOST'],
    [['10.0.0.4', '--tls-timeout', 'soon'], '--tls-timeout'],
    [['10.0.0.4:99999'], '99999'],
    [[], 'which host'],
  ] as const) {
    const r = run([...args]);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.ok(r.stderr.includes(mentions), `${args.join(' ')} should mention ${mentions}: ${r.stderr}`);
  }
  const j = run(['bad host', '--json']);
  assert.is(j.status, 2);
  assert.is(JSON.parse(j.stdout).exitCode, 2);
});

cli('a name that does not resolve is name-not-resolved (exit 1), not unreachable; no recipe, no connection', () => {
  // RFC 6761: .invalid never resolves, so no traffic leaves this machine.
  const r = run(['nosuch.invalid', '--json']);
  assert.is(r.status, 1, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal([doc.status, doc.cause, doc.recipe, doc.endpoint, doc.probe.connections], ['failed', 'name-not-resolved', null, 'nosuch.invalid:3389', 0]);
  assert.equal(doc.next, ['nslookup nosuch.invalid']);
  assert.is(doc.probe.dns.code, 'ENOTFOUND');
});

cli.run();
