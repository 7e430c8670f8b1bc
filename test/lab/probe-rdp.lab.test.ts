// probe-rdp against a real RDP server (Debian's xrdp, in every configuration that matters) and
// scripted peers for what xrdp cannot do (failure codes 2-6, alerts, resets, garbage, a 10 MB
// "certificate", stalls), over a real network in lab namespaces; the path-MTU black hole with both
// small-segment helpers; the CLI's JSON and exit codes. Every probe must stay within 5 connections
// and its step timeouts. The usage tests (no lab) are in test/probe-rdp.test.ts.
// Run: npx tsx test/lab/probe-rdp.lab.test.ts  (needs root, xrdp, socat; skips otherwise)
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProbeOptions } from '../../scripts/lib/probe.ts';
import { cleanupStaleLab, createTopology, type Topology } from './netns.ts';
import { startPeers, startSocatCloser } from './peers.ts';
import { bin, labGate, labMissing } from './prereq.ts';
import { RDPFIX_CALLS, type Probed } from './rdpfix-calls.ts';
import { legacyConfirm, negFailure, negResponse, PROTOCOL_SSL } from './rdp-bytes.ts';
import { labCerts, startXrdp } from './xrdp.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PROBE = join(root, 'scripts', 'probe-rdp.ts');
const DPUM = '0300000902f0802180';

/** Fail a test that hangs instead of hanging the run. */
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

const probeAll = (topo: Topology, list: ProbeOptions[]) => topo.call<Probed[]>('client', RDPFIX_CALLS, 'probeAll', [list]);
const show = (r: Probed) => JSON.stringify({ verdict: r.verdict, probe: r.probe }, null, 1).slice(0, 3000);
const thumbprint = (file: string) => execFileSync(bin('openssl'), ['x509', '-noout', '-fingerprint', '-sha1', '-in', file], { encoding: 'utf8' }).split('=')[1]!.trim().replace(/:/g, '');

if (labMissing(['root', 'netns']).length === 0) cleanupStaleLab();

// ---

const xrdp = suite('probe-rdp: xrdp');
if (labGate('probe-rdp: xrdp', ['root', 'netns', 'xrdp', 'openssl'])) {
  xrdp('each xrdp configuration is probed and named as the issue table says', () =>
    bounded(40_000, 'xrdp', async () => {
      const certs = await labCerts();
      await withTopology({ kind: 'direct' }, async (topo) => {
        const cfg = {
          healthy: { port: 3389, securityLayer: 'negotiate', cert: certs.valid },
          tls: { port: 3390, securityLayer: 'tls', cert: certs.valid },
          rdp: { port: 3391, securityLayer: 'rdp', cert: certs.valid },
          mismatched: { port: 3392, securityLayer: 'negotiate', cert: certs.mismatched },
          expired: { port: 3393, securityLayer: 'negotiate', cert: certs.expired },
          tlsMissing: { port: 3394, securityLayer: 'tls', cert: certs.missing },
          negMissing: { port: 3395, securityLayer: 'negotiate', cert: certs.missing },
          // OpenSSL 3 only does TLS 1.0/1.1 at security level 0 (on both sides).
          tls10: { port: 3396, securityLayer: 'tls', cert: certs.valid, sslProtocols: 'TLSv1, TLSv1.1', globals: { tls_ciphers: 'DEFAULT:@SECLEVEL=0' } },
          tls10strict: { port: 3397, securityLayer: 'tls', cert: certs.valid, sslProtocols: 'TLSv1' },
        } as const;
        await Promise.all(Object.values(cfg).map((c) => startXrdp(topo, c)));
        const addr = topo.server.addr;
        const names = Object.keys(cfg) as (keyof typeof cfg)[];
        const list: ProbeOptions[] = [...names.map((n) => ({ host: addr, port: cfg[n].port })), { host: addr, port: cfg.healthy.port, tlsVersions: true }, { host: addr, port: 3399 }];
        const results = await probeAll(topo, list);
        const r = Object.fromEntries(names.map((n, i) => [n, results[i]!])) as Record<keyof typeof cfg, Probed>;
        const [scanned, nothing] = results.slice(names.length);
        for (const x of results) assert.ok(x.probe.connections >= 1 && x.probe.connections <= 5, show(x));

        // Healthy: one connection, TLS 1.3, the certificate as Windows shows it.
        const h = r.healthy;
        assert.is(h.verdict.cause, 'healthy', show(h));
        assert.is(h.probe.connections, 2, 'the diagnosis in one, one client check (CredSSP only)');
        assert.equal(h.probe.negotiation?.selectedNames, ['SSL']);
        assert.is(h.probe.tls?.version, 'TLSv1.3');
        assert.ok(h.probe.tls?.cipher);
        const cert = h.probe.tls!.certificate!;
        assert.is(cert.thumbprint, thumbprint(certs.valid.cert));
        assert.is(cert.subject, 'CN=rdp-lab-valid');
        assert.is(cert.selfSigned, true);
        assert.is(`${cert.keyType} ${cert.keyBits}`, 'RSA 2048');
        assert.is(r.tls.verdict.cause, 'healthy', show(r.tls));

        assert.is(r.rdp.verdict.cause, 'security-layer-mismatch', show(r.rdp));
        assert.is(r.rdp.probe.negotiation?.selectedProtocol, 0);
        assert.is(r.rdp.probe.tls, null);
        assert.is(r.negMissing.verdict.cause, 'security-layer-mismatch', show(r.negMissing));

        // Key does not match: SSL selected, then the MCS disconnect instead of a ServerHello.
        assert.is(r.mismatched.verdict.cause, 'certificate-key-unusable', show(r.mismatched));
        assert.is(r.mismatched.probe.tls?.outcome, 'not-tls');
        assert.is(r.mismatched.probe.tls?.firstBytes, DPUM);
        assert.is(r.mismatched.probe.connections, 2, 'no version scan: the server aborted before reading our hello (the second is the Standard RDP Security client check)');

        assert.is(r.expired.verdict.cause, 'certificate-expired', show(r.expired));
        assert.is(r.expired.probe.tls?.certificate?.validTo, '2020-02-01T00:00:00.000Z');
        assert.is(r.expired.probe.tls?.certificate?.thumbprint, thumbprint(certs.expired.cert));

        // security_layer=tls without a readable certificate: RDP_NEG_FAILURE 3, then the MCS disconnect.
        assert.is(r.tlsMissing.verdict.cause, 'certificate-key-unusable', show(r.tlsMissing));
        assert.is(r.tlsMissing.probe.negotiation?.failureName, 'SSL_CERT_NOT_ON_SERVER');
        // The MCS disconnect comes in the same read as the confirm or in the next one.
        assert.ok([undefined, DPUM].includes(r.tlsMissing.probe.negotiation?.trailing), show(r.tlsMissing));

        // TLS 1.0/1.1 only: refused with protocol_version; the scan finds what it takes, in 5 connections.
        assert.is(r.tls10.verdict.cause, 'tls-version-mismatch', show(r.tls10));
        assert.is(r.tls10.probe.tls?.alert?.name, 'protocol_version');
        assert.equal(r.tls10.probe.tlsVersions?.accepted, ['TLSv1', 'TLSv1.1']);
        assert.is(r.tls10.probe.connections, 5);
        assert.is(r.tls10strict.verdict.cause, 'tls-version-mismatch', show(r.tls10strict));
        assert.equal(r.tls10strict.probe.tlsVersions?.accepted, []);

        // --tls-versions on a healthy server: the versions it accepts (Debian's OpenSSL: 1.2 and 1.3).
        assert.is(scanned!.verdict.cause, 'healthy');
        assert.equal(scanned!.probe.tlsVersions?.accepted, ['TLSv1.2', 'TLSv1.3']);
        assert.is(scanned!.probe.connections, 5, 'the first, 3 for the scan, one client check');

        assert.is(nothing!.verdict.cause, 'no-listener', show(nothing!));
        assert.is(nothing!.probe.connect.outcome, 'refused');
      });
    }));
}
xrdp.run();

// ---

const peers = suite('probe-rdp: scripted and hostile peers');
if (labGate('probe-rdp: scripted and hostile peers', ['root', 'netns', 'socat'])) {
  peers('every peer gets a clear classification within its timeouts and 5 connections', () =>
    bounded(40_000, 'peers', () =>
      withTopology({ kind: 'direct' }, async (topo) => {
        const failures = [1, 2, 3, 4, 5, 6];
        await startPeers(topo, [
          { mode: 'close', port: 4001 }, { mode: 'reset', port: 4002 }, { mode: 'banner', port: 4003 }, { mode: 'http', port: 4004 },
          { mode: 'tls-alert', port: 4005 }, { mode: 'tls-close', port: 4006 }, { mode: 'tls-reset', port: 4007 },
          { mode: 'endless', port: 4008 }, { mode: 'bigcert', port: 4009 }, { mode: 'stall', port: 4010 },
          { mode: 'reply', port: 4011, hex: negResponse(PROTOCOL_SSL).toString('hex'), after: 'hold' },
          { mode: 'reply', port: 4012, hex: legacyConfirm().toString('hex') },
          { mode: 'tls-alert', port: 4013, hex: '15030300020250' }, // internal_error
          { mode: 'http-line', port: 4014 },
          ...failures.map((code) => ({ mode: 'reply' as const, port: 4100 + code, hex: negFailure(code).toString('hex') })),
        ]);
        await startSocatCloser(topo, 4020);
        const addr = topo.server.addr;
        const ports = [4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008, 4009, 4010, 4011, 4012, 4013, 4014, 4020, ...failures.map((c) => 4100 + c)];
        const quick = { x224TimeoutMs: 1000, tlsTimeoutMs: 1500, mssRetryAfterMs: 500 };
        const res = await probeAll(topo, ports.map((port) => ({ host: addr, port, ...quick })));
        const by = Object.fromEntries(ports.map((p, i) => [p, res[i]!])) as Record<number, Probed>;
        const cause = (p: number) => by[p]!.verdict.cause;
        // (No hang: `bounded` fails the test if any probe outlives its step timeouts by far.)
        for (const x of res) assert.ok(x.probe.connections <= 5, show(x));

        assert.is(cause(4001), 'closed-by-server', show(by[4001]!));
        assert.is(by[4001]!.probe.followUps[0]?.requested, 0, 'asks for plain RDP security as well');
        assert.is(cause(4002), 'closed-by-server', show(by[4002]!));
        assert.is(cause(4020), 'closed-by-server', show(by[4020]!));
        assert.is(cause(4003), 'not-rdp');
        assert.match(by[4003]!.verdict.summary, /SSH-2\.0-OpenSSH/);
        assert.is(cause(4004), 'not-rdp');
        assert.match(by[4004]!.verdict.summary, /HTTP\/1\.1 400/);
        // Endless bytes: cut off where a Connection Confirm would have ended.
        assert.is(cause(4008), 'not-rdp');
        assert.ok(by[4008]!.probe.negotiation!.bytes <= 65, show(by[4008]!));
        // Silent to the request and its cookie line: a hung listener, with the recipe that restarts it.
        assert.is(cause(4010), 'listener-hung', show(by[4010]!));
        assert.is(by[4010]!.verdict.recipe, 'listener-hung');
        assert.is(by[4010]!.probe.negotiation?.outcome, 'timeout');
        assert.is(by[4010]!.probe.connections, 1);
        // An HTTP server that, like a real one, waits for a line end: the cookie line gets its 400.
        assert.is(cause(4014), 'not-rdp', show(by[4014]!));
        assert.match(by[4014]!.verdict.summary, /HTTP\/1\.1 400/);

        assert.is(cause(4005), 'tls-version-mismatch', show(by[4005]!));
        assert.is(by[4005]!.probe.tls?.alert?.name, 'handshake_failure');
        assert.is(by[4005]!.probe.connections, 5, 'the failed handshake makes it scan the versions');
        assert.is(cause(4013), 'certificate-key-unusable', show(by[4013]!));
        assert.is(by[4013]!.probe.tls?.alert?.name, 'internal_error');
        for (const p of [4006, 4007]) {
          assert.is(cause(p), 'certificate-key-unusable', show(by[p]!));
          assert.equal(by[p]!.probe.tlsVersions?.accepted, []);
        }
        assert.is(by[4006]!.probe.tls?.outcome, 'closed');
        assert.is(by[4007]!.probe.tls?.outcome, 'reset');

        // A 10 MB "certificate": refused or cut off, classified, not waited on.
        assert.is(cause(4009), 'certificate-key-unusable', show(by[4009]!));
        assert.ok(['protocol-error', 'oversized'].includes(by[4009]!.probe.tls!.outcome), show(by[4009]!));

        // SSL selected, then nothing: the small-segment retry is silent too, so it is not the path.
        assert.is(by[4011]!.probe.tls?.outcome, 'silence', show(by[4011]!));
        assert.is(by[4011]!.probe.mssRetry?.arrived, false, show(by[4011]!));
        assert.is(cause(4011), 'certificate-key-unusable');

        assert.is(cause(4012), 'security-layer-mismatch');
        assert.is(by[4012]!.probe.negotiation?.outcome, 'no-negotiation');

        const names = ['SSL_REQUIRED_BY_SERVER', 'SSL_NOT_ALLOWED_BY_SERVER', 'SSL_CERT_NOT_ON_SERVER', 'INCONSISTENT_FLAGS', 'HYBRID_REQUIRED_BY_SERVER', 'SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER'];
        const want = ['security-layer-mismatch', 'security-layer-mismatch', 'certificate-key-unusable', 'security-layer-mismatch', 'nla-required', 'nla-required'];
        failures.forEach((code, i) => {
          const x = by[4100 + code]!;
          assert.is(x.probe.negotiation?.failureName, names[i], show(x));
          assert.is(x.verdict.cause, want[i], show(x));
        });
        // Code 2 asks whether plain RDP is accepted; code 4 asks again with fewer flags.
        assert.equal(by[4102]!.probe.followUps.map((f) => f.requested), [0]);
        assert.equal(by[4104]!.probe.followUps.map((f) => f.requested), [0x03, 0x01]);
      })));
}
peers.run();

// ---

const blackhole = suite('probe-rdp: path-MTU black hole');
if (labGate('probe-rdp: path-MTU black hole', ['root', 'netns', 'iptables', 'xrdp', 'openssl'])) {
  blackhole('the TLS flight never arrives; with a small segment size it does (perl and python3)', () =>
    bounded(40_000, 'black hole', async () => {
      const certs = await labCerts();
      await withTopology({ kind: 'routed', pathMtu: 1400, pmtuBlackhole: true }, async (topo) => {
        await startXrdp(topo, { cert: certs.large });
        const host = topo.server.addr;
        // perl is part of every Debian base system; python3 is tested where it is installed.
        const helpers = (['perl', 'python3'] as const).filter((h) => h === 'perl' || spawnSync(h, ['--version'], { stdio: 'ignore' }).status === 0);
        const res = await probeAll(topo, [
          ...helpers.map((mssHelper) => ({ host, port: 3389, mssHelper, tlsTimeoutMs: 3000, mssRetryAfterMs: 800 })),
          { host, port: 3389, mssRetry: false, tlsTimeoutMs: 1500 },
        ]);
        for (const [i, helper] of helpers.entries()) {
          const x = res[i]!;
          assert.is(x.verdict.cause, 'mtu-blackhole', show(x));
          assert.is(x.verdict.confidence, 0.95);
          assert.is(x.probe.negotiation?.selectedNames?.[0], 'SSL', 'the small X.224 exchange passes');
          assert.is(x.probe.tls?.outcome, 'silence');
          assert.is(x.probe.mssRetry?.helper, helper);
          assert.is(x.probe.mssRetry?.tls?.outcome, 'ok', show(x));
          assert.ok(x.probe.mssRetry!.tls!.bytesReceived > 6000);
          assert.is(x.probe.connections, 2);
        }
        const without = res.at(-1)!;
        assert.is(without.verdict.cause, 'mtu-blackhole', show(without));
        assert.ok(without.verdict.confidence <= 0.6);
        assert.match(without.verdict.evidence.join('\n'), /small-segment retry skipped: disabled/);
      });
    }));
}
blackhole.run();

// ---

const labCli = suite('probe-rdp: CLI in the lab');
if (labGate('probe-rdp: CLI in the lab', ['root', 'netns', 'xrdp', 'openssl'])) {
  labCli('--json prints one document with status, cause, recipe and the probe; exit 0 healthy, 1 problem', () =>
    bounded(30_000, 'cli', async () => {
      const certs = await labCerts();
      await withTopology({ kind: 'direct' }, async (topo) => {
        await startXrdp(topo, { port: 3389, cert: certs.valid });
        await startXrdp(topo, { port: 3393, cert: certs.expired });
        const [ok, expired] = await Promise.all([3389, 3393].map((port) => topo.runNode('client', [PROBE, `${topo.server.addr}:${port}`, '--json'])));
        assert.is(ok!.exitCode, 0, ok!.stderr);
        const doc = JSON.parse(ok!.stdout);
        assert.is(ok!.stdout.trim().split('\n').length, 1, 'exactly one JSON document');
        assert.equal([doc.status, doc.cause, doc.recipe, doc.endpoint, doc.probe.endpoint], ['ok', 'healthy', null, `${topo.server.addr}:3389`, `${topo.server.addr}:3389`]);
        assert.ok(!('target' in doc), '`target` means the channel; the RDP host is `endpoint`');
        assert.ok(Array.isArray(doc.notes));
        assert.match(doc.probe.tls.certificate.validTo, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.ok(doc.confidence > 0.9 && Array.isArray(doc.evidence) && doc.probe.tls.certificate.thumbprint);
        assert.is(expired!.exitCode, 1, expired!.stderr);
        const e = JSON.parse(expired!.stdout);
        assert.equal([e.status, e.cause, e.recipe], ['failed', 'certificate-expired', 'renew-rdp-cert']);
        // Human output: the verdict first, then the evidence, then the command.
        const human = await topo.runNode('client', [PROBE, `${topo.server.addr}:3393`], { env: { ...process.env, FORCE_COLOR: '0' } });
        const lines = human.stdout.split('\n');
        assert.match(lines[0]!, /certificate-expired/);
        assert.ok(lines.some((l) => l.includes('npx tsx scripts/run-recipe.ts renew-rdp-cert --host')), human.stdout);
      });
    }));
}
labCli.run();
