// Benchmark: what a fleet run costs as the fleet grows: `diagnose --hosts FILE --parallel N --json
// --summary` over 200, 2,000 and 10,000 lab hosts (70% healthy, 20% refusing, 5% SYNs dropped, 5% PMTU
// black holes, mixed order), whole process as a user runs it. Per size: wall time, per-host p50/p95
// and mean (the reports' own `ms`), the ideal (hosts / parallel x mean per-host time) and the wall's
// ratio to it (goal: within 2x), peak RSS (the process's getrusage, and VmHWM read from outside), the
// most open file descriptors (/proc/PID/fd, sampled every 20 ms from outside), and every host's
// cause checked against what the lab built. The goal: RSS and descriptors flat as hosts grow
// (results stream out and are dropped; descriptors follow --parallel), wall time linear.
//
// The fleet is test/lab/fleet-scale.ts: one routed topology, address ranges instead of per-host set-up,
// one light responder. Namespaces are removed at the end, also on failure.
// "wall" is the whole process (node start, module load, reading the hosts file); "in-process" the
// summary's own time from the first host started to the last finished.
// Run (as root): npx tsx bench/fleet-scale.ts [PARALLEL] [SIZE...]     (default: 64 200 2000 10000)
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetSummaryDoc } from '../scripts/lib/fleet.ts';
import { createScaleFleet, FLEET_EXPECT, watchNode, type FleetKind } from '../test/lab/fleet-scale.ts';
import { cleanupStaleLab } from '../test/lab/netns.ts';
import { labMissing } from '../test/lab/prereq.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
// BENCH_DIAGNOSE: another diagnose.ts to measure (e.g. an older commit's, without --summary);
// BENCH_NODE_ARGS: node options for the measured process (e.g. --max-old-space-size=48).
const DIAGNOSE = process.env.BENCH_DIAGNOSE ?? join(root, 'scripts', 'diagnose.ts');
const withSummary = !process.env.BENCH_DIAGNOSE;
const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const parallel = Number(process.argv[2] ?? 64);
const sizes = process.argv.slice(3).map(Number);
if (!sizes.length) sizes.push(200, 2000, 10_000);
const SHARE: Record<FleetKind, number> = { healthy: 0.7, refusing: 0.2, 'syn-dropped': 0.05, 'pmtu-blackhole': 0.05 };

const missing = labMissing(['root', 'netns', 'iptables', 'openssl', 'ping']);
if (missing.length) {
  console.error(`bench/fleet-scale.ts needs ${missing.join(', ')}`);
  process.exit(2);
}
cleanupStaleLab();

const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
const rows: string[] = [];
const notes: string[] = [];
const load0 = loadavg()[0]!;
for (const size of sizes) {
  const counts = Object.fromEntries(Object.entries(SHARE).map(([k, s]) => [k, Math.round(size * s)])) as Record<FleetKind, number>;
  const t0 = performance.now();
  const fleet = await createScaleFleet(counts);
  const setupMs = Math.round(performance.now() - t0);
  try {
    const file = fleet.writeHostsFile();
    const kindOf = new Map(fleet.hosts.map((h) => [`${h.addr}:${h.port}`, h.kind]));
    const ms: number[] = [];
    const wrong: string[] = [];
    let summary: FleetSummaryDoc | undefined;
    const loadStart = loadavg()[0]!;
    const r = await watchNode(fleet.topo, [...nodeArgs, DIAGNOSE, '--hosts', file, '--parallel', String(parallel), '--json', ...(withSummary ? ['--summary'] : [])], (line) => {
      const d = JSON.parse(line) as { endpoint?: string; cause: string; ms: number; summary: string; fleet?: FleetSummaryDoc };
      if (d.fleet) {
        summary = d.fleet;
        return;
      }
      ms.push(d.ms);
      const kind = kindOf.get(d.endpoint!);
      if (!kind || d.cause !== FLEET_EXPECT[kind]) wrong.push(`${d.endpoint} (${kind}): ${d.cause} — ${d.summary}`);
    }, { cwd: root, timeoutMs: 1_800_000 });
    ms.sort((a, b) => a - b);
    const mean = ms.reduce((a, b) => a + b, 0) / (ms.length || 1);
    const ideal = (size / parallel) * mean;
    const total = fleet.hosts.length;
    rows.push(`| ${total} | ${parallel} | ${(r.ms / 1000).toFixed(1)} s (${((summary?.ms ?? 0) / 1000).toFixed(1)} s) | ${q(ms, 0.5)} / ${q(ms, 0.95)} ms | ${Math.round(mean)} ms | ${(ideal / 1000).toFixed(1)} s | ${(r.ms / ideal).toFixed(2)}× | ${summary?.peakRssMb ?? '?'} MB (VmHWM ${r.peakRssMb} MB) | ${r.maxOpenFds} | ${ms.length - wrong.length}/${total} | ${loadStart.toFixed(1)} |`);
    notes.push(`${total} hosts: set-up ${setupMs} ms (${fleet.setupCommands} commands); exit ${r.exitCode}; ${r.samples} fd samples; the process's own summary: p50/p95 ${summary?.perHostMs?.p50}/${summary?.perHostMs?.p95} ms, max open fds seen inside ${summary?.maxOpenFds}${r.stderr ? `; stderr: ${r.stderr.slice(0, 200)}` : ''}`);
    if (wrong.length) notes.push(`  misdiagnosed (${wrong.length}): ${wrong.slice(0, 5).join('; ')}`);
    console.error(rows.at(-1));
  } finally {
    await fleet.destroy();
  }
}
const { execSync } = await import('node:child_process');
const nofile = execSync('ulimit -n', { shell: '/bin/sh', encoding: 'utf8' }).trim();
console.log(`\nFleet scale: ${nodeArgs.length ? `node ${nodeArgs.join(' ')} ` : ''}${DIAGNOSE === join(root, 'scripts', 'diagnose.ts') ? 'diagnose' : DIAGNOSE} --hosts FILE --parallel ${parallel} --json${withSummary ? ' --summary' : ''}; hosts 70% healthy, 20% refusing, 5% SYNs dropped, 5% PMTU black holes`);
console.log(`Machine: ${cpus().length} CPUs, 1-min load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end; open-files limit (ulimit -n) ${nofile}\n`);
console.log('| hosts | parallel | wall (in-process) | per host p50 / p95 | per host mean | ideal (hosts / parallel × mean) | wall / ideal | peak RSS | max open fds | correct | load at start |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
console.log('');
for (const n of notes) console.log(n);
