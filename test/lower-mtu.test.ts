// lower-mtu without the lab: the path-MTU search (exactness, probe budget, loss tolerance) on
// simulated answers, and the CLI contract (validation, --emit). For real in the lab (probing,
// changing and reverting the client interface's MTU, the large TLS flight to xrdp):
// test/lab/lower-mtu.lab.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mtuScript, revertMtu } from '../scripts/lower-mtu.ts';
import { list, record } from '../scripts/lib/journal.ts';
import { searchPathMtu, type ProbeAnswer, type SearchResult } from '../scripts/lib/pmtu.ts';
import { readInterfaceMtu } from '../scripts/lib/route.ts';
import { MTU_RANGE } from '../scripts/lib/validate.ts';
import { findProgram } from '../scripts/lib/which.ts';
import { parseProblems } from './helpers/powershell.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = join(root, 'scripts', 'lower-mtu.ts');
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });

/**
 * A simulated path for the search: sizes up to `mtu` get a reply; larger ones are silent (black
 * hole) or answered by ICMP fragmentation-needed carrying `mtu`. `lose(n)` drops the n-th probe.
 */
function path(mtu: number, o: { icmp?: boolean; lose?: (n: number) => boolean; answers?: boolean } = {}) {
  let n = 0;
  return async (size: number): Promise<ProbeAnswer> => {
    const k = n++;
    if (o.answers === false || o.lose?.(k)) return { kind: 'silent' };
    if (size <= mtu) return { kind: 'reply' };
    return o.icmp ? { kind: 'too-big', mtu } : { kind: 'silent' };
  };
}
const range = { floor: 576, ceiling: 1500, retries: 1 };

// ------------------------------------------------------------ search

const search = suite('searchPathMtu (simulated answers)');

// 12 probes = 1 (interface MTU) + 10 (bisection of 576..1500) + 1 (the deciding size re-sent). Below
// 1037 the second silent answer makes the search check that the host answers the floor at all (so
// a host that blocks ICMP costs 4 probes instead of 11); that costs one probe there.
search('black hole: exact for every path MTU from 576 to 1500; ≤ 12 probes from 1037 up (every VPN MTU), ≤ 13 below', async () => {
  const worst: Array<[number, number]> = [];
  for (let mtu = 576; mtu <= 1500; mtu++) {
    const r = await searchPathMtu(path(mtu), range);
    assert.is(r.pathMtu, mtu, `path MTU ${mtu}: ${JSON.stringify(r.steps)}`);
    assert.is(r.blackhole, mtu < 1500, `black hole flag at ${mtu}`);
    worst.push([r.probes, mtu]);
  }
  const over = (limit: number, from: number, to: number) => worst.filter(([p, m]) => m >= from && m <= to && p > limit);
  assert.equal(over(12, 1037, 1500), [], 'above 12 probes');
  assert.equal(over(13, 576, 1036), [], 'above 13 probes');
});

search('the full interface MTU getting through costs one probe', async () => {
  const r = await searchPathMtu(path(1500), range);
  assert.equal([r.pathMtu, r.probes, r.blackhole], [1500, 1, false]);
});

search('ICMP fragmentation-needed with the hop MTU: two probes, not a black hole', async () => {
  const r = await searchPathMtu(path(1420, { icmp: true }), range);
  assert.equal([r.pathMtu, r.probes, r.blackhole], [1420, 2, false]);
  assert.equal(r.steps, [{ mtu: 1500, answer: 'too-big', hint: 1420 }, { mtu: 1420, answer: 'reply' }]);
});

search('a too-big without a usable MTU (0 from old routers, or larger than the probe) is still bisected exactly', async () => {
  for (const bogus of [0, 1600, 100]) {
    let n = 0;
    const r = await searchPathMtu(async (size) => (n++, size <= 1380 ? { kind: 'reply' } : { kind: 'too-big', mtu: bogus }), range);
    assert.is(r.pathMtu, 1380, `hint ${bogus}`);
    assert.is(r.blackhole, false);
  }
});

search('one lost packet anywhere never changes the answer (each probe position, several MTUs)', async () => {
  for (const mtu of [576, 577, 1000, 1399, 1400, 1401, 1499]) {
    const clean = await searchPathMtu(path(mtu), range);
    for (let k = 0; k < clean.probes + 4; k++) {
      const r: SearchResult = await searchPathMtu(path(mtu, { lose: (n) => n === k }), range);
      assert.is(r.pathMtu, mtu, `MTU ${mtu}, probe #${k} lost: ${JSON.stringify(r.steps)}`);
    }
  }
});

search('without retries a loss at the boundary would be taken for "too big" (why retries exist)', async () => {
  const clean = await searchPathMtu(path(1400), range);
  // The reply at 1400 itself lost, and no second chance for the deciding size.
  const at1400 = clean.steps.findIndex((s) => s.mtu === 1400);
  const r = await searchPathMtu(path(1400, { lose: (n) => n === at1400 }), { ...range, retries: 0 });
  assert.is(r.pathMtu, 1399);
  const ok = await searchPathMtu(path(1400, { lose: (n) => n === at1400 }), range);
  assert.is(ok.pathMtu, 1400);
});

search('a host that answers no ping at all: null after a handful of probes, not a full bisection', async () => {
  const r = await searchPathMtu(path(1400, { answers: false }), range);
  assert.is(r.pathMtu, null);
  assert.is(r.blackhole, null);
  assert.ok(r.probes <= 5, `${r.probes} probes: ${JSON.stringify(r.steps)}`);
  assert.ok(r.steps.some((s) => s.mtu === 576), 'tried the floor');
});

search('an error from ping stops the search and is reported', async () => {
  const r = await searchPathMtu(async () => ({ kind: 'error', detail: 'ping: socket: Operation not permitted' }), range);
  assert.is(r.pathMtu, null);
  assert.is(r.error, 'ping: socket: Operation not permitted');
});

search.run();

// ------------------------------------------------------------ CLI without the lab

const usage = suite('lower-mtu CLI: validation and --emit');

usage('MTU values outside 576..9000 are refused by name, exit 2, nothing run', () => {
  for (const bad of ['100', '575', '9001', '1400; reboot', '14e2']) {
    const r = cli(['--interface', 'lo', '--mtu', bad, '--dry-run']);
    assert.is(r.status, 2, `${bad}: ${r.stdout}${r.stderr}`);
    assert.ok(r.stderr.includes(JSON.stringify(bad)), r.stderr);
  }
});

usage('hostile interface names and hosts are refused (exit 2, the value named)', () => {
  for (const bad of ['eth0; rm -rf /', '$(reboot)', 'a/b', 'name-longer-than-15']) {
    const r = cli(['--interface', bad, '--mtu', '1400', '--dry-run']);
    assert.is(r.status, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /invalid interface/);
  }
  const h = cli(['--probe', 'host;id']);
  assert.is(h.status, 2, h.stderr);
  assert.match(h.stderr, /invalid host "host;id"/);
});

usage('an interface that does not exist is named, with the ones that do (exit 2)', () => {
  const r = cli(['--interface', 'nosuch0', '--mtu', '1400', '--dry-run']);
  assert.is(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /interface "nosuch0" does not exist/);
  assert.match(r.stderr, /available: .*\blo\b/);
});

usage('a numeric host form is refused with the dotted address to write, as diagnose refuses it', () => {
  const r = cli(['--probe', '0x7f000001']);
  assert.is(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /invalid host "0x7f000001": a numeric IPv4 form .* write it in dotted decimal: 127\.0\.0\.1/);
});

usage('--auto --probe 127.0.0.1 accepts the loopback MTU it found: nothing to lower, exit 0; the probed host is "host"', () => {
  if (!findProgram('ping', ['/usr/bin', '/bin'])) assert.unreachable('ping is needed (iputils-ping)');
  const jdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
  try {
    const r = cli(['--auto', '--probe', '127.0.0.1', '--dry-run', '--json', '--journal', jdir]);
    assert.is(r.status, 0, r.stdout + r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.is(doc.status, 'ok');
    assert.is(doc.host, '127.0.0.1');
    assert.not.ok('target' in doc, '`target` is the channel everywhere; the probed host is `host`');
    assert.ok((doc.pathMtu as number) <= 65535 && (doc.ceiling as number) <= 65535, JSON.stringify(doc));
    assert.match(doc.message as string, /^nothing to lower/);
  } finally {
    rmSync(jdir, { recursive: true, force: true });
  }
});

usage('--revert validates what the journal says before using it (a hostile interface never reaches ip)', async () => {
  const jdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
  try {
    const id = '20250101-000000000-lower-mtu-abcdef';
    writeFileSync(join(jdir, `${id}.json`), JSON.stringify({
      id, time: '2025-01-01T00:00:00.000Z', runId: 'r', script: 'lower-mtu', target: 'client', summary: 'x',
      before: { interface: 'lo;reboot', mtu: 1500 }, after: { interface: 'lo;reboot', mtu: 1400 }, backup: null, undo: { kind: 'none', reason: 'x' },
    }));
    const r = await revertMtu({ journalDir: jdir, platform: 'linux' });
    assert.is(r.status, 'failed');
    assert.match(r.reverted[0]!.error!, /invalid interface "lo;reboot"/);
  } finally {
    rmSync(jdir, { recursive: true, force: true });
  }
});

usage('modes must not be mixed', () => {
  for (const args of [[], ['--probe', '10.0.0.1', '--revert'], ['--auto'], ['--mtu', '1400'], ['--auto', '--probe', '10.0.0.1', '--mtu', '1400']]) {
    assert.is(cli(args).status, 2, args.join(' '));
  }
});

usage('--emit prints exactly the generated PowerShell; the alias only as a quoted $P value', async () => {
  const r = cli(['--emit', '--interface', "vEthernet (Default Switch)", '--mtu', '1380', '--temporary']);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, mtuScript({ interface: 'vEthernet (Default Switch)', mtu: 1380, temporary: true }));
  assert.match(r.stdout, /Interface = 'vEthernet \(Default Switch\)'/);
  assert.match(r.stdout, /Store = 'active'/);
  assert.equal(await parseProblems(r.stdout), []);
  // netsh gets the index, then the value is read back.
  assert.match(r.stdout, /Invoke-RdpNative -FilePath 'netsh\.exe' -ArgumentList @\('interface', 'ipv4', 'set', 'subinterface', \[string\]\$result\.interfaceIndex, \('mtu=\{0\}' -f \$Mtu\), \('store=\{0\}' -f \$Store\)\)/);
  assert.match(r.stdout, /\$after = \[long\]\(Get-RdpIPInterface -Alias \$Interface\)\.NlMtu/);
  const bad = cli(['--emit', '--interface', "Ethernet'; Remove-Item C:\\ -Recurse; '", '--mtu', '1400']);
  assert.is(bad.status, 2);
  assert.is(bad.stdout, '');
});

usage('the MTU range scripts/ps/lower-mtu.ps1 accepts is MTU_RANGE.found[4] (the literal there follows validate.ts)', () => {
  const ps1 = readFileSync(join(root, 'scripts', 'ps', 'lower-mtu.ps1'), 'utf8');
  const m = /\[ValidateRange\((\d+), (\d+)\)\]\[int\]\$Mtu/.exec(ps1);
  assert.ok(m, 'Set-RdpInterfaceMtu validates $Mtu');
  assert.equal([Number(m![1]), Number(m![2])], [...MTU_RANGE.found[4]]);
});

usage('--emit --dry-run gates the change with -WhatIf', () => {
  const r = cli(['--emit', '--interface', 'Ethernet 2', '--mtu', '1400', '--dry-run']);
  assert.match(r.stdout, /DryRun = \$true/);
  assert.match(r.stdout, /-WhatIf:\$P\.DryRun/);
  assert.match(r.stdout, /ShouldProcess/);
});

usage.run();

// ------------------------------------------------------------ --revert through lib/undo.ts

// --revert undoes each interface's open entries newest first through lib/undo.ts (allow-list,
// the recorded command, the MTU read back, marking); a fake exec stands in for `ip`, the real
// loopback's MTU is what "already back" compares with. This file's seal key, not ~/.rdpfix's.
const keyDir = mkdtempSync(join(tmpdir(), 'rdpfix-mtu-key-'));
process.env.RDPFIX_JOURNAL_KEY = join(keyDir, 'journal.key');
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));

const revert = suite('lower-mtu --revert: the journal entries, undone as undo ID would');
let jd = '';
revert.before.each(() => {
  jd = mkdtempSync(join(tmpdir(), 'rdpfix-revert-'));
});
revert.after.each(() => rmSync(jd, { recursive: true, force: true }));

const mtuEntry = (iface: string, before: number, after: number, argv = ['ip', 'link', 'set', 'dev', iface, 'mtu', String(before)]) =>
  record({ script: 'lower-mtu', target: 'client', summary: `MTU of ${iface}: ${before} -> ${after}`, before: { interface: iface, mtu: before }, after: { interface: iface, mtu: after }, backup: null, undo: { kind: 'command', argv } }, jd);

/** A fake `ip`: `ip link set` exits 0 and sets the MTU it reports; `ip link show` reports it. */
function fakeIp(start: number, stuck = false) {
  const calls: string[][] = [];
  let mtu = start;
  const exec = async (argv: string[]) => {
    calls.push(argv);
    if (argv[2] === 'show') return { code: 0, stdout: `1: ${argv[4]}: <LOOPBACK,UP> mtu ${mtu} qdisc noqueue state UNKNOWN\n`, stderr: '' };
    if (!stuck) mtu = Number(argv[6]);
    return { code: 0, stdout: '', stderr: '' };
  };
  return { exec, calls };
}

function contract(r: Record<string, unknown>, what: string) {
  assert.ok(['ok', 'changed', 'would-change', 'failed', 'skipped'].includes(r.status as string), `${what}: status`);
  assert.ok(typeof r.summary === 'string' && r.summary && !/[\r\n]/.test(r.summary), `${what}: summary`);
  assert.is(r.cause, null, `${what}: cause`);
  for (const k of ['evidence', 'next', 'notes']) assert.ok(Array.isArray(r[k]) && (r[k] as unknown[]).every((x) => typeof x === 'string'), `${what}: ${k}`);
  assert.ok(Array.isArray(r.changes) && (r.changes as Array<{ summary?: unknown }>).every((c) => typeof c.summary === 'string'), `${what}: changes`);
}

revert('two changes of one interface: both recorded undos, newest first, each read back; both marked; the journal holds only them', async () => {
  const older = await mtuEntry('lo', 1500, 1400);
  const newer = await mtuEntry('lo', 1400, 1300);
  const ip = fakeIp(1300);
  const r = await revertMtu({ journalDir: jd, platform: 'linux', exec: ip.exec });
  assert.is(r.status, 'changed', r.message);
  assert.equal(ip.calls, [
    ['ip', 'link', 'set', 'dev', 'lo', 'mtu', '1400'], ['ip', 'link', 'show', 'dev', 'lo'],
    ['ip', 'link', 'set', 'dev', 'lo', 'mtu', '1500'], ['ip', 'link', 'show', 'dev', 'lo'],
  ]);
  assert.equal(r.reverted.map((x) => [x.interface, x.to, x.entries]), [['lo', 1500, [newer.id, older.id]]]);
  assert.equal(r.reverted[0]!.results.map((x) => x.status), ['changed', 'changed']);
  const all = await list(jd);
  assert.equal(all.map((e) => [e.script, e.undone?.status]), [['lower-mtu', 'changed'], ['lower-mtu', 'changed']]);
  assert.match(all[0]!.undone!.detail!, /reads MTU 1500; undone by lower-mtu --revert$/);
  assert.equal(r.changes.map((c) => c.summary), [`MTU of lo: ${r.reverted[0]!.from} -> 1500`]);
  contract(r as unknown as Record<string, unknown>, 'changed');
});

revert('the interface already has the value before the first change: nothing runs, the entries are marked ok', async () => {
  const now = (await readInterfaceMtu('lo', 'linux')).mtu!;
  await mtuEntry('lo', now, 1400);
  const ip = fakeIp(now);
  const r = await revertMtu({ journalDir: jd, platform: 'linux', exec: ip.exec });
  assert.is(r.status, 'ok', r.message);
  assert.equal(ip.calls, []);
  const [e] = await list(jd);
  assert.equal([e!.undone?.status, e!.undone?.detail], ['ok', `lo already has MTU ${now}; undone by lower-mtu --revert`]);
});

revert('--dry-run checks the allow-list only: would-change, nothing run, nothing marked', async () => {
  await mtuEntry('lo', 1500, 1400);
  const ip = fakeIp(1400);
  const r = await revertMtu({ journalDir: jd, platform: 'linux', exec: ip.exec, dryRun: true });
  assert.is(r.status, 'would-change', r.message);
  assert.is(r.dryRun, true);
  assert.equal(ip.calls, []);
  assert.equal((await list(jd)).map((e) => e.undone), [undefined]);
  assert.is(r.changes.length, 1, 'the change it would make');
  contract(r as unknown as Record<string, unknown>, 'dry run');
});

revert('an undo outside the allow-list, or one that changes another interface than recorded, is refused: nothing runs, nothing marked', async () => {
  await mtuEntry('lo', 1500, 1400, ['ip', 'link', 'set', 'dev', 'lo', 'mtu', '1500', 'up']);
  let ip = fakeIp(1400);
  let r = await revertMtu({ journalDir: jd, platform: 'linux', exec: ip.exec });
  assert.is(r.status, 'failed');
  assert.match(r.reverted[0]!.error!, /refused, nothing run: .* is not one of the MTU commands rdpfix records/);
  assert.equal(ip.calls, []);
  assert.equal(r.next, [], 'a refusal is not retried');
  rmSync(jd, { recursive: true, force: true });
  await mtuEntry('lo', 1500, 1400, ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1500']);
  ip = fakeIp(1400);
  r = await revertMtu({ journalDir: jd, platform: 'linux', exec: ip.exec });
  assert.is(r.status, 'failed');
  assert.match(r.reverted[0]!.error!, /records lo, but its undo changes eth0: nothing run/);
  assert.equal(ip.calls, []);
  assert.equal((await list(jd)).map((e) => e.undone), [undefined]);
});

revert('a read-back that disagrees fails, stops before the older entry, leaves both open and names the retry', async () => {
  await mtuEntry('lo', 1500, 1400);
  await mtuEntry('lo', 1400, 1300);
  const ip = fakeIp(1300, true);
  const r = await revertMtu({ journalDir: jd, platform: 'linux', exec: ip.exec });
  assert.is(r.status, 'failed');
  assert.equal(r.reverted[0]!.results.map((x) => x.status), ['failed', 'skipped']);
  assert.is(ip.calls.length, 2, 'the older undo was not attempted');
  assert.equal((await list(jd)).map((e) => e.undone), [undefined, undefined]);
  assert.equal(r.next, [`npx tsx scripts/lower-mtu.ts --revert --interface lo --journal ${jd}`]);
});

revert('CLI: nothing to revert is ok with the reason and why there is no fallback; a dry-run set is one contract document', () => {
  let r = cli(['--revert', '--json', '--journal', jd]);
  assert.is(r.status, 0, r.stderr);
  let doc = JSON.parse(r.stdout) as Record<string, unknown>;
  contract(doc, 'nothing to revert');
  assert.match(String(doc.message), /^nothing to revert/);
  assert.ok((doc.notes as string[]).some((n) => /without a journal entry there is nothing to put back/.test(n)));
  r = cli(['--interface', 'lo', '--mtu', '1400', '--dry-run', '--json', '--journal', jd]);
  assert.is(r.status, 0, r.stderr);
  doc = JSON.parse(r.stdout) as Record<string, unknown>;
  contract(doc, 'set --dry-run');
  assert.is(doc.status, 'would-change');
  assert.match(String(doc.summary), /^would set MTU of lo from \d+ to 1400/);
  assert.equal((doc.changes as Array<{ summary: string }>).map((c) => c.summary), [`MTU of lo: ${doc.before} -> 1400`]);
});

revert.run();
