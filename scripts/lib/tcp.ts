// TCP connect with a bounded timeout and a precise outcome. Used by the probe, diagnose's connect
// sample and test-vpn-latency. Also the two helpers every network timing in rdpfix needs when the
// process itself is busy (a fleet run, a loaded laptop): timeouts that do not fire ahead of I/O
// that has already arrived, and a monitor of how long the event loop was blocked.
import { connect, type Socket } from 'node:net';

export type ConnectOutcome = 'accepted' | 'refused' | 'timeout' | 'unreachable' | 'error';

export interface ConnectResult {
  outcome: ConnectOutcome;
  /** Milliseconds from connect() to SYN-ACK (accepted) or to the failure. */
  ms: number;
  error?: string;
  /** Open socket when accepted and keepOpen was set; the caller must destroy it. */
  socket?: Socket;
  /** performance.now() when connect() was called (to match against an event-loop lag monitor). */
  startedAt?: number;
}

/**
 * Like setTimeout, but `fn` runs only after the event loop's next poll phase: when the loop was
 * blocked past the deadline, I/O that completed meanwhile (a SYN-ACK, the server's bytes) is
 * handled first, instead of losing the race to the timer and being reported as a timeout.
 * Returns a cancel function.
 */
export function lateSafeTimeout(fn: () => void, ms: number): () => void {
  let immediate: NodeJS.Immediate | undefined;
  const timer = setTimeout(() => { immediate = setImmediate(fn); }, ms);
  return () => {
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  };
}

export function tcpConnect(host: string, port: number, timeoutMs: number, keepOpen = false): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const start = performance.now();
    const ms = () => Math.round((performance.now() - start) * 100) / 100;
    const s = connect({ host, port, noDelay: true });
    let done = false;
    const finish = (r: ConnectResult) => {
      if (done) return;
      done = true;
      cancel();
      s.removeAllListeners('connect');
      if (!r.socket) s.destroy();
      resolve({ ...r, startedAt: start });
    };
    const cancel = lateSafeTimeout(() => finish({ outcome: 'timeout', ms: ms() }), timeoutMs);
    s.once('connect', () => {
      s.removeAllListeners('error');
      // Swallow late errors on a socket we hand over; the caller attaches its own handlers.
      s.on('error', () => {});
      finish(keepOpen ? { outcome: 'accepted', ms: ms(), socket: s } : { outcome: 'accepted', ms: ms() });
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      const outcome: ConnectOutcome =
        e.code === 'ECONNREFUSED' ? 'refused'
        : e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH' ? 'unreachable'
        : e.code === 'ETIMEDOUT' ? 'timeout'
        : 'error';
      finish({ outcome, ms: ms(), error: e.code ?? e.message });
    });
  });
}

/**
 * How long this process's event loop was blocked, over time. A measured network time includes
 * the time the loop could not run the callback; a busy process (64 probes at once on two cores)
 * would otherwise see its own lag as network latency or loss. One shared ticker; start() and
 * stop() are reference-counted.
 */
export class LagMonitor {
  private static ticks: { t: number; late: number }[] = [];
  private static timer: NodeJS.Timeout | undefined;
  private static users = 0;
  private static readonly INTERVAL = 10;
  private static expected = 0;

  static start(): void {
    if (LagMonitor.users++ > 0) return;
    LagMonitor.expected = performance.now() + LagMonitor.INTERVAL;
    LagMonitor.timer = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - LagMonitor.expected);
      if (late > 1) LagMonitor.ticks.push({ t: now, late });
      LagMonitor.expected = now + LagMonitor.INTERVAL;
      // Keep a minute at most.
      while (LagMonitor.ticks.length && LagMonitor.ticks[0]!.t < now - 60_000) LagMonitor.ticks.shift();
    }, LagMonitor.INTERVAL);
    LagMonitor.timer.unref();
  }

  static stop(): void {
    if (--LagMonitor.users > 0) return;
    LagMonitor.users = 0;
    clearInterval(LagMonitor.timer);
    LagMonitor.timer = undefined;
    LagMonitor.ticks = [];
  }

  /** Milliseconds the loop was blocked between t0 and t1 (performance.now() values). */
  static blocked(t0: number, t1: number): number {
    let sum = 0;
    for (const k of LagMonitor.ticks) {
      // A tick at t that is `late` ms late means the loop was blocked over [t - late, t].
      const from = Math.max(t0, k.t - k.late);
      const to = Math.min(t1, k.t);
      if (to > from) sum += to - from;
    }
    return Math.round(sum * 100) / 100;
  }
}
