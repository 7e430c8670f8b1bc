// diagnose, without the lab: the connect sample's summary (the probe's connect is sample 0; late or
// missing answers are losses). Against real servers and real networks: test/lab/diagnose.lab.test.ts.
// Run: npx tsx test/diagnose.test.ts
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { summariseSample } from '../scripts/lib/connect-sample.ts';
import type { ProbeResult } from '../scripts/lib/probe.ts';

const units = suite('diagnose: hosts file and sample');

units('sample: the probe\'s connect is sample 0; late or missing answers are losses, not latency', () => {
  const probe = { connect: { outcome: 'accepted', ms: 2 } } as ProbeResult;
  const s = summariseSample(probe, [
    { i: 1, outcome: 'accepted', ms: 1, lost: false },
    { i: 2, outcome: 'accepted', ms: 1003, lost: true },
    { i: 3, outcome: 'timeout', ms: 1200, lost: true },
    { i: 4, outcome: 'refused', ms: 3, lost: false },
  ], 20, 1200);
  assert.equal([s.attempts, s.answered, s.accepted, s.refused, s.lost], [5, 4, 3, 1, 2]);
  assert.equal(s.rtt, { min: 1, p50: 2, p95: 3, max: 3, avg: 2, jitter: 0.82 });
});

units.run();
