// Benchmark: diagnose a fleet of 200 lab hosts (healthy, refusing, SYNs dropped, PMTU black hole,
// mixed) with `--hosts FILE --parallel 64`, whole process as a user runs it; compare the wall time
// with the longest single-host diagnosis (each kind diagnosed alone, same lab). Goal: the fleet
// takes less than 2x the longest single host, i.e. it is bounded by the timeouts, not their sum.
// Every host's cause is checked against what the lab built.
//
// The fleet is one routed topology whose server namespace has one address (and one xrdp) per host:
// see test/lab/fleet.ts for why. Namespaces are removed at the end, also on failure.
// Run (as root): npx tsx bench/fleet.ts [PARALLEL]
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DiagnoseReport } from '../scripts/diagnose.ts';
import { DEFAULT_TIMEOUTS } from '../scripts/lib/probe.ts';
import { createFleet, FLEET_EXPECT, type FleetKind } from '../test/lab/fleet.ts';
import { cleanupStaleLab } from '../test/lab/netns.ts';
import { labMissing } from '../test/lab/prereq.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const DIAGNOSE = join(root, 'scripts', 'diagnose.ts');
const parallel = Number(process.argv[2] ?? 64);
const COUNTS: Record<FleetKind, number> = { healthy: 100, refusing: 50, 'syn-dropped': 25, 'pmtu-blackhole': 25 };

const missing = labMissing(['root', 'netns', 'iptables', 'xrdp', 'openssl', 'ping']);
if (missing.length) {
  console.error(`bench/fleet.ts needs ${missing.join(', ')}`);
  process.exit(2);
}
cleanupStaleLab();

const load0 = loadavg()[0]!;
const t0 = performance.now();
const fleet = await createFleet(COUNTS);
const setupMs = Math.round(performance.now() - t0);
try {
  const { topo, hosts } = fleet;
  const file = fleet.writeHostsFile();

  // Each kind alone, whole process, as the reference "single host".
  const single: { kind: FleetKind; wall: number; inProcess: number; cause: string }[] = [];
  for (const kind of Object.keys(COUNTS) as FleetKind[]) {
    const h = hosts.find((x) => x.kind === kind)!;
    // Same settings as the fleet run (--hosts defaults to --path-mtu unproven).
    const r = await topo.runNode('client', [DIAGNOSE, `${h.addr}:${h.port}`, '--json', '--path-mtu', 'unproven'], { cwd: root, timeoutMs: 120_000 });
    const doc = JSON.parse(r.stdout) as DiagnoseReport;
    single.push({ kind, wall: r.ms, inProcess: doc.ms, cause: doc.cause });
  }
  const longest = Math.max(...single.map((s) => s.wall));

  const r = await topo.runNode('client', [DIAGNOSE, '--hosts', file, '--parallel', String(parallel), '--json'], { cwd: root, timeoutMs: 600_000 });
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as DiagnoseReport);
  const wrong: string[] = [];
  const perKind = new Map<FleetKind, { n: number; ok: number; maxMs: number }>();
  for (const l of lines) {
    const h = hosts.find((x) => `${x.addr}:${x.port}` === l.endpoint)!;
    const k = perKind.get(h.kind) ?? { n: 0, ok: 0, maxMs: 0 };
    perKind.set(h.kind, k);
    k.n++;
    k.maxMs = Math.max(k.maxMs, l.ms);
    if (l.cause === FLEET_EXPECT[h.kind]) k.ok++;
    else wrong.push(`${l.endpoint} (${h.kind}): ${l.cause} — ${l.summary}`);
  }
  const load1 = loadavg()[0]!;

  console.log(`\nFleet of ${hosts.length} lab hosts (${Object.entries(COUNTS).map(([k, n]) => `${n} ${k}`).join(', ')}), diagnose --parallel ${parallel}`);
  console.log(`Machine: ${cpus().length} CPUs; 1-min load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end. Lab set-up (3 namespaces, ${hosts.length} addresses, one responder with ${hosts.filter((h) => h.kind === 'healthy' || h.kind === 'pmtu-blackhole').length} listeners): ${setupMs} ms`);
  console.log(`Step timeouts: connect ${DEFAULT_TIMEOUTS.connectMs} ms, X.224 ${DEFAULT_TIMEOUTS.x224Ms} ms, TLS ${DEFAULT_TIMEOUTS.tlsMs} ms\n`);
  console.log('| single host (alone, whole process, same options as the fleet) | wall ms | in-process ms | cause |');
  console.log('|---|---|---|---|');
  for (const s of single) console.log(`| ${s.kind} | ${s.wall} | ${s.inProcess} | ${s.cause} |`);
  console.log('\n| fleet | value |');
  console.log('|---|---|');
  console.log(`| hosts / JSON lines | ${hosts.length} / ${lines.length} |`);
  console.log(`| wall time (whole process) | ${r.ms} ms |`);
  console.log(`| longest single host | ${longest} ms |`);
  console.log(`| fleet / longest single host | ${(r.ms / longest).toFixed(2)}× (goal < 2×: ${r.ms < 2 * longest ? 'met' : 'NOT met'}) |`);
  console.log(`| sum of the single-host times if run one by one (estimate) | ${Math.round(hosts.reduce((a, h) => a + single.find((s) => s.kind === h.kind)!.inProcess, 0))} ms |`);
  for (const [kind, k] of perKind) console.log(`| ${kind}: correct / slowest in the fleet | ${k.ok}/${k.n} / ${k.maxMs} ms |`);
  console.log(`| exit code | ${r.exitCode} |`);
  if (wrong.length) console.log(`\nMisdiagnosed (${wrong.length}):\n${wrong.slice(0, 20).join('\n')}`);
} finally {
  await fleet.destroy();
}
