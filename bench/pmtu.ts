// Benchmark: path-MTU discovery on a real black-hole path (lab: routed topology, router MTU 1400
// and 1337, ICMP "fragmentation needed" dropped), and on the same path with ICMP allowed.
//   ours      probePathMtu (lib/pmtu.ts, what lower-mtu --probe runs) (binary search, one retry for the deciding size)
//   sweep↓    the manual method: `ping -M do -s` from the interface MTU downwards, 1 byte at a time,
//             until a reply (what admins do with `ping -f -l` on Windows)
//   sweep↑    the same upwards from 576 until the first silence (fast replies, but hundreds of probes;
//             and one lost packet ends it too early)
//   tracepath `tracepath -n` (iputils): UDP with DF, learns the PMTU from ICMP only
// Per-probe timeout 1000 ms for everyone. Prints a table; run as root: npx tsx bench/pmtu.ts
import { isMain } from '../scripts/lib/cli.ts';
import { runPing } from '../scripts/lib/ping.ts';
import type { PmtuResult } from '../scripts/lib/pmtu.ts';
import { createTopology, type Topology } from '../test/lab/netns.ts';
import { bin, labMissing } from '../test/lab/prereq.ts';

const PMTU = new URL('../scripts/lib/pmtu.ts', import.meta.url);
const SELF = new URL(import.meta.url);
const TIMEOUT_MS = 1000;

export interface SweepResult {
  pathMtu: number | null;
  probes: number;
  ms: number;
}

/** Runs inside the client namespace (topology.call): linear don't-fragment sweep. */
export async function linearSweep(address: string, from: number, to: number, timeoutMs = TIMEOUT_MS): Promise<SweepResult> {
  const t0 = performance.now();
  const step = from > to ? -1 : 1;
  let probes = 0;
  let last: number | null = null;
  for (let mtu = from; step < 0 ? mtu >= to : mtu <= to; mtu += step) {
    probes++;
    const { outcome } = await runPing({ address, family: 4, df: true, payload: mtu - 28, timeoutMs });
    const ok = outcome.kind === 'reply';
    if (step < 0 && ok) return { pathMtu: mtu, probes, ms: Math.round(performance.now() - t0) };
    if (step > 0 && !ok) return { pathMtu: last, probes, ms: Math.round(performance.now() - t0) };
    if (ok) last = mtu;
  }
  return { pathMtu: last, probes, ms: Math.round(performance.now() - t0) };
}

async function tracepath(topo: Topology): Promise<{ pmtu: string; ms: number; tail: string }> {
  const r = await topo.exec('client', [bin('tracepath'), '-n', '-m', '4', topo.server.addr], { timeoutMs: 120_000 });
  const resume = /Resume:\s*pmtu\s+(\d+)/.exec(r.stdout)?.[1];
  const lastPmtu = [...r.stdout.matchAll(/pmtu\s+(\d+)/g)].at(-1)?.[1];
  const reached = /reached/.test(r.stdout);
  const pmtu = resume ? `${resume}${reached ? '' : ' (target not reached)'}` : lastPmtu ? `${lastPmtu} (no result; target not reached)` : 'none';
  return { pmtu, ms: r.ms, tail: r.stdout.trim().split('\n').slice(-3).join(' | ') };
}

interface Row {
  path: string;
  method: string;
  answer: string;
  exact: boolean;
  probes: number | string;
  seconds: string;
}

async function benchPath(truth: number, blackhole: boolean): Promise<Row[]> {
  const topo = await createTopology({ kind: 'routed', pathMtu: truth, pmtuBlackhole: blackhole });
  const path = `${blackhole ? 'black hole' : 'ICMP ok'} ${truth}`;
  const rows: Row[] = [];
  try {
    const addr = topo.server.addr;
    const ours = await topo.call<PmtuResult>('client', PMTU, 'probePathMtu', [{ host: addr, timeoutMs: TIMEOUT_MS }], { timeoutMs: 120_000 });
    rows.push({ path, method: 'ours (lower-mtu --probe)', answer: String(ours.pathMtu), exact: ours.pathMtu === truth, probes: ours.probes, seconds: (ours.elapsedMs / 1000).toFixed(1) });
    // Each method in a fresh state: with ICMP allowed the kernel caches the learned PMTU.
    if (!blackhole) await topo.exec('client', [bin('ip'), 'route', 'flush', 'cache'], { check: true });
    const down = await topo.call<SweepResult>('client', SELF, 'linearSweep', [addr, 1500, 576], { timeoutMs: 1_200_000 });
    rows.push({ path, method: 'linear sweep down (ping -M do)', answer: String(down.pathMtu), exact: down.pathMtu === truth, probes: down.probes, seconds: (down.ms / 1000).toFixed(1) });
    if (!blackhole) await topo.exec('client', [bin('ip'), 'route', 'flush', 'cache'], { check: true });
    const up = await topo.call<SweepResult>('client', SELF, 'linearSweep', [addr, 576, 1500], { timeoutMs: 1_200_000 });
    rows.push({ path, method: 'linear sweep up (ping -M do)', answer: String(up.pathMtu), exact: up.pathMtu === truth, probes: up.probes, seconds: (up.ms / 1000).toFixed(1) });
    if (!blackhole) await topo.exec('client', [bin('ip'), 'route', 'flush', 'cache'], { check: true });
    const tp = await tracepath(topo);
    rows.push({ path, method: 'tracepath -n', answer: tp.pmtu, exact: tp.pmtu === String(truth), probes: '-', seconds: (tp.ms / 1000).toFixed(1) });
    if (process.env.BENCH_DEBUG) console.error(`tracepath: ${tp.tail}`);
  } finally {
    await topo.destroy();
  }
  return rows;
}

async function main(): Promise<void> {
  const missing = labMissing(['root', 'netns', 'iptables', 'ping', 'tracepath']);
  if (missing.length) {
    console.error(`bench/pmtu.ts needs ${missing.join(', ')}`);
    process.exit(2);
  }
  const rows: Row[] = [];
  for (const [truth, bh] of [[1400, true], [1337, true], [1400, false]] as const) {
    console.error(`… ${bh ? 'black hole' : 'ICMP ok'} ${truth}`);
    rows.push(...(await benchPath(truth, bh)));
  }
  const head = ['path', 'method', 'answer', 'exact', 'probes', 'seconds'];
  const table = [head, ...rows.map((r) => [r.path, r.method, r.answer, r.exact ? 'yes' : 'no', String(r.probes), r.seconds])];
  const widths = head.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of table.slice(1)) console.log(line(r));
  console.log(`\nPer-probe timeout ${TIMEOUT_MS} ms everywhere; lab: routed client-router-server namespaces, node ${process.version}.`);
}

if (isMain(import.meta.url)) await main();
