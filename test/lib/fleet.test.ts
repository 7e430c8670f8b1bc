// lib/fleet.ts: the worker pool that streams results (nothing kept per host), the fixed-size summary,
// and the progress line. The CLI around them: test/diagnose-fleet.test.ts; a lab fleet:
// test/lab/fleet-scale.lab.test.ts; the 200 / 2,000 / 10,000-host costs: bench/fleet-scale.ts.
// Run: npx tsx test/lib/fleet.test.ts
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FleetSummary, forEachParallel, formatDuration, formatProgress, formatSummary, openFds, Progress } from '../../scripts/lib/fleet.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const tick = () => new Promise<void>((r) => setImmediate(r));

const pool = suite('forEachParallel');

pool('runs every item once, never more than `parallel` at once, and reports each as it finishes', async () => {
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  const seen: number[] = [];
  // Item i takes (10 - i % 10) ms: later-started items finish first, so input order != completion order.
  await forEachParallel(Array.from({ length: 40 }, (_, i) => i), 4, async (n) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 10 - (n % 10)));
    running--;
    return n * 2;
  }, (r, item) => {
    assert.is(r, item * 2);
    order.push(item);
    seen.push(item);
  });
  assert.is(peak, 4);
  assert.equal([...seen].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  assert.not.equal(order, Array.from({ length: 40 }, (_, i) => i), 'results come in completion order, not held back for input order');
  let calls = 0;
  await forEachParallel([1], 64, async (n) => n, () => calls++);
  assert.is(calls, 1);
});

pool('keeps no result: each is garbage once onResult returns (fails if results were accumulated)', async () => {
  // Every result is a 1 MB buffer with a WeakRef to it. While the run is still going, after a GC,
  // the results of hosts finished long ago must be gone: a pool (or a summary) that kept them in an
  // array, for input order or for the end, would keep every one alive.
  const refs: WeakRef<object>[] = [];
  const summary = new FleetSummary(3);
  const aliveAtEnd: number[] = [];
  const N = 60;
  await forEachParallel(Array.from({ length: N }, (_, i) => i), 4, async (i) => {
    await tick();
    const report = { endpoint: `10.0.0.${i}:3389`, cause: i % 3 ? 'healthy' : 'no-listener', ms: i, payload: Buffer.alloc(1 << 20, i) };
    refs[i] = new WeakRef(report);
    return report;
  }, (r, i) => {
    summary.add(r); // the slowest kept are copies of four fields, not the report
    if (i === N - 1 || i % 20 === 19) {
      gc();
      aliveAtEnd.push(refs.filter((w, j) => j < i - 8 && w.deref() !== undefined).length);
    }
  });
  assert.equal(aliveAtEnd, [0, 0, 0]);
  assert.is(summary.done, N);
  assert.equal(summary.slowest.map((s) => s.ms), [59, 58, 57]);
  assert.not.ok('payload' in summary.slowest[0]!);
});

const sum = suite('FleetSummary');

sum('counts per cause (most frequent first), the N slowest with their line, per-host quantiles', () => {
  const s = new FleetSummary(2);
  const causes = ['healthy', 'healthy', 'no-listener', 'unreachable', 'healthy', 'no-listener'];
  causes.forEach((cause, i) => s.add({ endpoint: `h${i}:3389`, cause, ms: (i + 1) * 100, line: i + 1 }));
  const d = s.toJSON();
  assert.is(d.hosts, 6);
  assert.is(d.ok, 3);
  assert.equal(d.causes, [{ cause: 'healthy', hosts: 3 }, { cause: 'no-listener', hosts: 2 }, { cause: 'unreachable', hosts: 1 }]);
  assert.equal(d.slowest, [{ endpoint: 'h5:3389', cause: 'no-listener', ms: 600, line: 6 }, { endpoint: 'h4:3389', cause: 'healthy', ms: 500, line: 5 }]);
  assert.equal(d.perHostMs, { p50: 300, p95: 600, max: 600 });
  assert.ok(d.peakRssMb > 0);
  if (process.platform === 'linux') assert.ok(d.maxOpenFds !== null && d.maxOpenFds >= 3);
});

sum('quantiles: exact to the ms below 10 s, 100 ms buckets above, never above the max', () => {
  const s = new FleetSummary(0);
  for (let ms = 1; ms <= 100; ms++) s.add({ endpoint: 'x', cause: 'healthy', ms });
  assert.is(s.quantile(0.5), 50);
  assert.is(s.quantile(0.95), 95);
  const slow = new FleetSummary(0);
  slow.add({ endpoint: 'x', cause: 'unreachable', ms: 12_345 });
  slow.add({ endpoint: 'y', cause: 'unreachable', ms: 999_999 });
  assert.is(slow.quantile(0.5), 12_300);
  assert.is(slow.quantile(1), 999_999);
  assert.is(new FleetSummary().toJSON().perHostMs, null);
});

sum('openFds counts this process\'s descriptors (Linux): one more while a file is open', async () => {
  if (process.platform !== 'linux') return;
  const { openSync, closeSync } = await import('node:fs');
  const before = openFds()!;
  const fd = openSync('/proc/self/status', 'r');
  try {
    assert.is(openFds(), before + 1);
  } finally {
    closeSync(fd);
  }
  assert.is(openFds(), before);
});

sum('formatSummary: a line per cause with its recipe, the slowest hosts, the cost', () => {
  const lines = formatSummary({
    hosts: 12, ok: 9, causes: [{ cause: 'healthy', hosts: 9 }, { cause: 'no-listener', hosts: 3 }],
    slowest: [{ endpoint: '10.0.0.7:3389', cause: 'no-listener', ms: 2400, line: 7 }],
    perHostMs: { p50: 180, p95: 2300, max: 2400 }, ms: 4567, peakRssMb: 80, maxOpenFds: 40,
  }, (c) => (c === 'no-listener' ? 'service-down' : null));
  assert.equal(lines, [
    '12 hosts in 4.57 s: 9 healthy, 3 with a problem',
    '   9  healthy',
    '   3  no-listener  recipe service-down',
    'Slowest host:',
    '    2400 ms  10.0.0.7:3389 (line 7)  no-listener',
    'per host p50 180 ms, p95 2300 ms; peak RSS 80 MB; at most 40 open files',
  ]);
});

const prog = suite('progress line');

prog('formatProgress: done/total, percent, rate, ETA; no ETA before the first host', () => {
  assert.is(formatProgress(1234, 10_000, 30_000, 57), '1234/10000 hosts (12%), 41.1/s, ETA 3m 33s, 57 with a problem');
  assert.is(formatProgress(0, 200, 500), '0/200 hosts (0%), 0.0/s, ETA -');
  assert.is(formatProgress(200, 200, 4000), '200/200 hosts (100%), 50.0/s, done');
  assert.equal([formatDuration(7), formatDuration(95), formatDuration(3960)], ['7s', '1m 35s', '1h 06m']);
});

prog('on a terminal: rewritten in place, throttled, erased at the end', () => {
  const out: string[] = [];
  const state = { done: 0, total: 10, problems: 0 };
  const p = new Progress({ isTTY: true, write: (s: string) => out.push(s) }, () => state, { label: 'diagnose', intervalMs: 60_000 });
  p.tick(true);
  state.done = 5;
  p.tick(); // within the interval: nothing
  p.stop();
  assert.is(out.length, 2);
  assert.match(out[0]!, /^\rdiagnose: 0\/10 hosts \(0%\), .*\x1b\[K$/);
  assert.is(out[1], '\r\x1b[K');
  const silent: string[] = [];
  new Progress({ isTTY: true, write: (s: string) => silent.push(s) }, () => state).stop();
  assert.equal(silent, [], 'never drawn: nothing to erase');
});

prog('elsewhere (asked for with --progress): whole lines, and a last one at the end', () => {
  const out: string[] = [];
  const state = { done: 3, total: 4, problems: 1 };
  const p = new Progress({ isTTY: false, write: (s: string) => out.push(s) }, () => state, { logIntervalMs: 60_000 });
  p.tick(true);
  p.tick();
  state.done = 4;
  p.stop();
  assert.is(out.length, 2);
  assert.match(out[0]!, /^3\/4 hosts \(75%\), [\d.]+\/s, ETA \S+, 1 with a problem\n$/);
  assert.match(out[1]!, /^4\/4 hosts \(100%\), [\d.]+\/s, done, 1 with a problem\n$/);
  assert.ok(!out.join('').includes('\r'));
});

pool.run();
sum.run();
prog.run();
