// A fixed-delay line on the lab router, for measurements that need a path with real latency.
//
// This kernel has no sch_netem (`tc qdisc add ... netem` -> "Specified qdisc kind is unknown"), so
// the delay is made in user space: a tun device `dly0` on the router, policy routing that sends
// every packet arriving from the client or the server link into it, and a small python3 loop that
// holds each packet for `oneWayMs` and writes it back, after which the kernel forwards it as usual.
// Every packet (ICMP, SYN, data) in both directions gets the same delay, whatever its size, so the
// round trip grows by 2 x oneWayMs for every method alike. Used by bench/latency.ts; needs python3.
import { bin } from './prereq.ts';
import type { Spawned, Topology } from './netns.ts';

const DELAY_PY = `
import collections, fcntl, os, select, struct, sys, time
name, delay = sys.argv[1], float(sys.argv[2]) / 1000.0
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', name.encode(), 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
print('ready', flush=True)
q = collections.deque()
while True:
    wait = None if not q else max(0.0, q[0][0] - time.monotonic())
    r, _, _ = select.select([fd], [], [], wait)
    if r:
        q.append((time.monotonic() + delay, os.read(fd, 65535)))
    now = time.monotonic()
    while q and q[0][0] <= now:
        os.write(fd, q.popleft()[1])
`;

export interface DelayLine {
  proc: Spawned;
  oneWayMs: number;
  stop(): Promise<void>;
}

/** Delay every forwarded packet by oneWayMs on the router (routed topologies only). */
export async function startDelayLine(topo: Topology, oneWayMs: number): Promise<DelayLine> {
  const r = topo.router;
  if (!r) throw new Error('a delay line needs a routed topology');
  const proc = topo.spawn('router', [bin('python3'), '-c', DELAY_PY, 'dly0', String(oneWayMs)]);
  try {
    await proc.waitForOutput(/^ready$/m, 10_000);
    const ip = (args: string[]) => topo.exec('router', [bin('ip'), ...args], { check: true, timeoutMs: 5000 });
    await ip(['link', 'set', 'dev', 'dly0', 'up']);
    // Packets come back in on dly0 with the far end's source address: no reverse-path filtering.
    await topo.exec('router', [bin('sysctl'), '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.dly0.rp_filter=0'], { check: true });
    await ip(['route', 'add', 'default', 'dev', 'dly0', 'table', '100']);
    for (const dev of [r.ifname, r.serverIf]) await ip(['rule', 'add', 'iif', dev, 'lookup', '100', 'priority', '100']);
  } catch (err) {
    await proc.kill();
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  }
  return { proc, oneWayMs, stop: () => proc.kill() };
}
