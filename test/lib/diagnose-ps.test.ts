// diagnose --emit's PowerShell classifier (scripts/ps/diagnose.ps1 Get-RdpClientVerdict, over
// handshake.ps1's Get-RdpHandshakeFinding) against the TypeScript rules (lib/rdp-verdict.ts
// verdictOf): the same evidence objects, in the shape the pasted script gathers them (Test-RdpHandshake's
// evidence, the connect sample, the re-check, the path-MTU check), go to both (TypeScript through
// lib/diagnose-ps.ts probeOfClientEvidence), and the cause, the recipe, the fix commands and which
// clients connect must be equal, for every cause. One pwsh for all cases. Also: the --emit CLI
// (hostile input is exit 2 naming it, nothing probed; the script is ASCII, parses, needs no elevation).
// Run: npx tsx test/lib/diagnose-ps.test.ts
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CAUSE_NAMES } from '../../scripts/lib/causes.ts';
import { diagnoseScript, fixTable, probeOfClientEvidence, WINDOWS_CLIENT, type ClientEvidence, type HandshakeEvidence } from '../../scripts/lib/diagnose-ps.ts';
import { reachableFunctions, resolvePsFiles } from '../../scripts/lib/ps-loader.ts';
import { verdictOf, type ConnectSample, type SampleConnect } from '../../scripts/lib/rdp-verdict.ts';
import { pwshGate, pwshPath } from '../helpers/pwsh.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const DIAGNOSE = join(root, 'scripts', 'diagnose.ts');

// ---------------------------------------------------------------- evidence builders

const CHECKED = '2026-06-01T12:00:00.000Z';
const CERT = { thumbprint: 'AB'.repeat(20), subject: 'CN=rdp-lab-valid', issuer: 'CN=rdp-lab-valid', notBefore: '2026-01-01T00:00:00.000Z', notAfter: '2027-01-01T00:00:00.000Z' };

type Neg = NonNullable<HandshakeEvidence['negotiation']>;
type Tls = NonNullable<HandshakeEvidence['tls']>;
const neg = (o: Partial<Neg>): Neg => ({ requested: 11, outcome: 'response', type: 'RDP_NEG_RSP', selectedProtocol: 1, failureCode: null, bytes: 19, firstBytes: null, text: null, trailing: null, reason: null, ms: 1.2, error: null, ...o });
const tls = (o: Partial<Tls>): Tls => ({ outcome: 'ok', offered: 'Tls, Tls11, Tls12', protocol: 'Tls12', cipher: 'TLS_AES', policyErrors: 'RemoteCertificateChainErrors', alert: null, errorCode: null, firstBytes: null, error: null, ms: 4.2, certificate: CERT, ...o });
const failure = (code: number) => neg({ outcome: 'failure', type: 'RDP_NEG_FAILURE', selectedProtocol: null, failureCode: code });

function sample(outcomes: Array<SampleConnect['outcome'] | 'late'>, ms = 0.8, intervalMs = 20): ConnectSample {
  const results: SampleConnect[] = outcomes.map((o, i) => o === 'late' ? { i, outcome: 'accepted', ms: 1003, lost: true } : { i, outcome: o, ms: o === 'timeout' ? 1200 : ms, lost: o === 'timeout' });
  const answered = results.filter((r) => ['accepted', 'refused', 'reset'].includes(r.outcome));
  const times = answered.filter((r) => !r.lost).map((r) => r.ms).sort((a, b) => a - b);
  return {
    attempts: results.length, answered: answered.length, accepted: results.filter((r) => r.outcome === 'accepted').length, refused: results.filter((r) => r.outcome === 'refused').length,
    lost: results.filter((r) => r.lost).length, intervalMs, cutoffMs: 1200,
    rtt: times.length ? { min: times[0]!, p50: times[Math.ceil(times.length / 2) - 1]!, p95: times.at(-1)!, max: times.at(-1)!, avg: times[0]!, jitter: 0 } : null,
    results,
  };
}
const clean = sample(Array(10).fill('accepted'));

interface Case { name: string; want: string; e: ClientEvidence }

function ev(o: { tcp?: Partial<HandshakeEvidence['tcp']>; negotiation?: Neg | null; tls?: Tls | null; sample?: ConnectSample | null; sampleSkipped?: string | null; recheck?: ConnectSample | null; pathMtu?: ClientEvidence['pathMtu']; host?: string }): ClientEvidence {
  const tcp = { outcome: 'connected', ms: 0.9, error: null, ...o.tcp };
  const connected = tcp.outcome === 'connected';
  const negotiation = o.negotiation !== undefined ? o.negotiation : connected ? neg({}) : null;
  const withTls = negotiation?.outcome === 'response' && ((negotiation.selectedProtocol ?? 0) & 0xf) !== 0;
  return {
    host: o.host ?? '10.0.0.4', port: 3389, address: '10.0.0.4', dns: null,
    handshake: { address: '10.0.0.4', port: 3389, timeoutMs: 3000, checked: CHECKED, tcp, negotiation, tls: o.tls !== undefined ? o.tls : withTls ? tls({}) : null },
    sample: o.sample !== undefined ? o.sample : clean, sampleSkipped: o.sampleSkipped ?? null, recheck: o.recheck ?? null, pathMtu: o.pathMtu ?? null,
    thresholds: { maxRttMs: 500, maxLost: 2 },
  };
}
const mtu = (pathMtu: number | null, status: 'done' | 'skipped' | 'error' = 'done'): ClientEvidence['pathMtu'] => ({ status, host: '10.0.0.4', pathMtu, interface: 'Ethernet', interfaceMtu: 1500, probes: 12, blackhole: pathMtu !== null && pathMtu < 1500, reason: status === 'done' ? null : 'no result within 10000 ms', ms: 900 });
const lossy = sample(['accepted', 'late', 'accepted', 'timeout', 'accepted', 'late', 'accepted', 'accepted', 'accepted', 'accepted']);
const lossyRecheck = sample(['accepted', 'late', 'accepted', 'accepted', 'accepted'], 0.8, 100);
const pacedClean = sample(Array(5).fill('accepted'), 0.8, 100);
const oneLost = sample(['accepted', 'late', ...Array(8).fill('accepted')]);

const CASES: Case[] = [
  { name: 'xrdp: SSL, TLS 1.2, valid certificate', want: 'healthy', e: ev({}) },
  { name: 'HYBRID selected, TLS completes (NLA server)', want: 'healthy', e: ev({ negotiation: neg({ selectedProtocol: 2 }) }) },
  { name: 'HYBRID_EX selected', want: 'healthy', e: ev({ negotiation: neg({ selectedProtocol: 8 }) }) },
  { name: 'TLS completes, no certificate read', want: 'healthy', e: ev({ tls: tls({ certificate: null }) }) },
  { name: 'healthy, burst loss that paced connects clear (listen queue)', want: 'healthy', e: ev({ sample: lossy, recheck: pacedClean }) },
  { name: 'healthy, one connect lost (light loss)', want: 'healthy', e: ev({ sample: oneLost, recheck: null }) },
  { name: 'nothing listening', want: 'no-listener', e: ev({ tcp: { outcome: 'refused', ms: 0.4, error: 'ConnectionRefused' }, sample: null, sampleSkipped: 'refused' }) },
  { name: 'SYNs dropped, no sample connect answered', want: 'unreachable', e: ev({ tcp: { outcome: 'timeout', ms: 3000 }, sample: sample(Array(10).fill('timeout')) }) },
  { name: 'no route', want: 'unreachable', e: ev({ tcp: { outcome: 'unreachable', ms: 1, error: 'HostUnreachable' }, sample: null, sampleSkipped: 'no route' }) },
  { name: 'connect timed out, other connects answered', want: 'unstable-network', e: ev({ tcp: { outcome: 'timeout', ms: 3000 }, sample: sample(['timeout', 'accepted', 'timeout', 'accepted', 'accepted', 'timeout', 'accepted', 'accepted', 'accepted', 'accepted']), recheck: lossyRecheck }) },
  { name: 'healthy RDP on a lossy path', want: 'unstable-network', e: ev({ sample: lossy, recheck: lossyRecheck }) },
  { name: 'healthy RDP on a slow path', want: 'unstable-network', e: ev({ sample: sample(Array(10).fill('accepted'), 640) }) },
  { name: 'TLS flight lost on a lossy path', want: 'unstable-network', e: ev({ tls: tls({ outcome: 'timeout', protocol: null, certificate: null }), sample: lossy, recheck: lossyRecheck, pathMtu: mtu(1400) }) },
  { name: 'hung listener on a lossy path', want: 'unstable-network', e: ev({ negotiation: neg({ outcome: 'timeout', type: null, selectedProtocol: null, bytes: 0, ms: 3000 }), sample: lossy, recheck: lossyRecheck }) },
  { name: 'reset at once', want: 'closed-by-server', e: ev({ tcp: { outcome: 'reset', ms: 1, error: 'ConnectionReset' }, sample: clean }) },
  { name: 'closed before the negotiation answer (socat)', want: 'closed-by-server', e: ev({ negotiation: neg({ outcome: 'closed', type: null, selectedProtocol: null, bytes: 0 }) }) },
  { name: 'reset before the negotiation answer', want: 'closed-by-server', e: ev({ negotiation: neg({ outcome: 'reset', type: null, selectedProtocol: null, bytes: 0 }) }) },
  { name: 'SSH banner', want: 'not-rdp', e: ev({ negotiation: neg({ outcome: 'not-x224', type: null, selectedProtocol: null, bytes: 21, firstBytes: '5353482d322e30', text: 'SSH-2.0-OpenSSH_9.6\r\n', reason: 'not a TPKT header (first byte is not 3)' }) }) },
  { name: 'some bytes, then silence', want: 'not-rdp', e: ev({ negotiation: neg({ outcome: 'timeout', type: null, selectedProtocol: null, bytes: 2, firstBytes: '0300', ms: 3000 }) }) },
  { name: 'Standard RDP Security chosen', want: 'security-layer-mismatch', e: ev({ negotiation: neg({ selectedProtocol: 0 }) }) },
  { name: 'legacy confirm without negotiation', want: 'security-layer-mismatch', e: ev({ negotiation: neg({ outcome: 'no-negotiation', type: null, selectedProtocol: null, bytes: 11 }) }) },
  { name: 'RDSTLS selected (no TLS-based layer the probe does)', want: 'security-layer-mismatch', e: ev({ negotiation: neg({ selectedProtocol: 16 }), tls: null }) },
  ...[1, 2, 4].map((code) => ({ name: `RDP_NEG_FAILURE ${code}`, want: 'security-layer-mismatch', e: ev({ negotiation: failure(code) }) })),
  { name: 'RDP_NEG_FAILURE 3', want: 'certificate-key-unusable', e: ev({ negotiation: failure(3) }) },
  ...[5, 6].map((code) => ({ name: `RDP_NEG_FAILURE ${code}`, want: 'nla-required', e: ev({ negotiation: failure(code) }) })),
  { name: 'MCS disconnect instead of a ServerHello (key mismatch)', want: 'certificate-key-unusable', e: ev({ tls: tls({ outcome: 'not-tls', protocol: null, certificate: null, firstBytes: '0300000902f0802180' }) }) },
  { name: 'closed after the ClientHello', want: 'certificate-key-unusable', e: ev({ tls: tls({ outcome: 'closed', protocol: null, certificate: null }) }) },
  { name: 'reset after the ClientHello', want: 'certificate-key-unusable', e: ev({ tls: tls({ outcome: 'reset', protocol: null, certificate: null }) }) },
  { name: 'alert internal_error', want: 'certificate-key-unusable', e: ev({ tls: tls({ outcome: 'alert', alert: 'internal_error', protocol: null, certificate: null }) }) },
  { name: 'malformed TLS', want: 'certificate-key-unusable', e: ev({ tls: tls({ outcome: 'protocol-error', protocol: null, certificate: null, error: 'bad record' }) }) },
  { name: 'TLS flight lost although full-size packets pass', want: 'certificate-key-unusable', e: ev({ tls: tls({ outcome: 'timeout', protocol: null, certificate: null }), pathMtu: mtu(1500) }) },
  { name: 'expired certificate', want: 'certificate-expired', e: ev({ tls: tls({ certificate: { ...CERT, notBefore: '2019-01-01T00:00:00.000Z', notAfter: '2020-02-01T00:00:00.000Z' } }) }) },
  { name: 'certificate not yet valid', want: 'certificate-expired', e: ev({ tls: tls({ certificate: { ...CERT, notBefore: '2026-12-01T00:00:00.000Z' } }) }) },
  { name: 'alert handshake_failure', want: 'tls-version-mismatch', e: ev({ tls: tls({ outcome: 'alert', alert: 'handshake_failure', protocol: null, certificate: null }) }) },
  { name: 'alert protocol_version', want: 'tls-version-mismatch', e: ev({ tls: tls({ outcome: 'alert', alert: 'protocol_version', protocol: null, certificate: null }) }) },
  { name: 'SChannel error without an alert name', want: 'tls-version-mismatch', e: ev({ tls: tls({ outcome: 'alert', alert: null, errorCode: '0x80090331', protocol: null, certificate: null }) }) },
  { name: 'TLS completes only as TLS 1.0', want: 'tls-version-mismatch', e: ev({ tls: tls({ protocol: 'Tls' }) }) },
  { name: 'TLS completes only as TLS 1.1', want: 'tls-version-mismatch', e: ev({ tls: tls({ protocol: 'Tls11' }) }) },
  { name: 'TLS flight lost, path MTU 1400 < 1500', want: 'mtu-blackhole', e: ev({ tls: tls({ outcome: 'timeout', protocol: null, certificate: null }), pathMtu: mtu(1400) }) },
  { name: 'TLS flight lost, path-MTU check without result', want: 'mtu-blackhole', e: ev({ tls: tls({ outcome: 'timeout', protocol: null, certificate: null }), pathMtu: mtu(null, 'error') }) },
  { name: 'no answer to the X.224 request', want: 'listener-hung', e: ev({ negotiation: neg({ outcome: 'timeout', type: null, selectedProtocol: null, bytes: 0, ms: 3000 }) }) },
  { name: 'the name does not resolve', want: 'name-not-resolved', e: { ...ev({}), host: 'nosuch.invalid', address: null, dns: { ms: 3.1, code: 'ENOTFOUND', error: 'the lookup of nosuch.invalid failed (ENOTFOUND: No such host is known)' }, handshake: null, sample: null, sampleSkipped: 'the name does not resolve: there is no address to connect to' } },
];

/** The PowerShell classifier over every case, in one pwsh: one JSON verdict per case. */
function psVerdicts(cases: Case[]): Array<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'rfx-diagnose-ps-'));
  try {
    const functions = reachableFunctions(resolvePsFiles(['windows', 'diagnose']), ['Get-RdpClientVerdict']).map((f) => f.text).join('\n\n');
    writeFileSync(join(dir, 'cases.jsonl'), cases.map((c) => JSON.stringify({ fix: fixTable(c.e.host, c.e.port), e: c.e })).join('\n') + '\n');
    writeFileSync(join(dir, 'run.ps1'), [
      'Set-StrictMode -Version Latest',
      "$ErrorActionPreference = 'Stop'",
      functions,
      // -DateKind String: the evidence's ISO times stay text, as Test-RdpHandshake returns them.
      `foreach ($line in [System.IO.File]::ReadAllLines('${join(dir, 'cases.jsonl')}')) {`,
      '    $c = $line | ConvertFrom-Json -AsHashtable -DateKind String',
      "    Write-Output ('@@v@@' + ((Get-RdpClientVerdict -Evidence $c.e -Fix $c.fix) | ConvertTo-Json -Depth 8 -Compress))",
      '}',
      '',
    ].join('\n'));
    const r = spawnSync(pwshPath()!, ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', join(dir, 'run.ps1')], { encoding: 'utf8', timeout: 60_000 });
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('@@v@@')).map((l) => JSON.parse(l.slice(5)) as Record<string, unknown>);
    assert.is(lines.length, cases.length, `one verdict per case\n${r.stdout}\n${r.stderr}`);
    return lines;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rules = suite('diagnose --emit: the PowerShell classifier names the cause verdictOf names, on the same evidence');

rules('every cause, the recipe, the fix commands and which clients connect', () => {
  if (!pwshGate('diagnose --emit classifier')) return;
  const ps = psVerdicts(CASES);
  const covered = new Set<string>();
  CASES.forEach((c, i) => {
    const { probe, network } = probeOfClientEvidence(c.e);
    const ts = verdictOf(probe, network, WINDOWS_CLIENT);
    const p = ps[i]!;
    const show = JSON.stringify({ ps: { cause: p.cause, summary: p.summary, compatibility: p.compatibility }, ts: { cause: ts.cause, summary: ts.summary, compatibility: ts.compatibility } }, null, 1);
    assert.is(ts.cause, c.want, `${c.name}: TypeScript names ${ts.cause}\n${show}`);
    assert.is(p.cause, ts.cause, `${c.name}: PowerShell and TypeScript disagree\n${show}`);
    assert.is(p.recipe, ts.recipe, c.name);
    assert.equal(p.next, ts.next, c.name);
    assert.equal(p.notes, ts.notes, c.name);
    assert.equal((p.compatibility as Array<{ client: string; connects: boolean | null }>).map((x) => [x.client, x.connects]), ts.compatibility.map((x) => [x.client, x.connects]), `${c.name}: compatibility\n${show}`);
    assert.is(p.clients, ts.clients, `${c.name}: clients line`);
    assert.type(p.confidence, 'number');
    assert.ok(Array.isArray(p.evidence) && (p.evidence as unknown[]).length > 0, c.name);
    covered.add(ts.cause);
  });
  assert.equal(CAUSE_NAMES.filter((c) => !covered.has(c)), [], 'every cause has a case');
});
rules.run();

// ---------------------------------------------------------------- the CLI

const cli = suite('diagnose --emit: the CLI');

const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', DIAGNOSE, ...args], { encoding: 'utf8', cwd: root, timeout: 30_000, env: { ...process.env, PATH: '/nonexistent' } });

cli('hostile or malformed input: exit 2 naming what was typed, no script', () => {
  for (const bad of ["10.0.0.4'; Remove-Item C:\\ -Recurse; '", '$(calc)', 'a b', '10.0.0.4:99999', '0x7f000001', '[::1', 'host`name']) {
    const r = run([bad, '--emit']);
    assert.is(r.status, 2, `${bad}: ${r.stdout}${r.stderr}`);
    assert.is(r.stdout, '', `${bad}: nothing printed to stdout`);
    assert.ok(r.stderr.includes(JSON.stringify(bad).slice(1, -1).slice(0, 12)) || r.stderr.includes(bad.slice(0, 12)), `${bad}: named in ${r.stderr}`);
  }
  for (const extra of [['--json'], ['--fix'], ['--hosts', 'x.txt'], ['10.0.0.5']]) {
    const r = run(['10.0.0.4', '--emit', ...extra]);
    assert.is(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
  }
});

cli('the script: the host in $P only, ASCII, never elevated, the fix table from TypeScript', () => {
  const r = run(['vm1.contoso.com:3390', '--emit']);
  assert.is(r.status, 0, r.stderr);
  const s = r.stdout;
  assert.equal(s, diagnoseScript('vm1.contoso.com:3390', { timeoutMs: 3000 }));
  assert.ok(/^    HostName = 'vm1\.contoso\.com'$/m.test(s) && /^    Port = 3390$/m.test(s));
  assert.ok(/^Assert-RdpHost$/m.test(s), 'the host guard without -Elevated');
  assert.not.match(s, /Assert-RdpHost -Elevated|\belevated Windows PowerShell/);
  assert.not.match(s, /[^\x00-\x7f]/);
  assert.match(s, /npx tsx scripts\/run-recipe\.ts azure-vm-cert --host vm1\.contoso\.com:3390 --target winrm:\/\/vm1\.contoso\.com/);
  // The host appears in function bodies nowhere: only in the $P block (and the header line).
  const body = s.slice(s.indexOf('$Result = [ordered]@{'));
  assert.not.match(body.replace(/^\s+Fix = .*$/m, ''), /vm1\.contoso/);
});
cli.run();
