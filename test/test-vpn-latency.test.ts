// test-vpn-latency's CLI contract, without the lab: bad hosts, counts, thresholds and options are
// bad usage; a name that does not resolve is name-not-resolved; --help. For real in the lab (route
// naming, exact loss accounting, Ctrl-C): test/lab/test-vpn-latency.lab.test.ts.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { LatencyReport } from '../scripts/test-vpn-latency.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = join(root, 'scripts', 'test-vpn-latency.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

// ------------------------------------------------------------ CLI

const usage = suite('test-vpn-latency CLI');

usage('bad hosts, counts and unknown options are usage errors (exit 2), nothing sent', () => {
  for (const args of [[], ['a', 'b'], ['host;id'], ['10.0.0.1:99999'], ['10.0.0.1', '--count', '0'], ['10.0.0.1', '--timeout', '10'], ['10.0.0.1', '--bogus'], ['10.0.0.1', '--poor-loss', '200']]) {
    const r = cli(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  assert.match(cli(['host;id']).stderr, /invalid host "host;id"/);
});

usage('inverted RTT thresholds are bad usage (exit 2) naming both values', () => {
  const r = cli(['10.0.0.1', '--good-rtt', '500', '--poor-rtt', '100']);
  assert.is(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /--good-rtt 500 is above --poor-rtt 100/);
  const j = cli(['10.0.0.1', '--good-rtt', '500', '--poor-rtt', '100', '--json']);
  assert.is(JSON.parse(j.stdout).exitCode, 2);
});

usage('a name that does not resolve is name-not-resolved (exit 1), as diagnose says, and nothing is sampled', () => {
  // RFC 6761: .invalid never resolves; no traffic leaves this machine.
  const r = cli(['nosuch.invalid', '--json']);
  assert.is(r.status, 1, r.stderr);
  const doc = JSON.parse(r.stdout) as LatencyReport;
  assert.equal([doc.status, doc.verdict, doc.problem?.cause, doc.rounds, doc.endpoint, doc.address], ['failed', 'name-not-resolved', 'name-not-resolved', 0, 'nosuch.invalid:3389', null]);
  assert.ok(doc.next.includes('npx tsx scripts/diagnose.ts nosuch.invalid:3389'), doc.next.join('\n'));
  assert.match(cli(['nosuch.invalid']).stdout, /^NAME-NOT-RESOLVED — nosuch\.invalid:3389: the name nosuch\.invalid does not exist/);
});

usage('--help shows the three methods and the options', () => {
  const r = cli(['--help']);
  assert.is(r.status, 0);
  for (const s of ['--count', '--interval', '--timeout', '--json', 'X.224', 'ICMP', 'Ctrl-C']) assert.ok(r.stdout.includes(s), s);
});

usage.run();
