// diagnose --hosts over 300 lab hosts on address ranges (test/lab/fleet-scale.ts: healthy, refusing,
// SYNs dropped, PMTU black holes behind one light responder): every host gets its line and the cause
// the lab built; the --summary line's counts are the lines'; and the process's open file descriptors,
// read from outside in /proc/PID/fd, stay within what --parallel hosts can hold at once, far below
// one per host (a descriptor leaked per host, or results kept open, would pass 300). Timing and RSS
// are measured in bench/fleet-scale.ts, not asserted here.
// Run (as root): npx tsx test/lab/fleet-scale.lab.test.ts
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createScaleFleet, FLEET_EXPECT, watchNode } from './fleet-scale.ts';
import { cleanupStaleLab } from './netns.ts';
import { labGate } from './prereq.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fleet = suite('fleet scale lab');

// A host in flight holds at most: 9 sample connects pending (SYNs dropped: each waits the 1.2 s
// cut-off), the probe's connection, and the small-segment retry's helper (perl/python3: 3 pipes) or a
// ping: 13. Node itself (stdio, epoll, eventfds, libuv, files tsx opened) holds a few dozen: measured
// as the same command on a one-host file (a SYN-dropped host: the most a host holds), plus a margin
// for descriptors opened once (e.g. the DNS resolver's, the TLS helper's).
const PER_HOST = 13;
const MARGIN = 8;

if (labGate('fleet scale lab', ['root', 'netns', 'iptables', 'openssl', 'ping'])) {
  cleanupStaleLab();
  fleet('300 hosts, --parallel 8: every cause right, summary = the lines, open fds bounded by --parallel', async () => {
    const parallel = 8;
    const f = await createScaleFleet({ healthy: 200, refusing: 60, 'syn-dropped': 20, 'pmtu-blackhole': 20 });
    try {
      const file = f.writeHostsFile();
      const one = f.hosts.find((h) => h.kind === 'syn-dropped')!;
      const oneFile = join(f.topo.tmpDir, 'one.txt');
      writeFileSync(oneFile, `${one.addr}:${one.port}\n`);
      const base = await watchNode(f.topo, [join(root, 'scripts', 'diagnose.ts'), '--hosts', oneFile, '--json'], () => {}, { cwd: root, timeoutMs: 60_000 });
      assert.ok(base.maxOpenFds > 0, 'descriptors of the one-host run read');
      const kindOf = new Map(f.hosts.map((h) => [`${h.addr}:${h.port}`, h.kind]));
      const seen = new Map<string, string>();
      const wrong: string[] = [];
      let summary: { hosts: number; ok: number; causes: { cause: string; hosts: number }[]; slowest: unknown[] } | undefined;
      const r = await watchNode(f.topo, [join(root, 'scripts', 'diagnose.ts'), '--hosts', file, '--parallel', String(parallel), '--json', '--summary'], (line) => {
        const d = JSON.parse(line) as { endpoint?: string; cause: string; summary: string; fleet?: typeof summary };
        if (d.fleet) {
          summary = d.fleet;
          return;
        }
        if (seen.has(d.endpoint!)) wrong.push(`${d.endpoint} reported twice`);
        seen.set(d.endpoint!, d.cause);
        const kind = kindOf.get(d.endpoint!);
        if (!kind || d.cause !== FLEET_EXPECT[kind]) wrong.push(`${d.endpoint} (${kind}): ${d.cause} — ${d.summary}`);
      }, { cwd: root, timeoutMs: 300_000 });
      assert.is(r.stderr, '', 'nothing on stderr for --json to a pipe');
      assert.is(r.exitCode, 1);
      assert.equal(wrong, []);
      assert.is(seen.size, 300);
      assert.ok(summary, 'the --summary line came last');
      const tally: Record<string, number> = {};
      for (const c of seen.values()) tally[c] = (tally[c] ?? 0) + 1;
      assert.equal(Object.fromEntries(summary!.causes.map((c) => [c.cause, c.hosts])), tally);
      assert.equal(tally, { healthy: 200, 'no-listener': 60, unreachable: 20, 'mtu-blackhole': 20 });
      assert.is(summary!.slowest.length, 5);
      assert.ok(r.samples > 10, `descriptors sampled while it ran (${r.samples})`);
      const bound = base.maxOpenFds + (parallel - 1) * PER_HOST + MARGIN;
      assert.ok(r.maxOpenFds <= bound, `at most ${base.maxOpenFds} (one host) + ${parallel - 1} x ${PER_HOST} + ${MARGIN} = ${bound} open fds, saw ${r.maxOpenFds}`);
    } finally {
      await f.destroy();
    }
  });
}

fleet.run();
