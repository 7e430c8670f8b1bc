// lower-mtu for real in the lab: probing black-hole and ICMP-reporting paths, changing the client
// interface's MTU (read back with `ip link`), reverting it from the journal, and a large TLS flight
// to xrdp that stalls before and completes after --auto. The search on simulated answers and the
// CLI contract (no lab) are in test/lower-mtu.test.ts.
// Run: npx tsx test/lab/lower-mtu.lab.test.ts  (needs root, iptables, ping, xrdp; skips otherwise)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { JournalEntry } from '../../scripts/lib/journal.ts';
import { LAB_CLIENT, type ClientResult } from './lab-client.ts';
import { cleanupStaleLab, createTopology, type Topology } from './netns.ts';
import { labGate, labMissing } from './prereq.ts';
import { labCerts, startXrdp } from './xrdp.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(root, 'scripts', 'lower-mtu.ts');

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
