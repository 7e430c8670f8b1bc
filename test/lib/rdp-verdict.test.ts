// The rules from wire facts to a cause: probe-only findings, how the connect sample and the
// path-MTU check change them, and the fix commands. Synthetic probe results; no network. (The same
// rules against a real xrdp and real networks: test/lab/probe-rdp.lab.test.ts and test/lab/diagnose.lab.test.ts.)
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CAUSE_NAMES, recipeFor } from '../../scripts/lib/causes.ts';
import { formatVerdict, nextSteps, serverTargets, verdictOf, type ChannelEnv, type ConnectSample, type NetworkEvidence, type PathMtuCheck } from '../../scripts/lib/rdp-verdict.ts';
import type { TlsResult } from '../../scripts/lib/tls-probe.ts';
import type { NegotiationStep, ProbeResult } from '../../scripts/lib/probe.ts';

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
    endpoint: '10.0.0.4:3389', host: '10.0.0.4', port: 3389, address: '10.0.0.4', connect: { outcome: 'accepted', ms: 1 },
    negotiation: SSL_RSP, followUps: [], tls: TLS_OK, mssRetry: null, tlsVersions: null, clientChecks: [], connections: 1, ms: 10,
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
  assert.equal([...CAUSE_NAMES].sort(), ['certificate-expired', 'certificate-key-unusable', 'closed-by-server', 'healthy', 'listener-hung', 'mtu-blackhole',
    'name-not-resolved', 'nla-required', 'no-listener', 'not-rdp', 'security-layer-mismatch', 'tls-version-mismatch', 'unreachable', 'unstable-network']);
  assert.is(recipeFor('listener-hung'), 'listener-hung');
  assert.is(recipeFor('name-not-resolved'), null);
});

probeOnly('silence to the X.224 request (cookie line included) is a hung listener; an answer that is not X.224 is not RDP', () => {
  const silent = verdictOf(probe({ negotiation: { ...SSL_RSP, outcome: 'timeout', selectedProtocol: undefined, bytes: 0, ms: 3000 }, tls: null }));
  assert.is(silent.cause, 'listener-hung');
  assert.is(silent.recipe, 'listener-hung');
  assert.match(silent.summary, /never answered the X\.224 request, not even the cookie line/);
  const http = verdictOf(probe({ negotiation: { ...SSL_RSP, outcome: 'not-x224', reason: 'not a TPKT header (first byte is not 3)', preview: '"HTTP/1.1 400 Bad Request\\r\\n"', selectedProtocol: undefined, bytes: 24 }, tls: null }));
  assert.is(http.cause, 'not-rdp');
  assert.match(http.summary, /HTTP\/1\.1 400/);
  const partial = verdictOf(probe({ negotiation: { ...SSL_RSP, outcome: 'timeout', selectedProtocol: undefined, bytes: 3, preview: '030000', ms: 3000 }, tls: null }));
  assert.is(partial.cause, 'not-rdp');
});

probeOnly('a name that does not resolve is name-not-resolved: no recipe, nslookup and what to check, never a network fix', () => {
  const v = verdictOf(probe({
    endpoint: 'nosuch.invalid:3389', host: 'nosuch.invalid', address: null, connect: { outcome: 'unresolved', ms: 2, error: 'ENOTFOUND' },
    dns: { ms: 2, code: 'ENOTFOUND', error: 'the name nosuch.invalid does not exist in DNS (ENOTFOUND)' }, negotiation: null, tls: null, connections: 0,
  }));
  assert.is(v.cause, 'name-not-resolved');
  assert.is(v.recipe, null);
  assert.is(v.confidence, 0.95);
  assert.equal(v.next, ['nslookup nosuch.invalid']);
  assert.match(v.notes.join('\n'), /spelling.*DNS suffix/);
  assert.match(v.evidence[0]!, /DNS lookup of nosuch\.invalid failed .*ENOTFOUND.*nothing was sent/);
  assert.not.match(v.next.join('\n'), /run-recipe|unstable-network|mtu/);
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
  assert.is(verdictOf(x224Timeout, net(sample(0))).cause, 'listener-hung');
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
  const done = (pathMtu: number): PathMtuCheck => ({ status: 'done', host: '10.0.0.4', pathMtu, interface: 'eth0', interfaceMtu: 1500, probes: 12, ms: 3000 });
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

const env = (platform: NodeJS.Platform, programs: string[]): ChannelEnv => ({ platform, has: (p) => programs.includes(p) });
const LINUX_ALL = env('linux', ['pwsh', 'ssh', 'az']);

next('next[] holds commands only; the prose is in notes', () => {
  const p = { endpoint: 'vm1.contoso.com:3389', host: 'vm1.contoso.com', port: 3389 };
  assert.equal(nextSteps('healthy', null, p, LINUX_ALL), { next: [], notes: [] });
  const cert = nextSteps('certificate-key-unusable', 'azure-vm-cert', p, LINUX_ALL);
  for (const c of cert.next) assert.match(c, /^npx tsx scripts\/run-recipe\.ts azure-vm-cert --host vm1\.contoso\.com:3389 (--target \S+|--emit)$/, c);
  assert.equal(nextSteps('mtu-blackhole', 'vpn-mtu', p, LINUX_ALL), { next: ['npx tsx scripts/run-recipe.ts vpn-mtu --host vm1.contoso.com:3389'], notes: [] });
  const unreachable = nextSteps('unreachable', 'unstable-network', p, LINUX_ALL);
  assert.equal(unreachable.next, ['npx tsx scripts/run-recipe.ts unstable-network --host vm1.contoso.com:3389']);
  assert.match(unreachable.notes.join('\n'), /firewall, NSG and VPN/);
  const notRdp = nextSteps('not-rdp', null, p, LINUX_ALL);
  assert.equal(notRdp.next, [String.raw`Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name PortNumber`]);
  assert.match(notRdp.notes.join('\n'), /shows the port RDP uses/);
  for (const v of [cert, unreachable, notRdp]) for (const c of v.next) assert.not.match(c, /^\(|^or |^and |: /, `a command, not prose: ${c}`);
});

next('127.0.0.1 on Linux never prints --target local (server scripts need Windows); on Windows it is the first choice', () => {
  const local = { endpoint: '127.0.0.1:3389', host: '127.0.0.1', port: 3389 };
  const linux = nextSteps('no-listener', 'service-down', local, LINUX_ALL);
  assert.equal(linux.next, ['npx tsx scripts/run-recipe.ts service-down --host 127.0.0.1:3389 --emit']);
  assert.match(linux.notes.join('\n'), /runs linux: .*--target local cannot work here/);
  const win = nextSteps('no-listener', 'service-down', local, env('win32', ['powershell']));
  assert.equal(win.next, ['npx tsx scripts/run-recipe.ts service-down --host 127.0.0.1:3389 --target local', 'npx tsx scripts/run-recipe.ts service-down --host 127.0.0.1:3389 --emit']);
});

next('a remote host gets only the channels this machine has; an IP address gets WinRM over HTTPS with a user; --emit always', () => {
  assert.equal(serverTargets('10.0.0.4', LINUX_ALL).targets, ['winrms://ADMIN@10.0.0.4', 'ssh://ADMIN@10.0.0.4', 'azure://SUBSCRIPTION/RESOURCE_GROUP/VM']);
  assert.match(serverTargets('10.0.0.4', LINUX_ALL).notes.join('\n'), /HTTPS \(port 5986\).*asks for ADMIN's password.*TrustedHosts/);
  assert.equal(serverTargets('10.0.0.4', env('linux', ['ssh'])).targets, ['ssh://ADMIN@10.0.0.4']);
  assert.equal(serverTargets('fd00::4', env('linux', ['ssh'])).targets, ['ssh://ADMIN@[fd00::4]']);
  // A name from a Windows machine: WinRM with the user's own (Kerberos) credentials.
  assert.equal(serverTargets('vm1.contoso.com', env('win32', ['powershell'])).targets, ['winrm://vm1.contoso.com']);
  assert.equal(serverTargets('vm1.contoso.com', env('linux', ['pwsh'])).targets, ['winrms://ADMIN@vm1.contoso.com']);
  const none = serverTargets('10.0.0.4', env('linux', []));
  assert.equal(none.targets, []);
  assert.match(none.notes.join('\n'), /no channel program on this machine/);
  const p = { endpoint: '10.0.0.4:3389', host: '10.0.0.4', port: 3389 };
  assert.equal(nextSteps('certificate-key-unusable', 'azure-vm-cert', p, env('linux', [])).next, ['npx tsx scripts/run-recipe.ts azure-vm-cert --host 10.0.0.4:3389 --emit']);
  assert.is(nextSteps('listener-hung', 'listener-hung', p, env('linux', ['pwsh'])).next[0], 'npx tsx scripts/run-recipe.ts listener-hung --host 10.0.0.4:3389 --target winrms://ADMIN@10.0.0.4');
  for (const e of [LINUX_ALL, env('linux', []), env('win32', ['powershell'])]) {
    assert.match(nextSteps('certificate-key-unusable', 'azure-vm-cert', p, e).next.at(-1)!, / --emit$/);
  }
});

next.run();

// ---

const clients = suite('compatibility: which client profiles connect');

const step = (requested: number, more: Partial<NegotiationStep>): NegotiationStep => ({ requested, requestedNames: [], outcome: 'response', ms: 1, bytes: 19, why: 'client check', connect: { outcome: 'accepted', ms: 1 }, ...more });
const fail = (requested: number, code: number, name: string) => step(requested, { outcome: 'failure', failureCode: code, failureName: name, failureMeaning: name });
const connects = (p: ProbeResult, n?: NetworkEvidence) => Object.fromEntries(verdictOf(p, n).compatibility.map((c) => [c.client, c.connects]));
const SELF_SIGNED = { ...TLS_OK, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' };

clients('NLA required (CredSSP chosen, Standard RDP Security refused with HYBRID_REQUIRED): healthy for a default client, and it says who fails', () => {
  const p = probe({ negotiation: { ...SSL_RSP, selectedProtocol: 2, selectedNames: ['HYBRID'] }, tls: SELF_SIGNED, clientChecks: [fail(0, 5, 'HYBRID_REQUIRED_BY_SERVER')], connections: 2 });
  const v = verdictOf(p);
  assert.is(v.cause, 'healthy');
  assert.equal(connects(p), { default: true, nla: true, tls: false, rdp: false, validating: null });
  assert.is(v.clients, 'NLA required: clients without CredSSP fail');
  assert.match(v.summary, /NLA required: clients without CredSSP fail$/);
  const human = formatVerdict({ ...v, endpoint: p.endpoint });
  assert.is(human.split('NLA required: clients without CredSSP fail').length, 2, 'said once, in the summary line');
  assert.match(formatVerdict({ ...verdictOf(probe()), endpoint: p.endpoint }), /\n {2}\S*Clients:\S* connect: default, tls; cannot tell: nla, rdp, validating\n/);
  assert.match(v.evidence.join('\n'), /client check \(client check\): asked for RDP; server answered RDP_NEG_FAILURE 5/);
  // Standard RDP Security accepted: CredSSP is not required, a TLS-only client gets in too.
  assert.equal(connects({ ...p, clientChecks: [step(0, { selectedProtocol: 0 })] }), { default: true, nla: true, tls: true, rdp: true, validating: null });
});

clients('Standard RDP Security only: the cause stays security-layer-mismatch, but a default client falls back and connects', () => {
  const p = probe({ negotiation: { ...SSL_RSP, selectedProtocol: 0, selectedNames: ['RDP'] }, tls: null });
  const v = verdictOf(p);
  assert.is(v.cause, 'security-layer-mismatch');
  assert.match(v.summary, /a client that requires TLS or NLA is refused \(a default client falls back to it and connects\)/);
  assert.equal(connects(p), { default: true, nla: false, tls: false, rdp: true, validating: false });
  assert.match(v.clients, /^Standard RDP Security only: clients that require TLS or NLA fail/);
  assert.match(v.compatibility.find((c) => c.client === 'validating')!.why, /no certificate to check/);
  const legacy = probe({ negotiation: { ...SSL_RSP, outcome: 'no-negotiation', selectedProtocol: undefined }, tls: null });
  assert.equal(connects(legacy), { default: true, nla: false, tls: false, rdp: true, validating: false });
});

clients('TLS chosen: the CredSSP-only check answers nla (and rdp when the server picked Standard RDP Security)', () => {
  // xrdp negotiate: HYBRID only -> Standard RDP Security.
  assert.equal(connects(probe({ tls: SELF_SIGNED, clientChecks: [step(2, { selectedProtocol: 0 })], connections: 2 })), { default: true, nla: false, tls: true, rdp: true, validating: null });
  // xrdp security_layer=tls: HYBRID only -> SSL_REQUIRED_BY_SERVER, which refuses Standard RDP Security too.
  assert.equal(connects(probe({ tls: SELF_SIGNED, clientChecks: [fail(2, 1, 'SSL_REQUIRED_BY_SERVER')], connections: 2 })), { default: true, nla: false, tls: true, rdp: false, validating: null });
  // FreeRDP's server: HYBRID only refused with SSL_NOT_ALLOWED, Standard RDP Security accepted.
  assert.equal(connects(probe({ tls: SELF_SIGNED, clientChecks: [fail(2, 2, 'SSL_NOT_ALLOWED_BY_SERVER'), step(0, { selectedProtocol: 0 })], connections: 3 })), { default: true, nla: false, tls: true, rdp: true, validating: null });
  // No connection left: said so, not guessed.
  const v = verdictOf(probe({ tls: SELF_SIGNED, connections: 5 }));
  assert.equal(v.compatibility.filter((c) => c.connects === null).map((c) => c.client), ['nla', 'rdp', 'validating']);
  assert.match(v.compatibility.find((c) => c.client === 'nla')!.why, /no connection left/);
});

clients('the certificate decides validating; a broken TLS handshake fails every TLS and CredSSP client', () => {
  const expired = probe({ tls: { ...TLS_OK, certificate: { ...CERT, expired: true, daysLeft: -10 } }, clientChecks: [step(2, { selectedProtocol: 0 })] });
  assert.is(verdictOf(expired).cause, 'certificate-expired');
  assert.equal(connects(expired), { default: true, nla: false, tls: true, rdp: true, validating: false });
  assert.is(connects(probe({ tls: TLS_OK, clientChecks: [step(2, { selectedProtocol: 0 })] })).validating, null, 'trusted here; the name the client uses is not known');
  const broken = probe({ tls: tlsFail('not-tls', { bytesReceived: 9 }), clientChecks: [step(0, { selectedProtocol: 0 })] });
  assert.equal(connects(broken), { default: false, nla: false, tls: false, rdp: true, validating: false });
});

clients('refusals: SSL not allowed falls back to Standard RDP Security; no certificate fails all; nothing listening fails all; an unstable path cannot say', () => {
  const notAllowed = probe({ negotiation: fail(0x0b, 2, 'SSL_NOT_ALLOWED_BY_SERVER'), followUps: [step(0, { selectedProtocol: 0, why: 'f' })], tls: null });
  assert.equal(connects(notAllowed), { default: true, nla: false, tls: false, rdp: true, validating: false });
  const noCert = probe({ negotiation: fail(0x0b, 3, 'SSL_CERT_NOT_ON_SERVER'), tls: null, clientChecks: [fail(0, 3, 'SSL_CERT_NOT_ON_SERVER')] });
  assert.equal(connects(noCert), { default: false, nla: false, tls: false, rdp: false, validating: false });
  // Closed when asked for TLS/NLA, answers Standard RDP Security: only an rdp client gets in.
  const closed = probe({ negotiation: { ...SSL_RSP, outcome: 'closed', selectedProtocol: undefined }, followUps: [step(0, { selectedProtocol: 0, why: 'f' })], tls: null });
  assert.is(verdictOf(closed).cause, 'closed-by-server');
  assert.equal(connects(closed), { default: false, nla: null, tls: null, rdp: true, validating: false });
  assert.equal(connects({ ...closed, followUps: [step(0, { outcome: 'closed', why: 'f' })] }), { default: false, nla: false, tls: false, rdp: false, validating: false });
  const refused = verdictOf(probe({ connect: { outcome: 'refused', ms: 1 }, negotiation: null, tls: null }));
  assert.ok(refused.compatibility.every((c) => c.connects === false && /nothing listens/.test(c.why)));
  assert.is(refused.clients, 'no client connects');
  const lossy = verdictOf(probe({ clientChecks: [step(2, { selectedProtocol: 0 })] }), net(sample(4)));
  assert.is(lossy.cause, 'unstable-network');
  assert.ok(lossy.compatibility.every((c) => c.connects === null));
});

clients.run();
