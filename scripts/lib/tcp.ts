// TCP connect with a bounded timeout and a precise outcome. Used by the probe, diagnose's connect
// sample and test-vpn-latency.
import { connect, type Socket } from 'node:net';

export type ConnectOutcome = 'accepted' | 'refused' | 'timeout' | 'unreachable' | 'error';

export interface ConnectResult {
  outcome: ConnectOutcome;
  /** Milliseconds from connect() to SYN-ACK (accepted) or to the failure. */
  ms: number;
  error?: string;
  /** Open socket when accepted and keepOpen was set; the caller must destroy it. */
  socket?: Socket;
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
      clearTimeout(timer);
      s.removeAllListeners('connect');
      if (!r.socket) s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ outcome: 'timeout', ms: ms() }), timeoutMs);
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
