// The listener-hung and service-down recipes proven by a real client. The server namespace holds a
// Windows server as far as this machine can have one:
// - the Windows twin behind a real sshd (test/lab/twin-ssh.ts, test/windows/TwinHost.ps1), which
//   run-recipe reaches over ssh:// from the client namespace exactly as it would a Windows host;
// - a real RDP listener in front of a real xrdp (test/lab/termservice.ts) that the twin's TermService
//   drives: the twin's Restart-Service/Start-Service restart that listener, and the in-server
//   handshake check is the real Test-RdpHandshake against it (not routed to the twin).
// The judge is xfreerdp +auth-only from the client namespace: before the recipe it cannot connect
// (a hung listener: it waits until its bound; nothing listening: refused), the recipe's own steps
// run (restart-termserv over ssh://, its in-server check, the client probe), and after it the
// client connects.
// Run: npx tsx test/lab/restart-recipes.lab.test.ts  (needs root, xrdp, FreeRDP, Xvfb, sshd, pwsh)
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pwshGate } from '../helpers/pwsh.ts';
import { clientHome, runClient, startXvfb, type Xvfb } from './freerdp.ts';
import { cleanupStaleLab, createTopology, type Spawned, type Topology } from './netns.ts';
import { labGate } from './prereq.ts';
import { cleanupStaleSshConfig, sshMissing } from './sshd.ts';
import type { TermServiceConfig, TermServiceMode } from './termservice.ts';
import { REPO, runCli, startTwinSsh, TwinControl, type TwinHost } from './twin-ssh.ts';
import { startXrdp, type Xrdp } from './xrdp.ts';

const CREDS = { user: 'lab', domain: 'LAB', password: 'Lab-Passw0rd!' };
const TERMSERVICE = join(REPO, 'test/lab/termservice.ts');

interface Lab {
  topo: Topology;
  xrdp: Xrdp;
  listener: Spawned;
  control: string;
  host: TwinHost;
  twin: TwinControl;
  xvfb: Xvfb;
  dir: string;
  seq: number;
}

let lab: Lab | undefined;

async function openLab(): Promise<Lab> {
  const topo = await createTopology({ kind: 'direct' });
  try {
    const dir = join(topo.tmpDir, 'restart-recipes');
    mkdirSync(dir, { recursive: true });
    // allow_channels: xrdp's default (off) makes xfreerdp fail at the MCS channel join.
    const xrdp = await startXrdp(topo, { port: 3390, globals: { allow_channels: 'true' } });
    const control = join(dir, 'termservice.sock');
    const cfg: TermServiceConfig = { addr: '0.0.0.0', port: 3389, backendAddr: xrdp.addr, backendPort: xrdp.port, mode: 'down', control };
    const listener = topo.spawnNode('server', [TERMSERVICE, JSON.stringify(cfg)]);
    await listener.waitForOutput(/^ready$/m, 20_000);
    const host = await startTwinSsh(topo, join(dir, 'twin'), { RDPFIX_TWIN_TERMSERVICE: control });
    const xvfb = await startXvfb(topo, 'client');
    return { topo, xrdp, listener, control, host, twin: new TwinControl(), xvfb, dir, seq: 0 };
  } catch (e) {
    await topo.destroy();
    throw e;
  }
}

/** Put the lab listener in a state (the test's side of the control socket). */
async function setListener(l: Lab, cmd: 'start' | 'stop' | 'hang' | 'wedge'): Promise<void> {
  const mode: TermServiceMode = cmd === 'start' ? 'up' : cmd === 'stop' ? 'down' : 'hung';
  const r = await l.topo.exec('server', ['/usr/bin/socat', '-t', '5', '-', `UNIX-CONNECT:${l.control}`], { input: `${cmd}\n`, timeoutMs: 10_000 });
  assert.match(r.stdout, new RegExp(`^ok ${mode}`), `lab listener ${cmd}: ${r.stdout}${r.stderr}`);
}

const client = (l: Lab, name: string, timeoutMs: number) =>
  runClient(l.topo, { profile: 'default', addr: l.topo.server.addr, port: 3389, display: l.xvfb.display, creds: CREDS, home: clientHome(l.topo, name), timeoutMs });

/** run-recipe NAME from the client namespace, server steps over ssh:// to the twin. */
async function runRecipe(l: Lab, name: string) {
  const n = ++l.seq;
  const env = { RDPFIX_JOURNAL_KEY: join(l.dir, 'journal.key'), RDPFIX_JOURNAL: join(l.dir, `journal-${n}`) };
  const r = await runCli(l.topo, 'run-recipe.ts', [name, '--host', `${l.topo.server.addr}:3389`, '--target', l.host.ssh.target, '--yes', '--json'], env, 240_000);
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  let doc: { result?: string; steps?: { id: string; status: string; outcome?: string | null; detail?: string; ms?: number }[] } = {};
  try {
    doc = JSON.parse(last);
  } catch { /* the assertion below shows stdout */ }
  const steps = (doc.steps ?? []).map((s) => `${s.id} ${s.status} ${s.ms ?? '?'} ms`).join(', ');
  return { r, doc, steps, byId: Object.fromEntries((doc.steps ?? []).map((s) => [s.id, s])) };
}

const measured: string[] = [];
const t = suite('listener-hung and service-down: a restart over ssh:// the real client proves');

t.before(async () => {
  cleanupStaleLab();
  cleanupStaleSshConfig();
  lab = await openLab();
});
t.after(async () => {
  if (lab) {
    lab.twin.close();
    await lab.xvfb.stop();
    await lab.host.ssh.stop();
    await lab.listener.kill();
    await lab.xrdp.stop();
    await lab.topo.destroy();
  }
  for (const m of measured) console.log(`  ${m}`);
});

t('listener-hung: the client hangs on the hung listener; the recipe restarts TermService; the client connects', async () => {
  const l = lab!;
  await l.twin.reset(l.host.root, l.host.statePath, 'healthy-2019');
  await setListener(l, 'hang');
  // xfreerdp has no timeout of its own while the X.224 confirm never comes: the bound is ours.
  const before = await client(l, 'hung-before', 8000);
  assert.is(before.connected, false, before.tail);
  assert.is(before.timedOut, true, `the client waits on a hung listener until its bound: ${before.tail}`);

  const { r, doc, byId, steps } = await runRecipe(l, 'listener-hung');
  assert.is(r.code, 0, r.stdout);
  assert.is(doc.result, 'completed', r.stdout);
  assert.is(byId.restart?.status, 'changed', `the restart's own in-server check (the real Test-RdpHandshake) says healthy: ${JSON.stringify(byId.restart)}`);
  assert.is(byId.probe?.outcome, 'healthy', JSON.stringify(byId.probe));

  const after = await client(l, 'hung-after', 15_000);
  assert.is(after.connected, true, after.tail);
  measured.push(`listener-hung: client before ${before.timedOut ? `timed out at ${before.ms} ms` : before.error}; recipe ${r.ms} ms (${steps}); client after connected in ${after.ms} ms`);
});

t('listener-hung: a listener that hangs again right after the restart makes the restart failed, and the recipe fails', async () => {
  const l = lab!;
  await l.twin.reset(l.host.root, l.host.statePath, 'healthy-2019');
  // A listener that a restart does not cure (wedged: it comes back hung).
  await setListener(l, 'wedge');
  const { r, byId } = await runRecipe(l, 'listener-hung');
  assert.is(r.code, 1, r.stdout);
  assert.is(byId.restart?.status, 'failed', JSON.stringify(byId.restart));
  assert.match(byId.restart?.detail ?? '', /listener-hung/, JSON.stringify(byId.restart));
  // on_failure: continue: inspect-server and the probe still ran, and the probe decided the run.
  assert.is(byId.probe?.outcome, 'listener-hung', JSON.stringify(byId.probe));
  const after = await client(l, 'rehung-after', 5000);
  assert.is(after.connected, false, after.tail);
});

t('service-down: the client is refused; the recipe starts TermService; the client connects', async () => {
  const l = lab!;
  await l.twin.reset(l.host.root, l.host.statePath, 'service-stopped');
  await setListener(l, 'stop');
  const before = await client(l, 'down-before', 8000);
  assert.is(before.connected, false, before.tail);
  assert.is(before.timedOut, false, `refused is quick: ${before.tail}`);

  const { r, doc, byId, steps } = await runRecipe(l, 'service-down');
  assert.is(r.code, 0, r.stdout);
  assert.is(doc.result, 'completed', r.stdout);
  assert.is(byId.inspect?.outcome, 'no-listener', JSON.stringify(byId.inspect));
  assert.is(byId.restart?.status, 'changed', JSON.stringify(byId.restart));
  assert.is(byId.probe?.outcome, 'healthy', JSON.stringify(byId.probe));

  const after = await client(l, 'down-after', 15_000);
  assert.is(after.connected, true, after.tail);
  measured.push(`service-down: client before ${before.error ?? `exit ${before.exitCode}`} in ${before.ms} ms; recipe ${r.ms} ms (${steps}); client after connected in ${after.ms} ms`);
});

const gate = labGate('restart recipes judged by xfreerdp', ['root', 'netns', 'xrdp', 'openssl', 'xfreerdp', 'Xvfb']) && pwshGate('restart recipes');
const missing = gate ? sshMissing() : [];
if (gate && missing.length) {
  if (process.env.CI === 'true') throw new Error(`lab test "restart recipes" cannot run in CI: missing ${missing.join(', ')}`);
  console.log(`skip: restart recipes: needs ${missing.join(', ')}`);
}
if (gate && missing.length === 0) t.run();
