// The lab's Remote Desktop Services listener: what a Windows server's TermService is to a client,
// with states a test can put it in and the Windows twin's TermService controlling it, so that a
// restart-termserv over ssh:// restarts something real and a real client (xfreerdp) judges it.
//
// Standalone script, because it must run inside a lab namespace (topology.spawnNode()):
//   node --import tsx termservice.ts '<json TermServiceConfig>'
// It prints "listening ADDR:PORT MODE" and then "ready". States:
// - up:   every connection is piped, byte for byte, to the real RDP server behind it (xrdp on
//         another port): the RDP protocol, TLS and the certificate are that server's;
// - hung: TCP is accepted and nothing is ever answered (the hung listener of the listener-hung
//         recipe: the port is open, the X.224 request gets no confirm);
// - down: nothing listens on the port (connection refused: the service-down recipe's case).
// Control: one line per connection on the Unix socket `control`: `start`, `restart` (both: up, and
// every connection held by a hung listener is dropped, as a restart of the service does), `stop`
// (down), `hang` (hung: a restart cures it) or `wedge` (hung, and a restart brings it back hung:
// the listener a restart does not fix); the answer is `ok MODE` once the new state is in force (the listening
// socket bound or closed), so the twin's Restart-RdpWinService returns when a client could connect.
import net from 'node:net';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type TermServiceMode = 'up' | 'hung' | 'down';

export interface TermServiceConfig {
  /** Where clients connect (every address of the namespace: 0.0.0.0, so 127.0.0.1 reaches it too). */
  addr: string;
  port: number;
  /** The real RDP server behind it. */
  backendAddr: string;
  backendPort: number;
  mode: TermServiceMode;
  /** Unix socket for the control lines. */
  control: string;
}

export async function runTermService(c: TermServiceConfig): Promise<void> {
  let mode: TermServiceMode = 'down';
  let wedged = false;
  // Every client connection, hung or piped: a stop or restart ends them all, as the service's does.
  const held = new Set<net.Socket>();
  let server: net.Server | null = null;

  const onClient = (s: net.Socket) => {
    s.on('error', () => {});
    held.add(s);
    s.on('close', () => held.delete(s));
    if (mode === 'hung') {
      s.resume(); // read and drop whatever comes; never write
      return;
    }
    const b = net.connect({ host: c.backendAddr, port: c.backendPort });
    b.on('error', () => s.destroy());
    s.on('close', () => b.destroy());
    b.on('close', () => s.destroy());
    s.pipe(b);
    b.pipe(s);
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      if (server) return resolve();
      const srv = net.createServer(onClient);
      srv.once('error', reject);
      srv.listen({ host: c.addr, port: c.port, exclusive: true }, () => {
        server = srv;
        resolve();
      });
    });
  const unlisten = () =>
    new Promise<void>((resolve) => {
      const srv = server;
      server = null;
      if (!srv) return resolve();
      srv.close(() => resolve());
    });
  const dropHeld = () => {
    for (const s of held) s.destroy();
    held.clear();
  };

  const set = async (next: TermServiceMode, restart: boolean) => {
    if (restart || next !== 'hung') dropHeld();
    if (next === 'down') await unlisten();
    else await listen();
    mode = next;
  };

  await set(c.mode, false);
  rmSync(c.control, { force: true });
  // allowHalfOpen: socat shuts its side after the command; the answer must still go out.
  const control = net.createServer({ allowHalfOpen: true }, (s) => {
    let buf = '';
    let done = false;
    s.setEncoding('utf8');
    s.on('error', () => {});
    s.on('data', async (d: string) => {
      if (done) return;
      buf += d;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      done = true;
      const cmd = buf.slice(0, i).trim();
      try {
        if (cmd === 'start' || cmd === 'restart') await set(wedged ? 'hung' : 'up', true);
        else if (cmd === 'stop') {
          wedged = false;
          await set('down', true);
        } else if (cmd === 'hang' || cmd === 'wedge') {
          wedged = cmd === 'wedge';
          await set('hung', false);
        }
        else if (cmd !== 'status') throw new Error(`unknown command "${cmd}"`);
        s.end(`ok ${mode}\n`);
      } catch (e) {
        s.end(`error ${(e as Error).message}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => control.listen(c.control, resolve));
  process.stdout.write(`listening ${c.addr}:${c.port} ${mode}\nready\n`);
  const quit = () => {
    control.close();
    rmSync(c.control, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runTermService(JSON.parse(process.argv[2] ?? '{}') as TermServiceConfig);
}
