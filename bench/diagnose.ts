// Benchmark: `diagnose` of a healthy xrdp, whole process as a user runs it, against
// `nmap -n -Pn -p PORT --script rdp-enum-encryption` on the same target in the same run: wall time
// and what each costs the server (SYNs, connections accepted, RDP negotiations). Then what each
// reports for a healthy, an expired-certificate and a broken-key server.
//
// Run (as root, in the lab; nothing leaves the lab namespaces): npx tsx bench/diagnose.ts [ROUNDS]
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupStaleLab, createTopology, type Topology } from '../test/lab/netns.ts';
import { bin, labMissing } from '../test/lab/prereq.ts';
import { labCerts, startXrdp, type Xrdp } from '../test/lab/xrdp.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const rounds = Number(process.argv[2] ?? 10);
const missing = labMissing(['root', 'netns', 'iptables', 'xrdp', 'openssl', 'nmap']);
if (missing.length) {
  console.error(`bench/diagnose.ts needs ${missing.join(', ')}`);
  process.exit(2);
}
cleanupStaleLab();

interface Tool {
  name: string;
  argv: (addr: string, port: number) => string[];
}

const NMAP = 'nmap -n -Pn -p PORT --script rdp-enum-encryption HOST';
const TOOLS: Tool[] = [
  // The fast path (./rdpfix runs dist/NAME.mjs, built by `npm ci`; built here if missing).
  { name: './rdpfix diagnose HOST --json', argv: (a, p) => [process.execPath, join(root, 'rdpfix'), 'diagnose', `${a}:${p}`, '--json'] },
  { name: './rdpfix probe-rdp HOST --json', argv: (a, p) => [process.execPath, join(root, 'rdpfix'), 'probe-rdp', `${a}:${p}`, '--json'] },
  { name: 'npx tsx scripts/diagnose.ts HOST --json', argv: (a, p) => ['npx', '--no-install', 'tsx', 'scripts/diagnose.ts', `${a}:${p}`, '--json'] },
  { name: 'node --import tsx scripts/diagnose.ts HOST --json', argv: (a, p) => [process.execPath, '--import', 'tsx', 'scripts/diagnose.ts', `${a}:${p}`, '--json'] },
  { name: 'node --import tsx scripts/probe-rdp.ts HOST --json', argv: (a, p) => [process.execPath, '--import', 'tsx', 'scripts/probe-rdp.ts', `${a}:${p}`, '--json'] },
  { name: NMAP, argv: (a, p) => [bin('nmap'), '-n', '-Pn', '-p', String(p), '--script', 'rdp-enum-encryption', a] },
];

async function synCount(topo: Topology, port: number): Promise<number> {
  const r = await topo.exec('server', [bin('iptables'), '-w', '-L', 'INPUT', '-v', '-n', '-x'], { check: true });
  const line = r.stdout.split('\n').find((l) => l.includes(`dpt:${port}`) && l.includes('flags:0x17/0x02'));
  return Number(line?.trim().split(/\s+/)[0] ?? NaN);
}

function logCounts(x: Xrdp): { accepted: number; negotiations: number } {
  const log = x.log();
  return { accepted: (log.match(/connection received from/g) ?? []).length, negotiations: (log.match(/Security protocol: /g) ?? []).length };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

const certs = await labCerts();
const load0 = loadavg()[0]!;
// nmap's script only runs on port 3389 (or a detected ms-wbt-server): one topology per server kind.
const [topo, topoExpired, topoBroken] = await Promise.all([createTopology({ kind: 'direct' }), createTopology({ kind: 'direct' }), createTopology({ kind: 'direct' })]);
try {
  const healthy = await startXrdp(topo, { port: 3389, cert: certs.valid });
  await startXrdp(topoExpired, { port: 3389, cert: certs.expired });
  await startXrdp(topoBroken, { port: 3389, cert: certs.mismatched });
  const addr = topo.server.addr;
  await topo.iptables('server', ['-A', 'INPUT', '-p', 'tcp', '--syn', '--dport', '3389']);

  // Warm-up (tsx's transform cache, a missing or stale bundle rebuilt, nmap's script database), not measured.
  for (const t of TOOLS) await topo.exec('client', t.argv(addr, 3389), { cwd: root, timeoutMs: 120_000 });

  const stats = new Map<string, { wall: number[]; syns: number[]; accepted: number[]; negotiations: number[]; inProcess: number[]; cause?: string; cert?: string }>();
  for (let r = 0; r < rounds; r++) {
    // Alternate the order, so neither tool always runs first.
    const order = r % 2 ? [...TOOLS].reverse() : TOOLS;
    for (const t of order) {
      const s = stats.get(t.name) ?? { wall: [], syns: [], accepted: [], negotiations: [], inProcess: [] };
      stats.set(t.name, s);
      // Let the previous tool's connections finish in xrdp's log before counting.
      await new Promise((res) => setTimeout(res, 300));
      const syn0 = await synCount(topo, 3389);
      const log0 = logCounts(healthy);
      const res = await topo.exec('client', t.argv(addr, 3389), { cwd: root, timeoutMs: 120_000 });
      await new Promise((res2) => setTimeout(res2, 300));
      const log1 = logCounts(healthy);
      s.wall.push(res.ms);
      s.syns.push((await synCount(topo, 3389)) - syn0);
      s.accepted.push(log1.accepted - log0.accepted);
      s.negotiations.push(log1.negotiations - log0.negotiations);
      if (res.stdout.trim().startsWith('{')) {
        const doc = JSON.parse(res.stdout) as { cause: string; ms?: number; probe?: { ms: number; tls?: { certificate?: { thumbprint: string; validTo: string } } } };
        s.cause = doc.cause;
        s.inProcess.push(doc.ms ?? doc.probe?.ms ?? NaN);
        const c = doc.probe?.tls?.certificate;
        if (c) s.cert = `${c.thumbprint.slice(0, 8)}…, valid to ${c.validTo.slice(0, 10)}`;
      }
    }
  }

  const nmap = stats.get(NMAP)!;
  const load1 = loadavg()[0]!;
  console.log(`\nHealthy xrdp ${addr}:3389 in the lab, ${rounds} rounds per tool (wall time of the whole process, ms)`);
  console.log(`Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}; 1-min load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end${Math.max(load0, load1) > cpus().length ? ' (BUSY: other work competed for the CPUs; compare the min column)' : ''}\n`);
  console.log('| command | median | p90 | min | in-process (median) | vs nmap | SYNs | TCP connections accepted | RDP negotiations | certificate reported | cause |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const t of TOOLS) {
    const s = stats.get(t.name)!;
    const speed = median(nmap.wall) / median(s.wall);
    console.log(`| \`${t.name}\` | ${median(s.wall)} | ${pct(s.wall, 90)} | ${Math.min(...s.wall)} | ${s.inProcess.length ? Math.round(median(s.inProcess)) : '–'} | ${t.name === NMAP ? '1×' : `${speed.toFixed(1)}× faster`} | ${median(s.syns)} | ${median(s.accepted)} | ${median(s.negotiations)} | ${s.cert ?? 'no'} | ${s.cause ?? '"SUCCESS" lines only'} |`);
  }

  // Same target kinds, what each tool says.
  console.log('\nWhat each tool reports (same lab, same run)\n');
  console.log('| server | nmap rdp-enum-encryption | diagnose cause | diagnose recipe |');
  console.log('|---|---|---|---|');
  for (const [name, t] of [['healthy', topo], ['expired certificate', topoExpired], ['certificate and key do not match', topoBroken]] as const) {
    const a = t.server.addr;
    const n = await t.exec('client', [bin('nmap'), '-n', '-Pn', '-p', '3389', '--script', 'rdp-enum-encryption', a], { timeoutMs: 120_000 });
    const ssl = /SSL: (\w+)/.exec(n.stdout)?.[1] ?? 'not shown';
    const nla = /CredSSP \(NLA\): (\w+)/.exec(n.stdout)?.[1] ?? 'not shown';
    const d = await t.exec('client', [process.execPath, '--import', 'tsx', join('scripts', 'diagnose.ts'), `${a}:3389`, '--json'], { cwd: root });
    const doc = JSON.parse(d.stdout) as { cause: string; recipe: string | null; probe: { tls?: { certificate?: { validTo: string } } } };
    const cert = doc.probe.tls?.certificate;
    console.log(`| ${name} | SSL: ${ssl}, CredSSP (NLA): ${nla} | ${doc.cause}${cert ? ` (certificate valid to ${cert.validTo.slice(0, 10)})` : ''} | ${doc.recipe ?? '–'} |`);
  }
} finally {
  await Promise.all([topo.destroy(), topoExpired.destroy(), topoBroken.destroy()]);
}
