// diagnose --emit for real: the PowerShell script that `diagnose HOST:PORT --emit` prints, run by
// pwsh in the lab's CLIENT namespace against the scenarios test/lab/diagnose.lab.test.ts uses (the
// same servers, peers and paths, built here with the same helpers), and its cause compared with the
// TypeScript diagnose's for the same listener at the same time.
//
// What is not the emitted script, and why (this is Linux, the script is for Windows):
// - Assert-RdpHost (the loader's guard) refuses anything but Windows, so its one call line is left
//   out, as handshake.lab.test.ts composes the handshake functions without it; every other byte is
//   what --emit prints. The boundary functions (Test-RdpHandshake, Get-RdpRouteMtu, Invoke-RdpPing)
//   run for real: .NET sockets, SslStream (on OpenSSL here, SChannel on Windows), NetworkInformation.
// - There is no ping.exe: a shim named ping.exe on PATH (written below) runs Linux
//   `ping -M do -s SIZE -c 1 -W SECS ADDRESS` for ping.exe's `-f -l SIZE -n 1 -w MS ADDRESS` and
//   prints what ping.exe prints for the outcome ("Reply from ...: bytes=N time=Nms TTL=64",
//   "Packet needs to be fragmented but DF set." for the local "message too long" and a router's
//   "Frag needed", "Request timed out." for silence) with ping.exe's exit codes. The script itself has
//   no Linux code path.
// One pwsh per topology runs every port's script in turn (`& file.ps1`: the script's own scope).
// Run: npx tsx test/lab/diagnose-ps.lab.test.ts  (needs root, netns, xrdp, openssl, socat, iptables, ping, pwsh)
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DiagnoseOptions, DiagnoseReport } from '../../scripts/diagnose.ts';
import { diagnoseScript } from '../../scripts/lib/diagnose-ps.ts';
import { extractResult, RESULT_BEGIN } from '../../scripts/lib/ps.ts';
import { pwshGate, pwshPath } from '../helpers/pwsh.ts';
import { cleanupStaleLab, createTopology, type Topology } from './netns.ts';
import { startPeers, startSocatCloser } from './peers.ts';
import { labGate, labMissing } from './prereq.ts';
import { RDPFIX_CALLS } from './rdpfix-calls.ts';
import { negFailure } from './rdp-bytes.ts';
import { labCerts, startXrdp } from './xrdp.ts';

interface PsReport { cause: string; status: string; confidence: number; summary: string; evidence: string[]; recipe: string | null; next: string[]; compatibility: Array<{ client: string; connects: boolean | null }>; network: { pathMtu: null | { status: string; pathMtu: number | null; interfaceMtu: number | null } }; connections: { total: number } }
interface PsRun { port: number; ms: number; text: string; report: PsReport }

const PING_SHIM = `#!/bin/sh
# ping.exe -f -l SIZE -n 1 -w MS ADDRESS, answered by Linux ping with DF set, in ping.exe's words.
size=32; ms=4000; addr=
while [ $# -gt 0 ]; do
  case "$1" in
    -f) shift ;;
    -l) size=$2; shift 2 ;;
    -n) shift 2 ;;
    -w) ms=$2; shift 2 ;;
    *) addr=$1; shift ;;
  esac
done
secs=$(( (ms + 999) / 1000 ))
out=$(LC_ALL=C ping -n -4 -c 1 -W "$secs" -M do -s "$size" "$addr" 2>&1)
echo
echo "Pinging $addr with $size bytes of data:"
case "$out" in
  *"message too long"*|*"Frag needed"*|*"frag needed"*) echo "Packet needs to be fragmented but DF set."; exit 1 ;;
  *" bytes from "*) t=$(printf '%s\\n' "$out" | sed -n 's/.*time=\\([0-9]*\\).*/\\1/p' | head -n 1); echo "Reply from $addr: bytes=$size time=\${t:-0}ms TTL=64"; exit 0 ;;
  *) echo "Request timed out."; exit 1 ;;
esac
`;

async function bounded<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([fn(), new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: over ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** The emitted script with its one host-guard line left out (see the header). */
export function labScript(target: string, timeoutMs: number): string {
  const s = diagnoseScript(target, { timeoutMs });
  const lines = s.split('\n');
  const at = lines.flatMap((l, i) => (l === 'Assert-RdpHost' ? [i] : []));
  assert.equal(at.length, 1, 'one host-guard line in the emitted script');
  lines[at[0]!] = '# Assert-RdpHost left out: this is the Linux lab (test/lab/diagnose-ps.lab.test.ts)';
  return lines.join('\n');
}

/** Every port's emitted script, run in turn by one pwsh in the client namespace. */
async function runEmitted(topo: Topology, ports: number[], timeoutMs: number): Promise<{ runs: PsRun[]; wallMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'rfx-diagnose-ps-'));
  try {
    writeFileSync(join(dir, 'ping.exe'), PING_SHIM);
    chmodSync(join(dir, 'ping.exe'), 0o755);
    const files = ports.map((port) => {
      const f = join(dir, `diagnose-${port}.ps1`);
      writeFileSync(f, labScript(`${topo.server.addr}:${port}`, timeoutMs));
      return f;
    });
    writeFileSync(join(dir, 'run.ps1'), [
      `foreach ($f in @(${files.map((f) => `'${f}'`).join(', ')})) {`,
      '    $watch = [System.Diagnostics.Stopwatch]::StartNew()',
      '    $out = (& $f 2>&1 | ForEach-Object -Process { [string]$_ }) -join "`n"',
      "    Write-Output ('@@run@@' + ([ordered]@{ file = $f; ms = [Math]::Round($watch.Elapsed.TotalMilliseconds); out = $out } | ConvertTo-Json -Compress))",
      '}',
      '',
    ].join('\n'));
    const r = await topo.exec('client', [pwshPath()!, '-NoLogo', '-NoProfile', '-NonInteractive', '-File', join(dir, 'run.ps1')], { timeoutMs: 150_000, env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    const raw = r.stdout.split('\n').filter((l) => l.startsWith('@@run@@')).map((l) => JSON.parse(l.slice(7)) as { file: string; ms: number; out: string });
    assert.is(raw.length, ports.length, `one run per port\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
    const runs = raw.map((x, i) => ({ port: ports[i]!, ms: x.ms, text: x.out.slice(0, x.out.indexOf(RESULT_BEGIN)), report: extractResult<PsReport>(x.out) }));
    return { runs, wallMs: r.ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
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
const show = (p: PsRun, t?: DiagnoseReport) => JSON.stringify({ ps: { cause: p.report.cause, summary: p.report.summary, evidence: p.report.evidence }, ts: t && { cause: t.cause, summary: t.summary } }, null, 1).slice(0, 3000);

/** The agreement table, printed for the report. */
const table: string[] = [];
function row(scenario: string, ts: string, ps: string, ms: number): void {
  table.push(`${scenario.padEnd(58)} ${ts.padEnd(25)} ${ps.padEnd(25)} ${ts === ps ? 'same' : 'DIFFERENT'}  ${ms} ms`);
}

/** What every run's output must be: text first (verdict line first), then the JSON result. */
function assertShape(p: PsRun): void {
  assert.match(p.text, /^\[(OK|PROBLEM)\] [^\n]+: [a-z-]+ \(confidence \d\.\d\d\)\n/, p.text.slice(0, 300));
  assert.is(p.report.status, p.report.cause === 'healthy' ? 'ok' : 'failed');
  assert.ok(p.report.evidence.length > 0);
  assert.is(p.report.compatibility.length, 5);
}

if (labMissing(['root', 'netns']).length === 0) cleanupStaleLab();

const lab = suite('diagnose --emit: the pasted script in the client namespace names the cause diagnose names');

if (labGate('diagnose --emit: cause table (direct)', ['root', 'netns', 'iptables', 'xrdp', 'openssl', 'socat']) && pwshGate('diagnose --emit: cause table')) {
  lab('xrdp configurations, nothing listening, SYNs dropped, socat, non-RDP services, scripted failures', () =>
    bounded(120_000, 'table', async () => {
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
            { mode: 'stall', port: 3500 },
            { mode: 'banner', port: 4003 }, { mode: 'http', port: 4004 }, { mode: 'tls-alert', port: 4005 },
            { mode: 'tls-reset', port: 4007 }, { mode: 'stall', port: 4010 }, { mode: 'http-line', port: 4014 },
            ...[2, 3, 5, 6].map((code) => ({ mode: 'reply' as const, port: 4100 + code, hex: negFailure(code).toString('hex') })),
          ]),
          startSocatCloser(topo, 4020),
        ]);
        const want: [number, string][] = [
          [3389, 'xrdp, valid certificate'], [3390, 'xrdp security_layer=tls'], [3391, 'xrdp security_layer=rdp'],
          [3392, 'certificate and key do not match'], [3393, 'expired certificate'], [3394, 'security_layer=tls, certificate missing'],
          [3396, 'TLS 1.0 only'], [3399, 'nothing listening'], [3500, 'SYNs dropped'], [4003, 'SSH on the port'], [4004, 'HTTP on the port'],
          [4005, 'TLS alert handshake_failure'], [4007, 'reset right after the ClientHello'], [4010, 'no answer to the X.224 request'],
          [4014, 'an HTTP server that answers only a complete line'], [4102, 'RDP_NEG_FAILURE 2'], [4103, 'RDP_NEG_FAILURE 3'],
          [4105, 'RDP_NEG_FAILURE 5'], [4106, 'RDP_NEG_FAILURE 6'], [4020, 'socat accepts and closes'],
        ];
        const ports = want.map(([p]) => p);
        // Sequential in time: the TypeScript diagnose first (its own connects), then the pasted scripts.
        const ts = await diagnoseAll(topo, ports.map((port) => ({ host: topo.server.addr, port, opts: { x224TimeoutMs: 1500 } })));
        const { runs, wallMs } = await runEmitted(topo, ports, 1500);
        runs.forEach((p, i) => {
          row(`${want[i]![1]} (${p.port})`, ts[i]!.cause, p.report.cause, p.ms);
          assertShape(p);
        });
        runs.forEach((p, i) => {
          assert.is(p.report.cause, ts[i]!.cause, `${want[i]![1]} (port ${p.port}): the pasted script and diagnose disagree\n${show(p, ts[i])}`);
          assert.is(p.report.recipe, ts[i]!.recipe);
        });
        const healthy = runs[0]!;
        assert.ok([10, 15].includes(healthy.report.connections.total), `one handshake and nine sample connects (five more when the burst overflowed xrdp's listen queue and the paced re-check ran): ${JSON.stringify(healthy.report.connections)}`);
        assert.is(healthy.report.network.pathMtu, null, 'no path-MTU check when nothing points at the network');
        console.log(`diagnose --emit: ${ports.length} scripts in one pwsh: ${Math.round(wallMs)} ms; healthy ${healthy.ms} ms (first), refused ${runs[7]!.ms} ms, SYN drop ${runs[8]!.ms} ms, hung ${runs[13]!.ms} ms`);
      });
    }));
}

if (labGate('diagnose --emit: paths', ['root', 'netns', 'iptables', 'xrdp', 'openssl', 'ping']) && pwshGate('diagnose --emit: paths')) {
  lab('a path-MTU black hole (1400, no "fragmentation needed") is mtu-blackhole by the DF pings; the same path without it is healthy', () =>
    bounded(100_000, 'mtu', async () => {
      const certs = await labCerts();
      const one = (pmtuBlackhole: boolean) => withTopology({ kind: 'routed', pathMtu: 1400, pmtuBlackhole }, async (topo) => {
        await startXrdp(topo, { cert: certs.large });
        const ts = (await diagnoseAll(topo, [{ host: topo.server.addr, port: 3389 }]))[0]!;
        const { runs } = await runEmitted(topo, [3389], 3000);
        return { ts, ps: runs[0]! };
      });
      const [hole, fine] = await Promise.all([one(true), one(false)]);
      row('routed, path MTU 1400, black hole, large certificate', hole.ts.cause, hole.ps.report.cause, hole.ps.ms);
      row('routed, path MTU 1400, ICMP passes, large certificate', fine.ts.cause, fine.ps.report.cause, fine.ps.ms);
      assert.is(hole.ps.report.cause, hole.ts.cause, show(hole.ps, hole.ts));
      assert.is(hole.ps.report.cause, 'mtu-blackhole');
      assert.equal(hole.ps.report.network.pathMtu && [hole.ps.report.network.pathMtu.status, hole.ps.report.network.pathMtu.pathMtu, hole.ps.report.network.pathMtu.interfaceMtu], ['done', 1400, 1500], show(hole.ps));
      assert.is(hole.ps.report.confidence, 0.85, 'the DF pings confirm it (the small-segment retry is diagnose\'s own)');
      assert.match(hole.ps.text, /Fix \(recipe vpn-mtu\)/);
      assert.is(fine.ps.report.cause, fine.ts.cause, show(fine.ps, fine.ts));
      assert.is(fine.ps.report.cause, 'healthy');
      assertShape(hole.ps);
      assertShape(fine.ps);
    }));

  lab('random loss on the router is unstable-network', () =>
    bounded(100_000, 'loss', () =>
      // 40% each way, as diagnose.lab.test.ts: P(at most 1 of 10 connects lost) < 0.1%.
      withTopology({ kind: 'routed', lossToServer: 0.4, lossToClient: 0.4 }, async (topo) => {
        await startXrdp(topo, { cert: (await labCerts()).valid });
        const [ts] = await diagnoseAll(topo, [{ host: topo.server.addr, port: 3389, opts: { connectTimeoutMs: 2000, x224TimeoutMs: 2000, tlsTimeoutMs: 3000 } }]);
        const { runs } = await runEmitted(topo, [3389], 2000);
        const ps = runs[0]!;
        row('routed, 40% random loss each way', ts!.cause, ps.report.cause, ps.ms);
        assert.is(ts!.cause, 'unstable-network', JSON.stringify(ts!.summary));
        assert.is(ps.report.cause, 'unstable-network', show(ps, ts));
        assertShape(ps);
      })));
}

lab.after(() => {
  if (table.length) console.log(['', `${'scenario'.padEnd(58)} ${'diagnose'.padEnd(25)} ${'pasted script'.padEnd(25)} same?  time`, ...table].join('\n'));
});
lab.run();
