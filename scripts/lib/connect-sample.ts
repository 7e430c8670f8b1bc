// The connect sample diagnose takes beside the probe: TCP connects a few ms apart, each closed as
// soon as it is answered, and their statistics (answered, lost, connect-time percentiles) with the
// time this process's event loop was blocked taken out, so a busy client is not read as a slow path.
import type { ProbeResult } from './probe.ts';
import type { ConnectSample, SampleConnect } from './rdp-verdict.ts';
import { LagMonitor, tcpConnect } from './tcp.ts';

/**
 * `count` connects, interval apart, the first one `startDelayMs` from now (by default one interval,
 * i.e. after the probe's own connect), numbered from `first`. Each one is closed as soon as it is
 * answered. Bounded by (startDelay + (count - 1) * interval + cutoff).
 */
export async function connectSample(address: string, port: number, count: number, intervalMs: number, cutoffMs: number, first = 1, startDelayMs = intervalMs): Promise<SampleConnect[]> {
  return Promise.all(Array.from({ length: count }, async (_, k) => {
    const i = k + first;
    await new Promise((r) => setTimeout(r, startDelayMs + k * intervalMs));
    const c = await tcpConnect(address, port, cutoffMs);
    const outcome: SampleConnect['outcome'] = c.error === 'ECONNRESET' ? 'reset' : c.outcome;
    return sampleOf(i, outcome, c.ms, c.startedAt ?? performance.now() - c.ms);
  }));
}

/**
 * Probe connect outcomes after which more connects cannot change the verdict: a refusal is the
 * host's own answer (nothing listens), no route is this machine's routing table. A timeout, a reset
 * or an accept can still turn out to be loss on the path, so those get the sample.
 */
export const SAMPLE_NOT_NEEDED: Partial<Record<string, string>> = {
  refused: 'the probe\'s connect was refused (nothing listens on the port): more connects cannot change that',
  unreachable: 'there is no route to the host: more connects cannot change that',
};

/** A connect time with the time this process's event loop was blocked taken out. */
function sampleOf(i: number, outcome: SampleConnect['outcome'], measured: number, startedAt: number): SampleConnect {
  const answered = outcome === 'accepted' || outcome === 'refused' || outcome === 'reset';
  const lag = Math.min(measured, LagMonitor.blocked(startedAt, startedAt + measured));
  const ms = Math.round((measured - lag) * 100) / 100;
  // A SYN retransmit answers after >= 1 s (initial RTO); allow the lag estimate some slack.
  const lost = answered ? ms >= LOST_AFTER_MS : outcome === 'timeout';
  return { i, outcome, ms, lost, ...(lag >= 1 ? { measuredMs: measured, lagMs: lag } : {}) };
}

/** An answer this late (lag taken out) came after a SYN retransmission. */
const LOST_AFTER_MS = 950;

function percentile(sorted: number[], p: number): number {
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/** Sample statistics; the probe's connect is sample 0 (when `probe` is given). */
export function summariseSample(probe: ProbeResult | null, extra: SampleConnect[], intervalMs: number, cutoffMs: number, probeConnectAt?: number): ConnectSample {
  const results: SampleConnect[] = [];
  const pc = probe?.connect;
  if (pc && pc.outcome !== 'unresolved') {
    results.push(probeConnectAt !== undefined ? sampleOf(0, pc.outcome, pc.ms, probeConnectAt)
      : { i: 0, outcome: pc.outcome, ms: pc.ms, lost: pc.outcome === 'timeout' || (pc.outcome !== 'error' && pc.outcome !== 'unreachable' && pc.ms >= LOST_AFTER_MS) });
  }
  results.push(...extra);
  const answered = results.filter((r) => r.outcome === 'accepted' || r.outcome === 'refused' || r.outcome === 'reset');
  // Latency over prompt answers only: a retransmitted SYN is counted as loss, not as a slow path.
  const times = answered.filter((r) => !r.lost).map((r) => r.ms).sort((a, b) => a - b);
  const r2 = (n: number) => Math.round(n * 100) / 100;
  let rtt: ConnectSample['rtt'] = null;
  if (times.length) {
    const avg = times.reduce((a, b) => a + b, 0) / times.length;
    const jitter = Math.sqrt(times.reduce((a, b) => a + (b - avg) ** 2, 0) / times.length);
    rtt = { min: r2(times[0]!), p50: r2(percentile(times, 50)), p95: r2(percentile(times, 95)), max: r2(times.at(-1)!), avg: r2(avg), jitter: r2(jitter) };
  }
  const lags = results.map((r) => r.lagMs ?? 0);
  return {
    attempts: results.length,
    ...(Math.max(0, ...lags) >= 1 ? { maxLagMs: Math.max(...lags) } : {}),
    answered: answered.length,
    accepted: results.filter((r) => r.outcome === 'accepted').length,
    refused: results.filter((r) => r.outcome === 'refused').length,
    lost: results.filter((r) => r.lost).length,
    intervalMs,
    cutoffMs,
    rtt,
    results,
  };
}
