// The rules from wire facts to a cause: probe-only findings, how the connect sample and the
// path-MTU check change them, and the fix commands. Synthetic probe results; no network. (The same
// rules against a real xrdp and real networks: test/probe-rdp.test.ts and test/diagnose.test.ts.)
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CAUSE_NAMES, recipeFor } from '../../scripts/lib/causes.ts';
import { nextSteps, verdictOf, type ConnectSample, type NetworkEvidence, type PathMtuCheck } from '../../scripts/lib/rdp-verdict.ts';
import type { TlsResult } from '../../scripts/lib/tls-probe.ts';
import type { NegotiationStep, ProbeResult } from '../../scripts/probe-rdp.ts';

const SSL_RSP: NegotiationStep = { requested: 0x0b, requestedNames: ['SSL', 'HYBRID', 'HYBRID_EX'], outcome: 'response', ms: 1, bytes: 19, selectedProtocol: 1, selectedNames: ['SSL'], flags: 1 };
const CERT = {
  subject: 'CN=vm1', issuer: 'CN=vm1', selfSigned: true, validFrom: '2025-01-01T00:00:00.000Z', validTo: '2035-01-01T00:00:00.000Z', expired: false,
  notYetValid: false, daysLeft: 3000, keyType: 'RSA', keyBits: 2048, thumbprint: 'A'.repeat(40), sha256: 'B'.repeat(64), serialNumber: '01',
  subjectAltNames: [], subjectAltNameCount: 0, derBytes: 800,
};
const TLS_OK: TlsResult = { outcome: 'ok', ms: 5, offered: 'TLSv1.2-TLSv1.3', bytesReceived: 1371, detail: 'handshake completed', version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', certificate: CERT };
const tlsFail = (outcome: TlsResult['outcome'], more: Partial<TlsResult> = {}): TlsResult => ({ outcome, ms: 5000, offered: 'TLSv1.2-TLSv1.3', bytesReceived: 0, detail: `tls ${outcome}`, ...more });

function probe(p: Partial<ProbeResult> = {}): ProbeResult {
  return {
    target: '10.0.0.4:3389', host: '10.0.0.4', port: 3389, address: '10.0.0.4', connect: { outcome: 'accepted', ms: 1 },
    negotiation: SSL_RSP, followUps: [], tls: TLS_OK, mssRetry: null, tlsVersions: null, connections: 1, ms: 10,
    timeouts: { connectMs: 3000, x224Ms: 3000, tlsMs: 5000 }, ...p,
  };
}

function sample(lost: number, opts: { attempts?: number; answered?: number; p50?: number } = {}): ConnectSample {
  const attempts = opts.attempts ?? 10;
  const answered = opts.answered ?? attempts - lost;
  const results = Array.from({ length: attempts }, (_, i) => ({ i, outcome: i < answered ? 'accepted' as const : 'timeout' as const, ms: i < answered ? opts.p50 ?? 1 : 1200, lost: i >= answered || i < lost - (attempts - answered) }));
  const p50 = opts.p50 ?? 1;
  return { attempts, answered, accepted: answered, refused: 0, lost, intervalMs: 20, cutoffMs: 1200, rtt: answered ? { min: p50, p50, p95: p50, max: p50, avg: p50, jitter: 0 } : null, results };
}

const net = (s: ConnectSample | null, pathMtu: PathMtuCheck | null = null): NetworkEvidence => ({ sample: s, pathMtu, thresholds: { maxRttMs: 500, maxLost: 2 } });

// ---

const probeOnly = suite('verdict from the probe alone');

probeOnly('each cause gets the recipe of lib/causes.ts', () => {
  const cases: [ProbeResult, string][] = [
    [probe(), 'healthy'],
    [probe({ connect: { outcome: 'refused', ms: 1 }, negotiation: null, tls: null }), 'no-listener'],
    [probe({ connect: { outcome: 'timeout', ms: 3000 }, negotiation: null, tls: null }), 'unreachable'],
    [probe({ negotiation: { ...SSL_RSP, outcome: 'closed', selectedProtocol: undefined }, tls: null }), 'closed-by-server'],
    [probe({ negotiation: { ...SSL_RSP, outcome: 'not-x224', reason: 'not a TPKT header', preview: '"SSH-2.0-"' }, tls: null }), 'not-rdp'],
    [probe({ negotiation: { ...SSL_RSP, selectedProtocol: 0 }, tls: null }), 'security-layer-mismatch'],
    [probe({ negotiation: { ...SSL_RSP, outcome: 'failure', failureCode: 5, failureName: 'HYBRID_REQUIRED_BY_SERVER', failureMeaning: 'x' }, tls: null }), 'nla-required'],
    [probe({ negotiation: { ...SSL_RSP, outcome: 'failure', failureCode: 3, failureName: 'SSL_CERT_NOT_ON_SERVER', failureMeaning: 'x' }, tls: null }), 'certificate-key-unusable'],
    [probe({ tls: { ...TLS_OK, certificate: { ...CERT, expired: true, daysLeft: -10 } } }), 'certificate-expired'],
    [probe({ tls: tlsFail('alert', { alert: { level: 'fatal', code: 70, name: 'protocol_version' } }) }), 'tls-version-mismatch'],
    [probe({ tls: tlsFail('silence'), mssRetry: { mss: 536, helper: 'perl', arrived: true, tls: TLS_OK, ms: 10 } }), 'mtu-blackhole'],
  ];
  for (const [p, cause] of cases) {
    const v = verdictOf(p);
    assert.is(v.cause, cause, JSON.stringify(p).slice(0, 300));
    assert.is(v.recipe, recipeFor(v.cause));
    assert.ok(v.confidence > 0 && v.confidence <= 1);
    assert.ok(v.evidence.length >= 2);
  }
});

probeOnly('the causes of lib/causes.ts are exactly the ones of the issue table', () => {
  assert.equal([...CAUSE_NAMES].sort(), ['certificate-expired', 'certificate-key-unusable', 'closed-by-server', 'healthy', 'mtu-blackhole', 'nla-required',
    'no-listener', 'not-rdp', 'security-layer-mismatch', 'tls-version-mismatch', 'unreachable', 'unstable-network']);
});

probeOnly('TLS failures: MCS bytes, reset for every version, old versions only, intermittent', () => {
  assert.is(verdictOf(probe({ tls: tlsFail('not-tls', { bytesReceived: 9 }) })).cause, 'certificate-key-unusable');
  const scan = (accepted: ('TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3')[]) => ({
    reason: 'first-handshake-failed' as const, untested: [], accepted,
    results: (['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const).map((version) => ({ version, accepted: accepted.includes(version), outcome: accepted.includes(version) ? 'ok' : 'reset', detail: '' })),
  });
  const everyReset = verdictOf(probe({ tls: tlsFail('reset'), tlsVersions: scan([]) }));
  assert.is(everyReset.cause, 'certificate-key-unusable');
  assert.ok(everyReset.confidence >= 0.9);
  assert.match(everyReset.evidence.join('\n'), /TLS versions accepted: none; refused: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3/);
  assert.is(verdictOf(probe({ tls: tlsFail('reset'), tlsVersions: scan(['TLSv1']) })).cause, 'tls-version-mismatch');
  const intermittent = verdictOf(probe({ tls: tlsFail('closed'), tlsVersions: scan(['TLSv1.2', 'TLSv1.3']) }));
  assert.is(intermittent.cause, 'certificate-key-unusable');
  assert.match(intermittent.summary, /several servers|intermittent/);
  assert.is(verdictOf(probe({ tls: tlsFail('alert', { alert: { level: 'fatal', code: 80, name: 'internal_error' } }), tlsVersions: scan([]) })).cause, 'certificate-key-unusable');
});

probeOnly('silence without the small-segment proof is a suspected black hole; with silence on small segments too it is not', () => {
  const suspected = verdictOf(probe({ tls: tlsFail('silence'), mssRetry: { mss: 536, skipped: 'Windows cannot set a socket\'s TCP_MAXSEG', ms: 0 } }));
  assert.is(suspected.cause, 'mtu-blackhole');
  assert.ok(suspected.confidence <= 0.6);
  assert.match(suspected.evidence.join('\n'), /small-segment retry skipped: Windows/);
  const notMtu = verdictOf(probe({ tls: tlsFail('silence'), mssRetry: { mss: 536, helper: 'perl', arrived: false, tls: tlsFail('silence'), ms: 5000 } }));
  assert.is(notMtu.cause, 'certificate-key-unusable');
});

probeOnly('INCONSISTENT_FLAGS defers to the follow-up that worked', () => {
  const f4: NegotiationStep = { ...SSL_RSP, outcome: 'failure', failureCode: 4, failureName: 'INCONSISTENT_FLAGS', failureMeaning: 'x', selectedProtocol: undefined };
  const v = verdictOf(probe({ negotiation: f4, followUps: [{ ...SSL_RSP, requested: 0x03, why: 'fewer flags' }] }));
  assert.is(v.cause, 'healthy');
});

probeOnly.run();

// ---

const network = suite('verdict with the connect sample and the path-MTU check');

network('a healthy probe on a lossy or slow path is unstable-network; one lost connect only lowers the confidence', () => {
  assert.is(verdictOf(probe(), net(sample(0))).cause, 'healthy');
  assert.is(verdictOf(probe(), net(sample(3))).cause, 'unstable-network');
  assert.is(verdictOf(probe(), net(sample(0, { p50: 800 }))).cause, 'unstable-network');
  const one = verdictOf(probe(), net(sample(1)));
  assert.is(one.cause, 'healthy');
  assert.is(one.confidence, 0.7);
  assert.match(one.evidence.join('\n'), /light loss/);
});

network('losses that vanish when the connects are paced are the server\'s listen queue, not the path', () => {
  const burst = sample(3);
  const withRecheck = (lost: number): NetworkEvidence => ({ ...net(burst), recheck: sample(lost, { attempts: 5 }) });
  const busy = verdictOf(probe(), withRecheck(0));
  assert.is(busy.cause, 'healthy');
  assert.is(busy.confidence, 0.9);
  assert.match(busy.evidence.join('\n'), /listen queue overflows when connections arrive in a burst/);
  const lossy = verdictOf(probe(), withRecheck(2));
  assert.is(lossy.cause, 'unstable-network');
  assert.match(lossy.summary, /5 of 15 connects lost/);
});

network('a connect timeout is unreachable when nothing answers, unstable-network when some connects do', () => {
  const timedOut = probe({ connect: { outcome: 'timeout', ms: 3000 }, negotiation: null, tls: null });
  assert.is(verdictOf(timedOut, net(sample(10, { answered: 0 }))).cause, 'unreachable');
  assert.is(verdictOf(timedOut, net(sample(4, { answered: 6 }))).cause, 'unstable-network');
});

network('network-looking probe failures on a lossy path are unstable-network; server answers stay what they are', () => {
  const x224Timeout = probe({ negotiation: { ...SSL_RSP, outcome: 'timeout', selectedProtocol: undefined, bytes: 0, ms: 3000 }, tls: null });
  assert.is(verdictOf(x224Timeout, net(sample(0))).cause, 'not-rdp');
  assert.is(verdictOf(x224Timeout, net(sample(1))).cause, 'unstable-network');
  const silence = probe({ tls: tlsFail('silence'), mssRetry: { mss: 536, helper: 'perl', arrived: true, tls: TLS_OK, ms: 10 } });
  assert.is(verdictOf(silence, net(sample(0))).cause, 'mtu-blackhole');
  assert.is(verdictOf(silence, net(sample(5))).cause, 'unstable-network');
  const noCert = probe({ negotiation: { ...SSL_RSP, outcome: 'failure', failureCode: 3, failureName: 'SSL_CERT_NOT_ON_SERVER', failureMeaning: 'x' }, tls: null });
  const v = verdictOf(noCert, net(sample(5)));
  assert.is(v.cause, 'certificate-key-unusable');
  assert.match(v.evidence.join('\n'), /also: the path is unstable/);
});

network('the path-MTU check confirms or rules out a suspected black hole, and says when it was skipped', () => {
  const suspected = probe({ tls: tlsFail('silence'), mssRetry: { mss: 536, skipped: 'no helper', ms: 0 } });
  const done = (pathMtu: number): PathMtuCheck => ({ status: 'done', target: '10.0.0.4', pathMtu, interface: 'eth0', interfaceMtu: 1500, probes: 12, ms: 3000 });
  const confirmed = verdictOf(suspected, net(sample(0), done(1400)));
  assert.is(confirmed.cause, 'mtu-blackhole');
  assert.is(confirmed.confidence, 0.85);
  assert.match(confirmed.evidence.join('\n'), /path-MTU check \(DF pings\): 1400 bytes .* full-size packets do not pass/);
  assert.is(verdictOf(suspected, net(sample(0), done(1500))).cause, 'certificate-key-unusable');
  const skipped = verdictOf(suspected, net(sample(0), { status: 'skipped', reason: 'scripts/lower-mtu.ts is not installed yet', ms: 0 }));
  assert.is(skipped.cause, 'mtu-blackhole');
  assert.match(skipped.evidence.join('\n'), /path-MTU check skipped: scripts\/lower-mtu.ts/);
});

network.run();

// ---

const next = suite('fix commands');

next('server-side recipes name a channel, client-side ones do not, healthy needs nothing', () => {
  const p = { target: 'vm1.contoso.com:3389', host: 'vm1.contoso.com', port: 3389 };
  assert.equal(nextSteps('healthy', null, p), []);
  const cert = nextSteps('certificate-key-unusable', 'azure-vm-cert', p);
  assert.is(cert[0], 'npx tsx scripts/run-recipe.ts azure-vm-cert --host vm1.contoso.com:3389 --target winrm://vm1.contoso.com');
  assert.match(cert[1]!, /azure:\/\/SUBSCRIPTION\/RESOURCE_GROUP\/VM/);
  assert.is(nextSteps('no-listener', 'service-down', { target: '127.0.0.1:3389', host: '127.0.0.1', port: 3389 })[0], 'npx tsx scripts/run-recipe.ts service-down --host 127.0.0.1:3389 --target local');
  assert.equal(nextSteps('mtu-blackhole', 'vpn-mtu', p), ['npx tsx scripts/run-recipe.ts vpn-mtu --host vm1.contoso.com:3389']);
  assert.match(nextSteps('unreachable', 'unstable-network', p).join('\n'), /firewall, NSG and VPN/);
  assert.match(nextSteps('not-rdp', null, p).join('\n'), /PortNumber/);
});

next.run();
