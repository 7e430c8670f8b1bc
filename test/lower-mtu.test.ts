// lower-mtu: the path-MTU search (exactness, probe budget, loss tolerance) on simulated answers, the
// CLI contract (validation, --emit), and for real in the lab: probing black-hole and ICMP-reporting
// paths, changing the client interface's MTU (read back with `ip link`), reverting it from the
// journal, and a large TLS flight to xrdp that stalls before and completes after --auto.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mtuScript, revertMtu } from '../scripts/lower-mtu.ts';
import { searchPathMtu, type ProbeAnswer, type SearchResult } from '../scripts/lib/pmtu.ts';
import { MTU_RANGE } from '../scripts/lib/validate.ts';
import { findProgram } from '../scripts/lib/which.ts';
import type { JournalEntry } from '../scripts/lib/journal.ts';
import { parseProblems } from './helpers/powershell.ts';
import { LAB_CLIENT, type ClientResult } from './lab/lab-client.ts';
import { cleanupStaleLab, createTopology, type Topology } from './lab/netns.ts';
import { labGate, labMissing } from './lab/prereq.ts';
import { labCerts, startXrdp } from './lab/xrdp.ts';

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

// ------------------------------------------------------------ lab

if (labMissing(['root', 'netns']).length === 0) cleanupStaleLab();

interface ProbeJson {
  status: string;
  pathMtu: number | null;
  probes: number;
  interface: string | null;
  interfaceMtu: number | null;
  blackhole: boolean | null;
  host: string;
  change?: { status: string; before: number; after: number; journal: string } | null;
}

async function withTopology<T>(opts: Parameters<typeof createTopology>[0], fn: (t: Topology) => Promise<T>): Promise<T> {
  const topo = await createTopology(opts);
  try {
    return await fn(topo);
  } finally {
    await topo.destroy();
  }
}

/** Run lower-mtu inside the client namespace; --json output parsed. */
async function inClient(topo: Topology, args: string[]): Promise<{ code: number | null; doc: Record<string, unknown>; stderr: string }> {
  const r = await topo.runNode('client', [SCRIPT, ...args, '--json'], { timeoutMs: 90_000 });
  let doc: Record<string, unknown> = {};
  try {
    doc = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  } catch {
    assert.unreachable(`not one JSON document (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.exitCode, doc, stderr: r.stderr };
}

const tls = (topo: Topology) =>
  topo.call<ClientResult[]>('client', LAB_CLIENT, 'labConnectAll', [[{ addr: topo.server.addr, port: 3389, tls: true, tlsTimeoutMs: 3000 }]]).then((r) => r[0]!);

const probeLab = suite('lab: --probe');
if (labGate('lab: --probe', ['root', 'netns', 'iptables', 'ping'])) {
  probeLab('black holes at 1400 and 1337 are found exactly (≤ 12 probes); an ICMP-reporting 1420 path exactly, as no black hole', async () => {
    const cases = [
      { pathMtu: 1400, pmtuBlackhole: true },
      { pathMtu: 1337, pmtuBlackhole: true },
      { pathMtu: 1420, pmtuBlackhole: false },
    ];
    // Three independent topologies at once: each black-hole probe waits out a few 1 s timeouts.
    const results = await Promise.all(cases.map((c) => withTopology({ kind: 'routed', ...c }, async (topo) => {
      const r = await inClient(topo, ['--probe', topo.server.addr]);
      return { ...r, ifname: topo.client.ifname, addr: topo.server.addr };
    })));
    for (const [i, c] of cases.entries()) {
      const { code, doc, ifname, addr } = results[i]!;
      const d = doc as unknown as ProbeJson;
      assert.is(d.pathMtu, c.pathMtu, JSON.stringify(doc));
      assert.is(d.host, addr);
      assert.is(d.interface, ifname);
      assert.is(d.interfaceMtu, 1500);
      assert.is(d.blackhole, c.pmtuBlackhole);
      // Exit 1 = problem found (a black hole), 0 = the path copes by itself.
      assert.is(code, c.pmtuBlackhole ? 1 : 0);
      assert.is(d.status, c.pmtuBlackhole ? 'failed' : 'ok');
      // Deterministic in a lossless lab (the bench reports the numbers; this is the budget).
      assert.ok(d.probes <= (c.pmtuBlackhole ? 12 : 2), `${d.probes} probes for ${c.pathMtu}`);
    }
  });
}
probeLab.run();

const setLab = suite('lab: --interface --mtu, --revert');
if (labGate('lab: set/revert', ['root', 'netns', 'ping'])) {
  setLab('changes the client interface (read back with ip link), is idempotent, dry-run changes nothing, --revert restores', async () => {
    const jdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
    try {
      await withTopology({ kind: 'routed' }, async (topo) => {
        const IF = topo.client.ifname;
        const j = ['--journal', jdir];

        const dry = await inClient(topo, ['--interface', IF, '--mtu', '1400', '--dry-run', ...j]);
        assert.is(dry.doc.status, 'would-change', JSON.stringify(dry.doc));
        assert.is(await topo.getMtu('client'), 1500, 'dry run changed nothing');
        assert.equal(readdirSync(jdir), [], 'dry run journaled nothing');

        const set = await inClient(topo, ['--interface', IF, '--mtu', '1400', ...j]);
        assert.is(set.code, 0, set.stderr);
        assert.equal([set.doc.status, set.doc.before, set.doc.after], ['changed', 1500, 1400]);
        assert.is(await topo.getMtu('client'), 1400);

        const entries = readdirSync(jdir).map((f) => JSON.parse(readFileSync(join(jdir, f), 'utf8')) as JournalEntry);
        assert.is(entries.length, 1);
        assert.equal(entries[0]!.undo, { kind: 'command', argv: ['ip', 'link', 'set', 'dev', IF, 'mtu', '1500'] });
        assert.equal(entries[0]!.before, { interface: IF, mtu: 1500 });
        assert.is(entries[0]!.script, 'lower-mtu');

        const again = await inClient(topo, ['--interface', IF, '--mtu', '1400', ...j]);
        assert.is(again.doc.status, 'ok', 'second run: nothing to do');
        assert.is(readdirSync(jdir).length, 1, 'and nothing journaled');

        // A second, further change; --revert goes back to the value before the first one.
        await inClient(topo, ['--interface', IF, '--mtu', '1300', ...j]);
        assert.is(await topo.getMtu('client'), 1300);

        const dryRevert = await inClient(topo, ['--revert', '--dry-run', ...j]);
        assert.is(dryRevert.doc.status, 'would-change');
        assert.is(await topo.getMtu('client'), 1300);

        const rev = await inClient(topo, ['--revert', ...j]);
        assert.is(rev.doc.status, 'changed', JSON.stringify(rev.doc));
        assert.is(await topo.getMtu('client'), 1500);
        const undone = readdirSync(jdir).map((f) => JSON.parse(readFileSync(join(jdir, f), 'utf8')) as JournalEntry);
        assert.ok(undone.every((e) => e.undone?.status === 'changed'), 'entries marked undone');

        const nothing = await inClient(topo, ['--revert', ...j]);
        assert.is(nothing.doc.status, 'ok');
        assert.match(String(nothing.doc.message), /nothing to revert/);

        const missing = await inClient(topo, ['--interface', 'wg9', '--mtu', '1400', ...j]);
        assert.is(missing.code, 2);
        assert.match(String(missing.doc.error), /interface "wg9" does not exist/);
        assert.match(String(missing.doc.hint), new RegExp(`available: .*${IF}`));
      });
    } finally {
      rmSync(jdir, { recursive: true, force: true });
    }
  });
}
setLab.run();

const tlsLab = suite('lab: --auto fixes the large TLS flight');
if (labGate('lab: --auto + xrdp', ['root', 'netns', 'iptables', 'ping', 'xrdp', 'openssl'])) {
  tlsLab('behind a 1400 black hole the xrdp TLS handshake stalls; after --auto it completes; --revert restores 1500', async () => {
    const certs = await labCerts();
    const jdir = mkdtempSync(join(tmpdir(), 'rdpfix-journal-'));
    try {
      await withTopology({ kind: 'routed', pathMtu: 1400, pmtuBlackhole: true }, async (topo) => {
        await startXrdp(topo, { cert: certs.large });
        const before = await tls(topo);
        assert.is(before.neg?.type, 'response', 'the small X.224 exchange works');
        assert.ok(before.tls?.timedOut, `stalled before: ${JSON.stringify(before.tls)}`);

        const auto = await inClient(topo, ['--auto', '--probe', topo.server.addr, '--journal', jdir]);
        const d = auto.doc as unknown as ProbeJson;
        assert.is(auto.code, 0, JSON.stringify(auto.doc) + auto.stderr);
        assert.is(d.status, 'changed');
        assert.is(d.pathMtu, 1400);
        assert.equal([d.change?.before, d.change?.after], [1500, 1400]);
        assert.is(await topo.getMtu('client'), 1400);

        const after = await tls(topo);
        assert.ok(after.tls?.ok, `completes after: ${JSON.stringify(after.tls)}`);
        assert.ok((after.tls?.certBytes ?? 0) > 6000, 'the large certificate came through');

        // Probing again from the lowered interface: the path now carries the full interface MTU.
        const again = await inClient(topo, ['--auto', '--probe', topo.server.addr, '--journal', jdir]);
        assert.is(again.doc.status, 'ok', JSON.stringify(again.doc));

        const rev = await inClient(topo, ['--revert', '--journal', jdir]);
        assert.is(rev.doc.status, 'changed');
        assert.is(await topo.getMtu('client'), 1500);
      });
    } finally {
      rmSync(jdir, { recursive: true, force: true });
    }
  });
}
tlsLab.run();
