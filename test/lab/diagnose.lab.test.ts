// diagnose against real servers and real networks in the lab: every row of the cause table
// (xrdp in each configuration, nothing listening, SYNs dropped, a PMTU black hole and the same path
// without it, random loss on the router, socat that closes at once, non-RDP services, scripted
// failure codes and alerts); a server whose listen queue overflows (not a lossy path); fleet mode (--hosts/--parallel, one JSON object per line, a slow host
// holds up no other); the CLI contract (JSON fields, exit codes, default target, npm start).
// The unit tests (the connect sample) are in test/diagnose.test.ts.
// Run: npx tsx test/lab/diagnose.lab.test.ts  (needs root, xrdp, socat, iptables; skips otherwise)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DiagnoseOptions, DiagnoseReport } from '../../scripts/diagnose.ts';
import { recipeFor } from '../../scripts/lib/causes.ts';
import { startBusyServer } from './rdp-responder.ts';
import { createFleet, FLEET_EXPECT } from './fleet.ts';
import { cleanupStaleLab, createTopology, type Topology } from './netns.ts';
import { startPeers, startSocatCloser } from './peers.ts';
import { labGate, labMissing } from './prereq.ts';
import { RDPFIX_CALLS } from './rdpfix-calls.ts';
import { negFailure } from './rdp-bytes.ts';
import { labCerts, startXrdp } from './xrdp.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const DIAGNOSE = join(root, 'scripts', 'diagnose.ts');
const START = join(root, 'scripts', 'start.ts');

async function bounded<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([fn(), new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: over ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

async function withTopology<T>(opts: Parameters<typeof createTopology>[0], fn: (t: Topology) => Promise<T>): Promise<T> {
  const topo = await createTopology(opts);
  try {
    return await fn(topo);
  } finally {
    await topo.destroy();
  }
}

const diagnoseAll = (topo: Topology, list: { host: string; port: number; opts?: DiagnoseOptions }[]) =>
  topo.call<DiagnoseReport[]>('client', RDPFIX_CALLS, 'diagnoseAll', [list], { timeoutMs: 90_000 });
const show = (r: DiagnoseReport) => JSON.stringify({ cause: r.cause, summary: r.summary, evidence: r.evidence }, null, 1);

/** The shape the issue asks for, on every report. */
function assertShape(r: DiagnoseReport): void {
  assert.match(r.endpoint, /^[^:]+:\d+$/);
  assert.ok(!('target' in r), '`target` means the channel; the RDP host is `endpoint`');
  assert.ok(Array.isArray(r.next) && Array.isArray(r.notes));
  assert.ok(r.confidence >= 0 && r.confidence <= 1);
  assert.ok(Array.isArray(r.evidence) && r.evidence.length > 0);
  assert.is(r.recipe, recipeFor(r.cause));
  assert.is(r.status, r.cause === 'healthy' ? 'ok' : 'failed');
  assert.type(r.probe, 'object');
  assert.type(r.network, 'object');
  assert.ok(r.probe.connections <= 5);
}

if (labMissing(['root', 'netns']).length === 0) cleanupStaleLab();

// ---

const table = suite('diagnose: every row of the cause table, against xrdp and real networks');

if (labGate('diagnose: cause table (direct)', ['root', 'netns', 'iptables', 'xrdp', 'openssl', 'socat'])) {
  table('xrdp configurations, nothing listening, SYNs dropped, socat, non-RDP services, scripted failures', () =>
    bounded(60_000, 'table', async () => {
      const certs = await labCerts();
      await withTopology({ kind: 'direct', dropSynPorts: [3500] }, async (topo) => {
        await Promise.all([
          startXrdp(topo, { port: 3389, cert: certs.valid }),
          startXrdp(topo, { port: 3390, securityLayer: 'tls', cert: certs.valid }),
          startXrdp(topo, { port: 3391, securityLayer: 'rdp', cert: certs.valid }),
          startXrdp(topo, { port: 3392, cert: certs.mismatched }),
          startXrdp(topo, { port: 3393, cert: certs.expired }),
          startXrdp(topo, { port: 3394, securityLayer: 'tls', cert: certs.missing }),
          startXrdp(topo, { port: 3396, securityLayer: 'tls', cert: certs.valid, sslProtocols: 'TLSv1' }),
          startPeers(topo, [
            { mode: 'stall', port: 3500 }, // behind the SYN drop
            { mode: 'banner', port: 4003 }, { mode: 'http', port: 4004 }, { mode: 'tls-alert', port: 4005 },
            { mode: 'tls-reset', port: 4007 }, { mode: 'stall', port: 4010 }, { mode: 'http-line', port: 4014 },
            ...[2, 3, 5, 6].map((code) => ({ mode: 'reply' as const, port: 4100 + code, hex: negFailure(code).toString('hex') })),
          ]),
          startSocatCloser(topo, 4020),
        ]);
        const want: [number, string, string][] = [
          [3389, 'healthy', 'xrdp, valid certificate'],
          [3390, 'healthy', 'xrdp security_layer=tls'],
          [3391, 'security-layer-mismatch', 'xrdp security_layer=rdp'],
          [3392, 'certificate-key-unusable', 'certificate and key do not match'],
          [3393, 'certificate-expired', 'expired certificate'],
          [3394, 'certificate-key-unusable', 'security_layer=tls, certificate missing (failure code 3)'],
          [3396, 'tls-version-mismatch', 'TLS 1.0 only'],
          [3399, 'no-listener', 'nothing listening'],
          [3500, 'unreachable', 'SYNs dropped'],
          [4003, 'not-rdp', 'SSH on the port'],
          [4004, 'not-rdp', 'HTTP on the port'],
          [4005, 'tls-version-mismatch', 'TLS alert handshake_failure'],
          [4007, 'certificate-key-unusable', 'reset right after the ClientHello'],
          [4010, 'listener-hung', 'no answer to the X.224 request and its cookie line'],
          [4014, 'not-rdp', 'an HTTP server that answers only a complete line'],
          [4102, 'security-layer-mismatch', 'RDP_NEG_FAILURE 2'],
          [4103, 'certificate-key-unusable', 'RDP_NEG_FAILURE 3'],
          [4105, 'nla-required', 'RDP_NEG_FAILURE 5'],
          [4106, 'nla-required', 'RDP_NEG_FAILURE 6'],
          [4020, 'closed-by-server', 'socat accepts and closes'],
        ];
        const reports = await diagnoseAll(topo, want.map(([port]) => ({ host: topo.server.addr, port, opts: { x224TimeoutMs: 1500 } })));
        reports.forEach((r, i) => {
          const [port, cause, what] = want[i]!;
          assert.is(r.cause, cause, `${what} (port ${port}): ${show(r)}`);
          assertShape(r);
        });
        const healthy = reports[0]!;
        // Two probe connections (the diagnosis, then one client check for the compatibility list) and
        // nine sample connects (five more only if a busy moment made the burst lose connects and the
        // paced re-check ran).
        assert.is(healthy.connections.probe, 2, 'the diagnosis in one, one client check (CredSSP only) for the compatibility list');
        assert.ok([9, 14].includes(healthy.connections.sample), JSON.stringify(healthy.connections));
        assert.is(healthy.connections.total, healthy.connections.probe + healthy.connections.sample);
        assert.is(healthy.network.pathMtu, null, 'no path-MTU check when nothing points at the network');
        const unreachable = reports[8]!;
        assert.is(unreachable.network.sample?.answered, 0);
        // Refused: more connects cannot change the verdict, so none are made.
        const refused = reports[7]!;
        assert.equal([refused.connections.sample, refused.network.sample], [0, null], show(refused));
        assert.match(refused.network.sampleSkipped ?? '', /refused/);
        const at = (port: number) => reports[want.findIndex(([p]) => p === port)]!;
        assert.is(at(4010).recipe, 'listener-hung');
        assert.match(at(4014).summary, /HTTP\/1\.1 400/, show(at(4014)));
      });
    }));
}

if (labGate('diagnose: cause table (paths)', ['root', 'netns', 'iptables', 'xrdp', 'openssl', 'ping'])) {
  table('a router with a smaller MTU that drops "fragmentation needed" is mtu-blackhole; the same path without the black hole is healthy', () =>
    bounded(60_000, 'mtu', async () => {
      const certs = await labCerts();
      const one = (pmtuBlackhole: boolean) => withTopology({ kind: 'routed', pathMtu: 1400, pmtuBlackhole }, async (topo) => {
        await startXrdp(topo, { cert: certs.large });
        return (await diagnoseAll(topo, [{ host: topo.server.addr, port: 3389 }]))[0]!;
      });
      const [hole, fine] = await Promise.all([one(true), one(false)]);
      assert.is(hole.cause, 'mtu-blackhole', show(hole));
      assertShape(hole);
      assert.ok(hole.confidence >= 0.9, show(hole));
      assert.is(hole.recipe, 'vpn-mtu');
      assert.is(hole.probe.mssRetry?.arrived, true);
      // The path-MTU check ran (or says why it could not).
      assert.ok(hole.network.pathMtu, show(hole));
      if (hole.network.pathMtu?.status === 'done') assert.is(hole.network.pathMtu.pathMtu, 1400, show(hole));
      else assert.match(hole.evidence.join('\n'), /path-MTU check (skipped|failed)/);
      assert.is(fine.cause, 'healthy', show(fine));
      assert.ok((fine.probe.tls?.bytesReceived ?? 0) > 6000, 'the large certificate flight came through');
    }));

  table('a server too busy to accept a burst of connects is not a lossy path: the paced re-check clears it', () =>
    bounded(60_000, 'busy', () =>
      withTopology({ kind: 'direct' }, async (topo) => {
        // Backlog 1, event loop blocked 160 ms of every 300: any 200 ms burst 20 ms apart overflows
        // the accept queue (SYNs dropped, retransmitted after 1 s); connects 100 ms apart fit.
        await startBusyServer(topo, 3389, (await labCerts()).valid, 160, 300);
        const runs: DiagnoseReport[] = [];
        for (let i = 0; i < 3; i++) runs.push(...(await diagnoseAll(topo, [{ host: topo.server.addr, port: 3389 }])));
        for (const r of runs) {
          assert.is(r.cause, 'healthy', show(r));
          assertShape(r);
        }
        const burst = runs.find((r) => (r.network.sample?.lost ?? 0) > 0);
        assert.ok(burst, `the burst overflowed the listen queue at least once: ${runs.map((r) => r.network.sample?.lost).join(',')}`);
        assert.is(burst!.network.recheck?.lost, 0, show(burst!));
        assert.match(burst!.evidence.join('\n'), /listen queue overflows/);
      })));

  table('random loss on the router is unstable-network, even when the probe itself gets through', () =>
    bounded(60_000, 'loss', () =>
      // 40% each way: a connect is clean with p = 0.36; P(at most 1 of 10 lost) < 0.1%.
      withTopology({ kind: 'routed', lossToServer: 0.4, lossToClient: 0.4 }, async (topo) => {
        const certs = await labCerts();
        await startXrdp(topo, { cert: certs.valid });
        const [r] = await diagnoseAll(topo, [{ host: topo.server.addr, port: 3389, opts: { connectTimeoutMs: 2000, x224TimeoutMs: 2000, tlsTimeoutMs: 3000 } }]);
        assert.is(r!.cause, 'unstable-network', show(r!));
        assertShape(r!);
        assert.ok(r!.network.sample!.lost >= 2, show(r!));
      })));
}
table.run();

// ---

const fleet = suite('diagnose: fleet mode');
if (labGate('diagnose: fleet mode', ['root', 'netns', 'iptables', 'xrdp', 'openssl', 'ping'])) {
  fleet('--hosts --parallel --json: one JSON object per line, each host named right, slow hosts hold up no other', () =>
    bounded(90_000, 'fleet', async () => {
      const f = await createFleet({ healthy: 6, refusing: 4, 'syn-dropped': 2, 'pmtu-blackhole': 2 });
      try {
        // The slow hosts first in the file: with 6 workers, 4 of them wait on slow hosts and the
        // other 2 must still get through every fast host meanwhile.
        const slow = f.hosts.filter((h) => h.kind === 'syn-dropped' || h.kind === 'pmtu-blackhole');
        const fast = f.hosts.filter((h) => !slow.includes(h));
        const file = join(f.topo.tmpDir, 'slow-first.txt');
        writeFileSync(file, [...slow, ...fast].map((h) => `${h.addr}:${h.port}`).join('\n') + '\n');
        const r = await f.topo.runNode('client', [DIAGNOSE, '--hosts', file, '--parallel', '6', '--json'], { timeoutMs: 80_000 });
        assert.is(r.exitCode, 1, `some hosts have problems: ${r.stderr}`);
        const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as DiagnoseReport & { line: number });
        assert.is(lines.length, f.hosts.length);
        for (const l of lines) {
          const h = f.hosts.find((x) => `${x.addr}:${x.port}` === l.endpoint)!;
          assert.is(l.cause, FLEET_EXPECT[h.kind], `${h.kind} ${l.endpoint}: ${show(l)}`);
          assertShape(l);
        }
        const order = lines.map((l) => l.endpoint);
        const lastFast = Math.max(...fast.map((h) => order.indexOf(`${h.addr}:${h.port}`)));
        const firstSlow = Math.min(...slow.map((h) => order.indexOf(`${h.addr}:${h.port}`)));
        assert.ok(lastFast < firstSlow, `fast hosts are reported before the slow ones finish: ${order.join(' ')}`);
      } finally {
        await f.destroy();
      }
    }));
}
fleet.run();

// ---

const cli = suite('diagnose: CLI');
if (labGate('diagnose: CLI', ['root', 'netns', 'xrdp', 'openssl'])) {
  cli('default target 127.0.0.1:3389, JSON document, exit codes, npm start', () =>
    bounded(40_000, 'cli', () =>
      withTopology({ kind: 'direct' }, async (topo) => {
        await startXrdp(topo, { cert: (await labCerts()).valid });
        // Inside the client namespace nothing listens on 127.0.0.1:3389.
        const [local, healthy, start, bad, unresolved, fixNoTarget] = await Promise.all([
          topo.runNode('client', [DIAGNOSE, '--json']),
          topo.runNode('client', [DIAGNOSE, topo.server.addr, '--json']),
          topo.runNode('client', [START]),
          topo.runNode('client', [DIAGNOSE, '10.0.0.1', '10.0.0.2']),
          // RFC 6761: .invalid never resolves; nothing leaves the namespace.
          topo.runNode('client', [DIAGNOSE, 'nosuch.invalid', '--json']),
          topo.runNode('client', [DIAGNOSE, '--fix', '--yes']),
        ]);
        assert.is(local.exitCode, 1, local.stderr);
        const l = JSON.parse(local.stdout) as DiagnoseReport;
        assert.is(local.stdout.trim().split('\n').length, 1);
        assert.equal([l.endpoint, l.cause, l.recipe, l.status], ['127.0.0.1:3389', 'no-listener', 'service-down', 'failed']);
        // This is Linux: `--target local` cannot work here, so it is never printed.
        assert.ok(l.next.length > 0 && l.next.every((c) => c.startsWith('npx tsx scripts/run-recipe.ts service-down --host 127.0.0.1:3389 ')), l.next.join('\n'));
        assert.not.match(l.next.join('\n'), /--target local/);
        assert.match(l.next.at(-1)!, / --emit$/);
        assert.match(l.notes.join('\n'), /--target local cannot work here/);
        assert.equal([l.connections.sample, l.network.sample], [0, null], 'refused: no connect sample');
        // A name that does not resolve: its own cause, no recipe, no network fix, no connection.
        assert.is(unresolved.exitCode, 1, unresolved.stderr);
        const u = JSON.parse(unresolved.stdout) as DiagnoseReport;
        assert.equal([u.cause, u.recipe, u.connections.total, u.network.sample], ['name-not-resolved', null, 0, null]);
        assert.equal(u.next, ['nslookup nosuch.invalid']);
        assert.not.match(JSON.stringify([u.next, u.notes]), /unstable-network|lower-mtu|run-recipe/);
        // --fix without --target on Linux: bad usage (2) naming what can work, before anything is probed.
        assert.is(fixNoTarget.exitCode, 2, fixNoTarget.stdout + fixNoTarget.stderr);
        assert.match(fixNoTarget.stderr, /--fix needs --target.*local needs Windows/);
        assert.is(healthy.exitCode, 0, healthy.stderr);
        const h = JSON.parse(healthy.stdout) as DiagnoseReport;
        for (const k of ['endpoint', 'cause', 'confidence', 'evidence', 'recipe', 'next', 'notes', 'probe', 'network', 'status']) assert.ok(k in h, `has ${k}`);
        assert.equal([h.cause, h.status, h.recipe], ['healthy', 'ok', null]);
        // npm start: a finding is still a successful report.
        assert.is(start.exitCode, 0, start.stderr);
        assert.match(start.stdout, /no-listener/);
        assert.is(bad.exitCode, 2);
      })));
}
cli.run();
