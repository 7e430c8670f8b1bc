// Benchmark: what a run-recipe fleet costs its own process as the fleet grows: `run-recipe RECIPE
// --hosts FILE --parallel N --json --summary` over lab hosts (80% healthy, 20% refusing, mixed
// order). The recipe is one client check (probe-rdp, expect healthy), so every host costs one step
// process (through ./rdpfix) and the runner's own memory is what grows or not: peak RSS of the
// run-recipe process (VmHWM read from outside, and its own getrusage in the summary), its most open
// file descriptors, wall time, per-host p50/p95 (each run's started..finished), and every host's
// result checked (healthy: completed, refusing: failed). The goal: RSS and descriptors flat as the
// hosts grow (each run is printed as it ends and dropped).
//
// The fleet is test/lab/fleet-scale.ts (one routed topology, one light responder); the journal goes
// to a temp folder. Namespaces and files are removed at the end, also on failure.
// BENCH_RUN_RECIPE: another run-recipe.ts to measure (e.g. an older commit's, without --summary).
// Run (as root): npx tsx bench/recipe-fleet.ts [PARALLEL] [SIZE...]     (default: 32 200 1000 2000)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetSummaryDoc } from '../scripts/lib/fleet.ts';
import { createScaleFleet } from '../test/lab/fleet-scale.ts';
import { cleanupStaleLab } from '../test/lab/netns.ts';
import { labMissing } from '../test/lab/prereq.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const RUN_RECIPE = process.env.BENCH_RUN_RECIPE ?? join(root, 'scripts', 'run-recipe.ts');
const withSummary = !process.env.BENCH_RUN_RECIPE;
const parallel = Number(process.argv[2] ?? 32);
const sizes = process.argv.slice(3).map(Number);
if (!sizes.length) sizes.push(200, 1000, 2000);
const WANT = { healthy: 'completed', refusing: 'failed' } as const;

const missing = labMissing(['root', 'netns', 'iptables', 'openssl']);
if (missing.length) {
  console.error(`bench/recipe-fleet.ts needs ${missing.join(', ')}`);
  process.exit(2);
}
cleanupStaleLab();

const dir = mkdtempSync(join(tmpdir(), 'rdpfix-bench-recipe-'));
const recipe = join(dir, 'probe-only.yaml');
writeFileSync(recipe, `name: probe-only
summary: one client check per host (the bench's recipe)
fixes: [no-listener]
steps:
  - name: Probe RDP
    check: probe-rdp
    args: ['{host}']
    expect: healthy
`);

const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
const rows: string[] = [];
const notes: string[] = [];
const load0 = loadavg()[0]!;
try {
  for (const size of sizes) {
    const counts = { healthy: Math.round(size * 0.8), refusing: size - Math.round(size * 0.8) };
    const fleet = await createScaleFleet(counts);
    try {
      const file = fleet.writeHostsFile();
      const kindOf = new Map(fleet.hosts.map((h) => [`${h.addr}:${h.port}`, h.kind as keyof typeof WANT]));
      const ms: number[] = [];
      const wrong: string[] = [];
      let summary: FleetSummaryDoc | undefined;
      const loadStart = loadavg()[0]!;
      const journal = mkdtempSync(join(dir, 'journal-'));
      const { watchNode } = await import('../test/lab/fleet-scale.ts');
      const r = await watchNode(fleet.topo, [RUN_RECIPE, recipe, '--hosts', file, '--parallel', String(parallel), '--json', '--journal', journal, ...(withSummary ? ['--summary'] : [])], (line) => {
        const d = JSON.parse(line) as { host?: string; result?: string; started?: string; finished?: string; fleet?: FleetSummaryDoc };
        if (d.fleet) {
          summary = d.fleet;
          return;
        }
        ms.push(Date.parse(d.finished ?? '') - Date.parse(d.started ?? ''));
        const kind = kindOf.get(d.host ?? '');
        if (!kind || d.result !== WANT[kind]) wrong.push(`${d.host} (${kind}): ${d.result}`);
      }, { cwd: root, timeoutMs: 3_600_000 });
      ms.sort((a, b) => a - b);
      const mean = ms.reduce((a, b) => a + b, 0) / (ms.length || 1);
      const ideal = (size / parallel) * mean;
      rows.push(`| ${size} | ${parallel} | ${(r.ms / 1000).toFixed(1)} s | ${q(ms, 0.5)} / ${q(ms, 0.95)} ms | ${(ideal / 1000).toFixed(1)} s | ${(r.ms / ideal).toFixed(2)}× | ${r.peakRssMb} MB${summary ? ` (own ${summary.peakRssMb} MB)` : ''} | ${r.maxOpenFds} | ${ms.length - wrong.length}/${size} | ${loadStart.toFixed(1)} |`);
      notes.push(`${size} hosts: exit ${r.exitCode}; ${r.samples} samples${r.stderr ? `; stderr: ${r.stderr.slice(0, 200)}` : ''}`);
      if (wrong.length) notes.push(`  wrong (${wrong.length}): ${wrong.slice(0, 5).join('; ')}`);
      console.error(rows.at(-1));
      rmSync(journal, { recursive: true, force: true });
    } finally {
      await fleet.destroy();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\nrun-recipe fleet: ${RUN_RECIPE === join(root, 'scripts', 'run-recipe.ts') ? 'run-recipe' : RUN_RECIPE} (one probe-rdp check a host) --hosts FILE --parallel ${parallel} --json${withSummary ? ' --summary' : ''}; hosts 80% healthy, 20% refusing`);
console.log(`Machine: ${cpus().length} CPUs, 1-min load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end\n`);
console.log('| hosts | parallel | wall | per host p50 / p95 | ideal (hosts / parallel × mean) | wall / ideal | peak RSS of run-recipe | max open fds | right result | load at start |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
console.log('');
for (const n of notes) console.log(n);
