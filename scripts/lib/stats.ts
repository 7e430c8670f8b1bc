// Round-trip statistics for test-vpn-latency (and anything else that samples a path): loss,
// min/median/p95/max, jitter, a terminal sparkline, and a verdict against thresholds.
//
// Definitions (stated, because tools differ):
// - A sample is a number (RTT in ms) or null (lost: timeout or failure). sent = all samples.
// - median: the middle value, or the mean of the two middle values.
// - p95: nearest-rank percentile: the ceil(0.95 n)-th smallest RTT (with fewer than 20 samples it
//   is the maximum, as it should be: there is no evidence for anything smaller).
// - jitter: mean absolute difference between consecutive RTTs of received samples (RFC 3550's
//   idea without its smoothing; what the issue asks for and what mtr calls "Javg"). A lost sample
//   is skipped, not counted as a difference.

export interface Summary {
  sent: number;
  received: number;
  /** Percentage of samples lost, 0..100 (two decimals). */
  lossPct: number;
  minMs: number | null;
  medianMs: number | null;
  p95Ms: number | null;
  maxMs: number | null;
  jitterMs: number | null;
}

/** Round to 3 decimals (microseconds) for output. */
export const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export function median(sorted: number[]): number | null {
  const n = sorted.length;
  if (!n) return null;
  return n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function jitter(samples: (number | null)[]): number | null {
  const got = samples.filter((s): s is number => s !== null);
  if (got.length < 2) return null;
  let sum = 0;
  for (let i = 1; i < got.length; i++) sum += Math.abs(got[i]! - got[i - 1]!);
  return sum / (got.length - 1);
}

export function summarize(samples: (number | null)[]): Summary {
  const got = samples.filter((s): s is number => s !== null).sort((a, b) => a - b);
  const sent = samples.length;
  const r = (x: number | null) => (x === null ? null : round3(x));
  return {
    sent,
    received: got.length,
    lossPct: sent ? Math.round(((sent - got.length) / sent) * 10000) / 100 : 0,
    minMs: r(got[0] ?? null),
    medianMs: r(median(got)),
    p95Ms: r(percentile(got, 95)),
    maxMs: r(got.at(-1) ?? null),
    jitterMs: r(jitter(samples)),
  };
}

const BARS = '▁▂▃▄▅▆▇█';

/**
 * One character per sample, scaled between the smallest and largest RTT; a lost sample is '×'.
 * Longer series are shown by their last `width` samples.
 */
export function sparkline(samples: (number | null)[], width = 60): string {
  const s = samples.slice(-width);
  const got = s.filter((x): x is number => x !== null);
  if (!got.length) return '×'.repeat(s.length);
  const lo = Math.min(...got);
  const hi = Math.max(...got);
  return s
    .map((x) => {
      if (x === null) return '×';
      if (hi - lo < 1e-9) return BARS[0];
      return BARS[Math.min(BARS.length - 1, Math.floor(((x - lo) / (hi - lo)) * BARS.length))];
    })
    .join('');
}

export interface Thresholds {
  /** Median RTT at or below this is good. */
  goodRttMs: number;
  /** Median RTT above this is poor (between the two: fair). */
  poorRttMs: number;
  /** Loss at or above this percentage is poor. */
  poorLossPct: number;
  /** Jitter at or above this is poor. */
  poorJitterMs: number;
}

/**
 * Defaults for RDP: Microsoft's RDP guidance treats under ~150 ms as comfortable and the UDP
 * transport degrades past ~300 ms; TCP RDP suffers visibly from any sustained loss (1 %) and from
 * jitter in the tens of milliseconds.
 */
export const DEFAULT_THRESHOLDS: Thresholds = { goodRttMs: 150, poorRttMs: 300, poorLossPct: 1, poorJitterMs: 30 };

/**
 * Thresholds that make sense together: the good RTT bound cannot lie above the poor one (there
 * would be medians both good and poor). Returns the error text naming both values, or null.
 */
export function thresholdError(t: Thresholds): string | null {
  if (t.goodRttMs > t.poorRttMs) return `--good-rtt ${t.goodRttMs} is above --poor-rtt ${t.poorRttMs}: a median cannot be good and poor at once; give --good-rtt at most --poor-rtt`;
  return null;
}

export type Verdict = 'good' | 'fair' | 'poor' | 'unreachable';

export interface Judged {
  verdict: Verdict;
  /** Why, one short sentence per finding ("tcp: loss 5% >= 1%"). */
  reasons: string[];
}

/**
 * Judge a set of per-method summaries. `methods` are the ones that count (the caller leaves out a
 * method that cannot speak for the path, e.g. ICMP that a firewall blocks). Unreachable: nothing
 * at all came back on any counted method.
 */
export function judge(methods: Array<{ method: string } & Summary>, t: Thresholds = DEFAULT_THRESHOLDS): Judged {
  const reasons: string[] = [];
  if (!methods.length || methods.every((m) => m.received === 0)) {
    return { verdict: 'unreachable', reasons: ['no method received a single answer'] };
  }
  let poor = false;
  let fair = false;
  for (const m of methods) {
    if (m.sent === 0) continue;
    if (m.lossPct >= t.poorLossPct) {
      poor = true;
      reasons.push(`${m.method}: loss ${m.lossPct}% >= ${t.poorLossPct}%`);
    }
    if (m.jitterMs !== null && m.jitterMs >= t.poorJitterMs) {
      poor = true;
      reasons.push(`${m.method}: jitter ${m.jitterMs} ms >= ${t.poorJitterMs} ms`);
    }
    if (m.medianMs !== null && m.medianMs > t.poorRttMs) {
      poor = true;
      reasons.push(`${m.method}: median RTT ${m.medianMs} ms > ${t.poorRttMs} ms`);
    } else if (m.medianMs !== null && m.medianMs > t.goodRttMs) {
      fair = true;
      reasons.push(`${m.method}: median RTT ${m.medianMs} ms > ${t.goodRttMs} ms`);
    }
  }
  return { verdict: poor ? 'poor' : fair ? 'fair' : 'good', reasons };
}
