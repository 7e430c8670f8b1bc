// The timing helpers of lib/tcp.ts that keep a busy process from mistaking its own lag for the
// network's: a timeout that lets already-arrived I/O go first, and the event-loop lag monitor.
// No network: a Unix-domain socket pair stands in for a TCP connection.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { lateSafeTimeout, LagMonitor } from '../../scripts/lib/tcp.ts';

const busy = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* block the event loop */ }
};

const timers = suite('lateSafeTimeout');

timers('I/O that arrived while the loop was blocked is handled before the timeout fires', async () => {
  // A Unix-domain socket pair (local IPC, no network): what one end writes is in the other end's
  // kernel buffer at once.
  const dir = mkdtempSync(join(tmpdir(), 'rfx-tcp-test-'));
  const path = join(dir, 's');
  const server = net.createServer();
  const sockets: net.Socket[] = [];
  try {
    await new Promise<void>((r) => server.listen(path, r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect(path);
    sockets.push(client);
    await new Promise((r) => client.once('connect', r));
    const peer = await accepted;
    sockets.push(peer);
    const order: string[] = [];
    const done = new Promise<void>((resolve) => {
      const note = (what: string) => { order.push(what); if (order.length === 2) resolve(); };
      client.once('data', () => note('data'));
      lateSafeTimeout(() => note('timeout'), 1);
    });
    peer.write('y');
    busy(100); // past the deadline; the byte is waiting in the kernel
    await done;
    assert.equal(order, ['data', 'timeout']);
  } finally {
    for (const sock of sockets) sock.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

timers('a cancelled timeout never fires', async () => {
  let fired = false;
  const cancel = lateSafeTimeout(() => { fired = true; }, 5);
  cancel();
  await new Promise((r) => setTimeout(r, 30));
  assert.not.ok(fired);
});

timers.run();

// ---

const lag = suite('LagMonitor');

lag('measures how long the event loop was blocked within a window', async () => {
  LagMonitor.start();
  try {
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    busy(250);
    await new Promise((r) => setTimeout(r, 30)); // let the ticker notice
    const t1 = performance.now();
    assert.ok(LagMonitor.blocked(t0, t1) >= 200, `blocked ${LagMonitor.blocked(t0, t1)} ms`);
    // A window that ended before the block saw none of it.
    assert.is(LagMonitor.blocked(t0 - 1000, t0 - 500), 0);
  } finally {
    LagMonitor.stop();
  }
});

lag.run();
