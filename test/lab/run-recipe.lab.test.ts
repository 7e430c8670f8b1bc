// The vpn-mtu recipe run for real: a namespaced client behind a router whose path MTU is 1400 and
// which drops ICMP "fragmentation needed" (a PMTU black hole), an xrdp server with a large
// certificate behind it. Before: the TLS flight never arrives. The recipe lowers the client's MTU,
// the final probe sees a completed handshake, and `undo --last --yes` restores the original MTU.
// Also the fleet: 50 namespaced hosts (healthy, refusing, black-holed) through the runner.
// The runner without the lab (scripted step results): test/run-recipe.test.ts.
// Run: npx tsx test/lab/run-recipe.lab.test.ts  (needs root, xrdp, iptables; skips otherwise)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createFleet, FLEET_EXPECT } from './fleet.ts';
import { createTopology } from './netns.ts';
import { labGate } from './prereq.ts';
import { labCerts, startXrdp } from './xrdp.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const script = (name: string) => join(root, 'scripts', `${name}.ts`);

const lab = suite('vpn-mtu recipe in the lab');

if (labGate('vpn-mtu recipe lab', ['root', 'netns', 'xrdp', 'iptables', 'ping', 'openssl'])) {
  lab('black hole before, TLS completes after the recipe, undo restores the MTU', async () => {
    const topo = await createTopology({ kind: 'routed', pathMtu: 1400, pmtuBlackhole: true });
    const journal = mkdtempSync(join(tmpdir(), 'rdpfix-lab-journal-'));
    try {
      const x = await startXrdp(topo, { cert: (await labCerts()).large });
      const env = { ...process.env, RDPFIX_JOURNAL: journal, RDPFIX_RUN_ID: '' };
      const host = `${x.addr}:${x.port}`;
      assert.is(await topo.getMtu('client'), 1500);

      const before = await topo.runNode('client', [script('probe-rdp'), host, '--json'], { env, timeoutMs: 60_000 });
      assert.is(JSON.parse(before.stdout).cause, 'mtu-blackhole', before.stdout + before.stderr);

      const run = await topo.runNode('client', [script('run-recipe'), 'vpn-mtu', '--host', host, '--yes', '--json'], { env, timeoutMs: 120_000 });
      const doc = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
      assert.is(run.exitCode, 0, run.stdout + run.stderr);
      const byId = Object.fromEntries(doc.steps.map((s: { id: string }) => [s.id, s]));
      assert.is(byId.before.outcome, 'mtu-blackhole');
      assert.is(byId.mtu.status, 'changed');
      assert.is(byId.udp.status, 'skipped', 'a Windows-client step is skipped on Linux, not faked');
      assert.is(byId.after.outcome, 'healthy', 'the TLS handshake completes after the fix');
      assert.is(await topo.getMtu('client'), 1400);

      const undo = await topo.runNode('client', [script('undo'), '--last', '--yes', '--json'], { env, timeoutMs: 60_000 });
      assert.is(undo.exitCode, 0, undo.stdout + undo.stderr);
      assert.is(await topo.getMtu('client'), 1500, 'undo restored the original MTU');
    } finally {
      await topo.destroy();
      rmSync(journal, { recursive: true, force: true });
    }
  });
}

// ---

const fleet = suite('fleet through the runner');

if (labGate('fleet recipe lab', ['root', 'netns', 'xrdp', 'iptables', 'ping', 'openssl'])) {
  fleet('50 hosts (healthy, refusing, black-holed) with --parallel 16: one record each, at most 16 at once', async () => {
    const f = await createFleet({ healthy: 20, refusing: 15, 'pmtu-blackhole': 15 });
    const journal = mkdtempSync(join(tmpdir(), 'rdpfix-lab-journal-'));
    try {
      const hostsFile = f.writeHostsFile();
      const env = { ...process.env, RDPFIX_JOURNAL: journal, RDPFIX_RUN_ID: '' };
      // A dry run of vpn-mtu: the first check is a real probe of every host, later steps inspect only.
      const r = await f.topo.runNode('client', [script('run-recipe'), 'vpn-mtu', '--hosts', hostsFile, '--parallel', '16', '--dry-run', '--json'], { env, timeoutMs: 300_000 });
      const records = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { host: string; started: string; finished: string; steps: Array<{ id: string; outcome: string }> });
      assert.is(records.length, 50, r.stderr);
      const want = new Map(f.hosts.map((h) => [`${h.addr}:${h.port}`, FLEET_EXPECT[h.kind]]));
      for (const rec of records) {
        const first = rec.steps.find((s) => s.id === 'before');
        assert.is(first?.outcome, want.get(rec.host), `${rec.host}: ${JSON.stringify(rec.steps)}`);
      }
      // Concurrency, from the run records' own start/finish times (no timing assertion):
      // overlapping runs prove hosts were handled in parallel, never more than --parallel.
      const events = records.flatMap((x) => [[Date.parse(x.started), 1], [Date.parse(x.finished), -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let now = 0;
      let peak = 0;
      for (const [, d] of events) peak = Math.max(peak, (now += d));
      assert.ok(peak > 1 && peak <= 16, `peak concurrency ${peak}`);
    } finally {
      await f.destroy();
      rmSync(journal, { recursive: true, force: true });
    }
  });
}

lab.run();
fleet.run();
