// Scripted TCP peers for behaviours xrdp cannot produce.
//
// Standalone script, because peers must run inside a lab namespace and a Node
// process cannot enter one: peers.ts starts it with topology.spawnNode().
//   node --import tsx peer-server.ts '<json PeerServerConfig>'
// It prints "listening ADDR:PORT MODE" per peer and then "ready".
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { negResponse, PROTOCOL_SSL, TLS_ALERT_HANDSHAKE_FAILURE } from './rdp-bytes.ts';

export type PeerMode =
  | 'close' // accept, then FIN at once
  | 'reset' // accept, then RST at once
  | 'banner' // send `text` (default an SSH banner) on accept, FIN once the client sends anything
  | 'http' // answer the first bytes with an HTTP 400 response, then FIN
  | 'http-line' // like a real HTTP server: silent until a line end arrives, then HTTP 400 and FIN
  | 'reply' // answer the X.224 request with exactly `hex`, then `after`
  | 'tls-alert' // select SSL, answer the ClientHello with `hex` (default alert handshake_failure), then FIN
  | 'tls-close' // select SSL, FIN right after the ClientHello
  | 'tls-reset' // select SSL, RST right after the ClientHello
  | 'endless' // send bytes forever from accept on
  | 'bigcert' // select SSL, answer the ClientHello with `bytes` (default 10 MB) of garbage "Certificate" records, then FIN
  | 'stall'; // accept, never send, never close

export interface PeerSpec {
  mode: PeerMode;
  port: number;
  /** reply: bytes to send; tls-alert: alert record to send. */
  hex?: string;
  /** banner: text to send. */
  text?: string;
  /** reply: what to do after sending (default 'close'). */
  after?: 'close' | 'reset' | 'hold';
  /** bigcert: total bytes of TLS records. */
  bytes?: number;
}

export interface PeerServerConfig {
  addr: string;
  peers: PeerSpec[];
}

export const SSH_BANNER = 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n';
export const HTTP_400 = 'HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';

/**
 * Call `cb` once with the first complete message: a whole TPKT (X.224 request)
 * or TLS record when the bytes look like one, otherwise whatever arrived first.
 * Bytes after the message (a pipelining client) are passed on as `rest`.
 */
function onFirstMessage(sock: net.Socket, cb: (msg: Buffer, rest: Buffer) => void, initial: Buffer = Buffer.alloc(0)): void {
  let buf: Buffer = initial;
  const check = (): boolean => {
    if (buf.length === 0) return false;
    let need = 1;
    if (buf[0] === 0x03) need = buf.length >= 4 ? buf.readUInt16BE(2) : 4; // TPKT
    else if (buf[0] === 0x16) need = buf.length >= 5 ? 5 + buf.readUInt16BE(3) : 5; // TLS record
    else need = buf.length; // anything else: take what we have
    if (buf.length < need) return false;
    sock.off('data', onData);
    cb(buf.subarray(0, need), buf.subarray(need));
    return true;
  };
  const onData = (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    check();
  };
  if (!check()) sock.on('data', onData);
}

/** Write `total` bytes from `make()` with backpressure, then maybe end. */
function pump(sock: net.Socket, make: () => Buffer, total: number, endAfter: boolean): void {
  let sent = 0;
  const more = () => {
    while (sent < total && !sock.destroyed) {
      const chunk = make().subarray(0, total - sent);
      sent += chunk.length;
      if (!sock.write(chunk)) return void sock.once('drain', more);
    }
    if (endAfter && !sock.destroyed) sock.end();
  };
  more();
}

/** Garbage TLS handshake records whose first message claims to be a huge Certificate. */
function bigCertMaker(total: number): () => Buffer {
  const garbage = randomBytes(16384);
  let first = true;
  return () => {
    const rec = Buffer.alloc(5 + 16384);
    rec.set([0x16, 0x03, 0x03, 0x40, 0x00]);
    garbage.copy(rec, 5);
    if (first) {
      // Handshake header: type 11 (Certificate), 24-bit length of the whole blob.
      const len = Math.min(total - 9, 0xffffff);
      rec.set([0x0b, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff], 5);
      first = false;
    }
    return rec;
  };
}

function handle(sock: net.Socket, spec: PeerSpec): void {
  sock.on('error', () => { /* clients reset us all the time; that is the point */ });
  // Answer the X.224 request selecting SSL, then act on the ClientHello.
  const afterSsl = (then: () => void) =>
    onFirstMessage(sock, (_cr, rest) => {
      sock.write(negResponse(PROTOCOL_SSL));
      onFirstMessage(sock, then, rest);
    });
  switch (spec.mode) {
    case 'close':
      sock.end();
      break;
    case 'reset':
      sock.resetAndDestroy();
      break;
    case 'banner':
      sock.write(spec.text ?? SSH_BANNER);
      onFirstMessage(sock, () => sock.end());
      break;
    case 'http':
      onFirstMessage(sock, () => sock.end(HTTP_400));
      break;
    case 'http-line': {
      // An HTTP parser reads the request line up to its end: a binary request without a line end
      // gets no answer at all, one that carries a line (the mstshash cookie) gets 400.
      let seen = '';
      const onData = (d: Buffer) => {
        seen += d.toString('latin1');
        if (!seen.includes('\n')) return;
        sock.off('data', onData);
        sock.end(HTTP_400);
      };
      sock.on('data', onData);
      break;
    }
    case 'reply':
      onFirstMessage(sock, () => {
        sock.write(Buffer.from(spec.hex ?? '', 'hex'));
        if ((spec.after ?? 'close') === 'close') sock.end();
        // Let the reply leave before the RST (resetAndDestroy discards unsent data).
        else if (spec.after === 'reset') setTimeout(() => sock.resetAndDestroy(), 50);
      });
      break;
    case 'tls-alert':
      afterSsl(() => sock.end(spec.hex ? Buffer.from(spec.hex, 'hex') : TLS_ALERT_HANDSHAKE_FAILURE));
      break;
    case 'tls-close':
      afterSsl(() => sock.end());
      break;
    case 'tls-reset':
      afterSsl(() => sock.resetAndDestroy());
      break;
    case 'endless': {
      const block = Buffer.alloc(65536, 'garbage-');
      pump(sock, () => block, Number.POSITIVE_INFINITY, false);
      break;
    }
    case 'bigcert': {
      const total = spec.bytes ?? 10 * 1024 * 1024;
      afterSsl(() => pump(sock, bigCertMaker(total), total, true));
      break;
    }
    case 'stall':
      // Hold the socket open; the client (or our kill) ends it.
      break;
  }
}

export async function startPeerServers(cfg: PeerServerConfig): Promise<net.Server[]> {
  const servers: net.Server[] = [];
  for (const spec of cfg.peers) {
    const srv = net.createServer((sock) => handle(sock, spec));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host: cfg.addr, port: spec.port, backlog: 64 }, () => resolve());
    });
    console.log(`listening ${cfg.addr}:${spec.port} ${spec.mode}`);
    servers.push(srv);
  }
  return servers;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await startPeerServers(JSON.parse(process.argv[2]) as PeerServerConfig);
  console.log('ready');
}
