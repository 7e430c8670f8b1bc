// A small, well-behaved RDP-ish test client used by the lab's own tests to
// prove what the far end does. It is NOT the product's probe. It must run in
// the client namespace, so it is called through topology.call(), e.g.
//   await topo.call<ClientResult>('client', LAB_CLIENT, 'labConnect', [{ addr, port, tls: true }])
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { connectionRequest, parseConfirm, PROTOCOL_SSL, type Negotiation } from './rdp-bytes.ts';

export const LAB_CLIENT = new URL('./lab-client.ts', import.meta.url);

export interface ClientRequest {
  addr: string;
  port: number;
  /** 'cr' (default): X.224 Connection Request with `protocols`; 'none': send nothing; else hex bytes. */
  send?: string;
  /** requestedProtocols for 'cr'; null = legacy request without RDP_NEG_REQ. Default 0x0b. */
  protocols?: number | null;
  /** After a Connection Confirm selecting SSL, do a TLS handshake. */
  tls?: boolean;
  connectTimeoutMs?: number;
  /** Without TLS: stop reading after this long (default 1500). With TLS: wait this long for the confirm. */
  readMs?: number;
  /** Stop reading after this many bytes (default 1 MB). */
  maxBytes?: number;
  tlsTimeoutMs?: number;
}

export interface ClientResult {
  connected: boolean;
  connectMs?: number;
  /** Error code of connect or the plain socket, e.g. ECONNREFUSED, ETIMEDOUT, ECONNRESET. */
  error?: string;
  /** First 512 bytes received before TLS, hex. */
  received: string;
  receivedBytes: number;
  /** How the plain phase ended: peer FIN, RST, our read window ran out, byte cap, or TLS took over. */
  end: 'fin' | 'reset' | 'timeout' | 'maxbytes' | 'tls' | 'error';
  neg: Negotiation | null;
  tls?: {
    ok: boolean;
    ms: number;
    timedOut?: boolean;
    protocol?: string | null;
    certBytes?: number;
    validTo?: string;
    authError?: string;
    error?: string;
  };
  ms: number;
}

export function labConnect(req: ClientRequest): Promise<ClientResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const maxBytes = req.maxBytes ?? 1024 * 1024;
  return new Promise((resolve) => {
    const res: ClientResult = { connected: false, received: '', receivedBytes: 0, end: 'error', neg: null, ms: 0 };
    let buf = Buffer.alloc(0);
    let done = false;
    const sock = net.connect({ host: req.addr, port: req.port });
    const finish = (end: ClientResult['end']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      res.end = end;
      res.received = buf.subarray(0, 512).toString('hex');
      res.neg = parseConfirm(buf);
      res.ms = ms();
      if (end !== 'tls') sock.destroy();
      if (end !== 'tls') resolve(res);
    };
    let timer = setTimeout(() => {
      res.error = 'ETIMEDOUT';
      finish('error');
    }, req.connectTimeoutMs ?? 3000);

    sock.on('connect', () => {
      res.connected = true;
      res.connectMs = ms();
      clearTimeout(timer);
      timer = setTimeout(() => finish('timeout'), req.readMs ?? 1500);
      const send = req.send ?? 'cr';
      if (send === 'cr') sock.write(connectionRequest(req.protocols === undefined ? 0x0b : req.protocols));
      else if (send !== 'none') sock.write(Buffer.from(send, 'hex'));
    });
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      res.receivedBytes += d.length;
      if (buf.length > 4096) buf = buf.subarray(0, 4096); // keep the head only
      if (res.receivedBytes >= maxBytes) return finish('maxbytes');
      if (!req.tls) return;
      const neg = parseConfirm(buf);
      if (!neg) return;
      const tpktLen = buf.readUInt16BE(2);
      if (neg.type !== 'response' || !(neg.selected & PROTOCOL_SSL)) return;
      // Hand the socket to TLS; bytes after the confirm belong to the TLS phase.
      sock.off('data', onData);
      sock.pause();
      const extra = buf.subarray(tpktLen);
      buf = buf.subarray(0, tpktLen);
      if (extra.length) sock.unshift(extra);
      finish('tls');
      startTls();
    };
    sock.on('data', onData);
    sock.on('end', () => finish('fin'));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      res.error = err.code ?? err.message;
      finish(err.code === 'ECONNRESET' ? 'reset' : 'error');
    });

    const startTls = () => {
      const t1 = performance.now();
      const info: NonNullable<ClientResult['tls']> = { ok: false, ms: 0 };
      res.tls = info;
      let over = false;
      const tlsDone = () => {
        if (over) return;
        over = true;
        clearTimeout(tlsTimer);
        info.ms = Math.round(performance.now() - t1);
        res.ms = ms();
        t.destroy();
        sock.destroy();
        resolve(res);
      };
      const t = tls.connect({ socket: sock, rejectUnauthorized: false });
      const tlsTimer = setTimeout(() => {
        info.timedOut = true;
        info.error = 'timeout';
        tlsDone();
      }, req.tlsTimeoutMs ?? 3000);
      t.on('secureConnect', () => {
        const cert = t.getPeerCertificate();
        info.ok = true;
        info.protocol = t.getProtocol();
        info.certBytes = cert.raw?.length;
        info.validTo = cert.valid_to;
        info.authError = String(t.authorizationError ?? '');
        tlsDone();
      });
      t.on('error', (err: NodeJS.ErrnoException) => {
        info.error = err.code ?? err.message;
        tlsDone();
      });
      t.on('close', () => {
        if (!over) info.error ??= 'closed';
        tlsDone();
      });
    };
  });
}

/** Several connections at once, in one process (saves a node start-up per connection). */
export function labConnectAll(reqs: ClientRequest[]): Promise<ClientResult[]> {
  return Promise.all(reqs.map(labConnect));
}
