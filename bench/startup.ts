// Benchmark: start-up, whole process, `--help` (parses the options and prints, no network): the fast
// path `./rdpfix NAME --help` for every script against `node -e 0` (the floor: Node itself), and for
// two scripts the source through tsx (`node --import tsx scripts/NAME.ts`, `npx tsx scripts/NAME.ts`).
// Same run, the order reversed every round, median of ROUNDS (default 7). Goal: every
// `rdpfix NAME --help` within 150 ms of `node -e 0`.
//
// Run: npx tsx bench/startup.ts [ROUNDS]      (no root, no lab; the bundles are built first)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const rounds = Math.max(5, Number(process.argv[2] ?? 7));
const names = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
const GOAL_MS = 150;

interface Cmd { label: string; argv: string[]; fast?: boolean }
const node = process.execPath;
const cmds: Cmd[] = [
  { label: 'node -e 0', argv: [node, '-e', '0'] },
  ...names.map((n) => ({ label: `./rdpfix ${n} --help`, argv: [node, join(root, 'rdpfix'), n, '--help'], fast: true })),
  ...['probe-rdp', 'diagnose'].flatMap((n) => [
    { label: `node --import tsx scripts/${n}.ts --help`, argv: [node, '--import', 'tsx', join('scripts', `${n}.ts`), '--help'] },
    { label: `npx tsx scripts/${n}.ts --help`, argv: ['npx', '--no-install', 'tsx', join('scripts', `${n}.ts`), '--help'] },
  ]),
];

// CPU time (user + sys) of the child through GNU time, where there is one: less sensitive than wall
// time to other work on a shared machine.
const gnuTime = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const cpu = new Map<string, number[]>(cmds.map((c) => [c.label, []]));

function time(c: Cmd): number {
  const argv = gnuTime ? [gnuTime, '-f', '@cpu %U %S', ...c.argv] : c.argv;
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${c.label} exited ${r.status}: ${r.stderr}`);
  const m = /@cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (m) cpu.get(c.label)!.push((Number(m[1]) + Number(m[2])) * 1000);
  return ms;
}

const build = spawnSync(node, [join(root, 'tools', 'build.mjs')], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) throw new Error(`tools/build.mjs: ${build.stderr}`);
// Warm-up (page cache, tsx's transform cache), not measured.
for (const c of cmds) time(c);
for (const xs of cpu.values()) xs.length = 0;

const load0 = loadavg()[0]!;
const times = new Map<string, number[]>(cmds.map((c) => [c.label, []]));
for (let r = 0; r < rounds; r++) for (const c of r % 2 ? [...cmds].reverse() : cmds) times.get(c.label)!.push(time(c));
const load1 = loadavg()[0]!;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const floor = median(times.get('node -e 0')!);
console.log(`Start-up, whole process, ${rounds} rounds (order reversed every round), median ms`);
console.log(`Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}; 1-min load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end${Math.max(load0, load1) > cpus().length ? ' (BUSY: other work competed for the CPUs)' : ''}\n`);
const cpuFloor = cpu.get('node -e 0')!.length ? median(cpu.get('node -e 0')!) : NaN;
console.log(`| command | median | min | − node -e 0 | goal (≤ ${GOAL_MS} ms over node) | CPU ms (user+sys, median) | CPU − node |`);
console.log('|---|---|---|---|---|---|---|');
let met = 0;
for (const c of cmds) {
  const xs = times.get(c.label)!;
  const over = median(xs) - floor;
  if (c.fast && over <= GOAL_MS) met++;
  const cs = cpu.get(c.label)!;
  const cpuCells = cs.length ? `${median(cs).toFixed(0)} | ${c.label === 'node -e 0' ? '–' : `+${(median(cs) - cpuFloor).toFixed(0)}`}` : '– | –';
  console.log(`| \`${c.label}\` | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${c.label === 'node -e 0' ? '–' : `+${over.toFixed(0)}`} | ${c.fast ? (over <= GOAL_MS ? 'met' : 'NOT met') : ''} | ${cpuCells} |`);
}
console.log(`\nrdpfix NAME --help within ${GOAL_MS} ms of node -e 0: ${met} / ${names.length} scripts`);
