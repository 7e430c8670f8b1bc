// Benchmark: latency accuracy of test-vpn-latency. On the same path, in the same run, compare our
// TCP-connect and X.224 medians with the median of the system ping (the icmp method runs the system
// `ping` itself). Goal: within max(1 ms, 5 % of ping's median).
//   paths:   the bare lab (sub-millisecond) and the lab with a 10 ms each-way delay line on the
//            router (test/lab/delay.ts; this kernel has no netem), i.e. ~20 ms round trips
//   servers: a scripted peer that answers the X.224 request at once (network round trip only), and
//            Debian's xrdp (forks a process per connection: its X.224 time includes that)
// Run as root: npx tsx bench/latency.ts   (needs python3 for the delay line)
import { isMain } from '../scripts/lib/cli.ts';
import type { LatencyReport } from '../scripts/test-vpn-latency.ts';
import { startDelayLine } from '../test/lab/delay.ts';
import { createTopology } from '../test/lab/netns.ts';
import { startPeers } from '../test/lab/peers.ts';
import { labMissing, which } from '../test/lab/prereq.ts';
import { negResponse, PROTOCOL_SSL } from '../test/lab/rdp-bytes.ts';
import { startXrdp } from '../test/lab/xrdp.ts';

const LATENCY = new URL('../scripts/test-vpn-latency.ts', import.meta.url);
const COUNT = Number(process.env.BENCH_COUNT ?? 200);

interface Row {
  path: string;
  server: string;
  icmp: number;
  tcp: number;
  x224: number;
  goal: number;
}

async function benchPath(oneWayMs: number): Promise<Row[]> {
  const topo = await createTopology({ kind: 'routed' });
  const rows: Row[] = [];
  try {
    await startPeers(topo, [{ mode: 'reply', port: 3389, hex: negResponse(PROTOCOL_SSL).toString('hex'), after: 'close' }]);
    await startXrdp(topo, { port: 3390 });
    if (oneWayMs) await startDelayLine(topo, oneWayMs);
    for (const [port, server] of [[3389, 'scripted peer'], [3390, 'xrdp 0.9.21']] as const) {
      const r = await topo.call<LatencyReport>('client', LATENCY, 'measureLatency', [{ host: `${topo.server.addr}:${port}`, count: COUNT, intervalMs: 20, timeoutMs: 2000 }], { timeoutMs: 600_000 });
      const med = (m: string) => r.methods.find((x) => x.method === m)?.medianMs ?? NaN;
      const icmp = med('icmp');
      rows.push({ path: oneWayMs ? `lab + ${2 * oneWayMs} ms RTT delay line` : 'lab (bare veth)', server, icmp, tcp: med('tcp'), x224: med('x224'), goal: Math.max(1, 0.05 * icmp) });
    }
  } finally {
    await topo.destroy();
  }
  return rows;
}

async function main(): Promise<void> {
  const missing = labMissing(['root', 'netns', 'ping', 'xrdp', 'openssl']);
  if (!which('python3')) missing.push('python3 (delay line)');
  if (missing.length) {
    console.error(`bench/latency.ts needs ${missing.join(', ')}`);
    process.exit(2);
  }
  const rows = [...(await benchPath(0)), ...(await benchPath(10))];
  const f = (x: number) => x.toFixed(3);
  const d = (x: number, icmp: number) => `${x - icmp >= 0 ? '+' : ''}${(x - icmp).toFixed(3)}`;
  const head = ['path', 'server', 'ping median', 'tcp median', 'tcp − ping', 'x224 median', 'x224 − ping', 'goal ±', 'tcp ok', 'x224 ok'];
  const table = [head, ...rows.map((r) => [
    r.path, r.server, f(r.icmp), f(r.tcp), d(r.tcp, r.icmp), f(r.x224), d(r.x224, r.icmp), f(r.goal),
    Math.abs(r.tcp - r.icmp) <= r.goal ? 'yes' : 'no', Math.abs(r.x224 - r.icmp) <= r.goal ? 'yes' : 'no',
  ])];
  const widths = head.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of table.slice(1)) console.log(line(r));
  console.log(`\nAll times in ms; ${COUNT} rounds 20 ms apart per row, the three methods interleaved in each round; node ${process.version}.`);
}

if (isMain(import.meta.url)) await main();
