// RTT statistics: the definitions test-vpn-latency reports (loss, median, nearest-rank p95, jitter as
// the mean absolute difference of consecutive received RTTs), the sparkline and the verdict.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_THRESHOLDS, jitter, judge, median, percentile, sparkline, summarize, thresholdError } from '../../scripts/lib/stats.ts';

const s = suite('summarize');

s('loss, min/median/p95/max and jitter of a series with losses', () => {
  assert.equal(summarize([10, null, 12, 11, null, 30]), {
    sent: 6, received: 4, lossPct: 33.33, minMs: 10, medianMs: 11.5, p95Ms: 30, maxMs: 30,
    // consecutive received: |12-10| + |11-12| + |30-11| = 22, over 3 differences
    jitterMs: 7.333,
  });
});

s('no loss is exactly 0; all lost is 100 with no RTT figures', () => {
  assert.is(summarize([1, 2, 3]).lossPct, 0);
  assert.equal(summarize([null, null]), { sent: 2, received: 0, lossPct: 100, minMs: null, medianMs: null, p95Ms: null, maxMs: null, jitterMs: null });
  assert.equal(summarize([]), { sent: 0, received: 0, lossPct: 0, minMs: null, medianMs: null, p95Ms: null, maxMs: null, jitterMs: null });
});

s('nearest-rank p95: 95th of 100 values, the maximum below 20 samples', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.is(percentile(hundred, 95), 95);
  assert.is(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95), 10);
  assert.is(median([1, 2, 3, 4]), 2.5);
  assert.is(median([5]), 5);
});

s('jitter needs two received samples', () => {
  assert.is(jitter([5]), null);
  assert.is(jitter([5, null, 7]), 2);
});

s.run();

// ---

const spark = suite('sparkline');

spark('scales between min and max, marks losses, shows the last samples', () => {
  assert.is(sparkline([1, 2, 3, 4, 5, 6, 7, 8]), '▁▂▃▄▅▆▇█');
  assert.is(sparkline([5, null, 5]), '▁×▁');
  assert.is(sparkline([null, null]), '××');
  assert.is(sparkline([1, 2, 3, 4], 2), '▁█');
});

spark.run();

// ---

const j = suite('judge');
const m = (method: string, over: Partial<ReturnType<typeof summarize>>) => ({ method, ...summarize([20, 21, 20, 22]), ...over });

j('good, fair and poor against the defaults (150 / 300 ms, 1 % loss, 30 ms jitter)', () => {
  assert.is(judge([m('tcp', {})]).verdict, 'good');
  assert.equal(judge([m('tcp', { medianMs: 180 })]), { verdict: 'fair', reasons: ['tcp: median RTT 180 ms > 150 ms'] });
  assert.equal(judge([m('tcp', { medianMs: 301 })]).verdict, 'poor');
  assert.equal(judge([m('tcp', { lossPct: 1 })]), { verdict: 'poor', reasons: ['tcp: loss 1% >= 1%'] });
  assert.equal(judge([m('tcp', { jitterMs: 30 })]).verdict, 'poor');
  assert.is(judge([m('tcp', { received: 0, lossPct: 100 })]).verdict, 'unreachable');
});

j('inverted RTT thresholds are an error that names both values; equal ones are allowed (no fair band)', () => {
  assert.is(thresholdError({ ...DEFAULT_THRESHOLDS, goodRttMs: 500, poorRttMs: 100 }), '--good-rtt 500 is above --poor-rtt 100: a median cannot be good and poor at once; give --good-rtt at most --poor-rtt');
  assert.is(thresholdError({ ...DEFAULT_THRESHOLDS, goodRttMs: 100, poorRttMs: 100 }), null);
  assert.is(thresholdError(DEFAULT_THRESHOLDS), null);
});

j('thresholds are configurable', () => {
  assert.is(judge([m('x224', { medianMs: 180 })], { ...DEFAULT_THRESHOLDS, goodRttMs: 200 }).verdict, 'good');
  assert.is(judge([m('x224', { lossPct: 2 })], { ...DEFAULT_THRESHOLDS, poorLossPct: 5 }).verdict, 'good');
});

j.run();
