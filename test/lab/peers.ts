// Start scripted TCP peers (peer-server.ts) or socat inside a lab namespace,
// so the client namespace reaches them over the lab network exactly like it
// reaches xrdp. One peer-server process can serve many ports: tsx start-up
// costs ~0.4 s, so start all peers a test needs in one call.
import { fileURLToPath } from 'node:url';
import type { HostName, Spawned, Topology } from './netns.ts';
import type { PeerServerConfig, PeerSpec } from './peer-server.ts';
import { bin } from './prereq.ts';

export type { PeerMode, PeerSpec } from './peer-server.ts';
export { HTTP_400, SSH_BANNER } from './peer-server.ts';

const PEER_SERVER = fileURLToPath(new URL('./peer-server.ts', import.meta.url));

export interface Peers {
  addr: string;
  proc: Spawned;
  stop(): Promise<void>;
}

/** Start peers on the host's address (default: the server). Resolves when all listen. */
export async function startPeers(topo: Topology, peers: PeerSpec[], host: HostName = 'server', timeoutMs = 10_000): Promise<Peers> {
  const addr = topo.host(host).addr;
  const cfg: PeerServerConfig = { addr, peers };
  const proc = topo.spawnNode(host, [PEER_SERVER, JSON.stringify(cfg)]);
  try {
    await proc.waitForOutput(/^ready$/m, timeoutMs);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return { addr, proc, stop: () => proc.kill() };
}

/**
 * socat listener that accepts and closes each connection at once (the shell
 * it forks exits immediately, so socat sends FIN): the classic "port open,
 * but nothing behind it" service.
 */
export async function startSocatCloser(topo: Topology, port: number, host: HostName = 'server'): Promise<Peers> {
  const addr = topo.host(host).addr;
  const proc = topo.spawn(host, [bin('socat'), `TCP-LISTEN:${port},bind=${addr},reuseaddr,fork`, 'SYSTEM:exit 0']);
  try {
    await topo.waitListening(host, port, addr);
  } catch (err) {
    await proc.kill();
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  }
  return { addr, proc, stop: () => proc.kill() };
}
