// The vpn-mtu recipe run for real: a namespaced client behind a router whose path MTU is 1400 and
// which drops ICMP "fragmentation needed" (a PMTU black hole), an xrdp server with a large
// certificate behind it. Before: the TLS flight never arrives. The recipe lowers the client's MTU,
// the final probe sees a completed handshake, and `undo --last --yes` restores the original MTU.
// Also the fleet: 50 namespaced hosts (healthy, refusing, black-holed) through the runner.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTopology } from './lab/netns.ts';
import { labGate } from './lab/prereq.ts';
import { labCerts, startXrdp } from './lab/xrdp.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
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

lab.run();
