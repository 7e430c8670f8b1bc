// Debian's xrdp (0.9.21) as a real RDP server inside a lab namespace, plus
// the certificates the tests need.
//
// HOW IT IS RUN: `xrdp --nodaemon --config FILE` with a generated config:
//   [Globals] port=tcp://ADDR:PORT binds one address only, so any number of
//   instances can run at once (different namespaces and/or ports).
//   [Logging] LogFile=<topology tmp dir>, EnableSyslog/EnableConsole=false.
//   With --nodaemon xrdp writes NO pid file (nothing in /run/xrdp), so no
//   override is needed. xrdp-sesman is not needed for the connection start.
//   fork=true (default): one child per connection, same process group, so
//   stop() (a group kill) ends them too. Listen backlog is only 2.
//   RDP security (selected PROTOCOL_RDP) uses /etc/xrdp/rsakeys.ini (exists).
//
// FINDINGS (measured with lab-client.ts / raw sockets, xrdp 0.9.21.1, OpenSSL 3.0):
// X.224 Connection Confirm from xrdp always has dst-ref 0, src-ref 0x1234:
//   RSP  = 03 00 00 13 0e d0 00 00 12 34 00 | 02 FL 08 00 SS SS SS SS
//   FAIL = 03 00 00 13 0e d0 00 00 12 34 00 | 03 00 08 00 CC CC CC CC
// On every error xrdp sends, then FIN (not RST):
//   DPUm = 03 00 00 09 02 f0 80 21 80   (TPKT, X.224 DT, MCS DisconnectProviderUltimatum)
//
// security_layer=negotiate, valid cert:
//   req 0x0b (SSL|HYBRID|HYBRID_EX) or 0x01 -> RSP flags 01 selected 1 (SSL):
//     03 00 00 13 0e d0 00 00 12 34 00 02 01 08 00 01 00 00 00
//     TLS handshake completes (TLSv1.3 with default ssl_protocols "TLSv1.2, TLSv1.3").
//   req 0x00, 0x02 (HYBRID only), 0x08 -> RSP selected 0 (PROTOCOL_RDP), no failure:
//     03 00 00 13 0e d0 00 00 12 34 00 02 01 08 00 00 00 00 00
//     then xrdp waits for the MCS Connect-Initial (it did not close within 4 s).
//   legacy CR without RDP_NEG_REQ -> 03 00 00 0b 06 d0 00 00 12 34 00, then waits.
// security_layer=rdp:
//   any request, incl. 0x0b -> RSP selected 0 (PROTOCOL_RDP), flags 01 (NOT a
//   RDP_NEG_FAILURE); then waits for MCS. A client that insists on TLS/NLA must
//   give up itself.
// security_layer=tls:
//   req 0x0b / 0x01 -> RSP selected 1 (SSL); TLS completes.
//   req 0x00 / 0x02 / 0x08 -> FAIL code 1 (SSL_REQUIRED_BY_SERVER)
//     03 00 00 13 0e d0 00 00 12 34 00 03 00 08 00 01 00 00 00  + DPUm + FIN
//   legacy CR -> 03 00 00 0b 06 d0 00 00 12 34 00 + DPUm + FIN
// Certificate/key files missing (unreadable):
//   negotiate: silently falls back: RSP selected 0 (RDP) even for req 0x0b.
//   tls: FAIL code 3 (SSL_CERT_NOT_ON_SERVER) + DPUm + FIN, for any request.
// Key does not match the certificate (negotiate or tls): xrdp STARTS fine and
//   listens; per connection it answers RSP selected 1 (SSL), then finds the
//   mismatch before reading the ClientHello ("Private key ... and certificate
//   ... do not match") and sends DPUm + FIN right after the confirm. A TLS
//   client reads 03 00 00 09 ... as a TLS record: Node reports
//   ERR_SSL_WRONG_VERSION_NUMBER (50 of 50 tries). In theory a client could
//   instead see ECONNRESET when its ClientHello hits the closed socket.
// Expired certificate: TLS completes normally; only the client's verification
//   says CERT_HAS_EXPIRED (xrdp does not care).
// ssl_protocols=TLSv1 only (and Node's default min TLSv1.2): RSP selects SSL,
//   then the server answers the ClientHello with alert protocol_version (70):
//   Node error ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION.
// Size of the server's first TLS flight (bytes after the ClientHello):
//   valid cert (RSA 2048, 815 B DER): TLS 1.3 1371 B (one segment), TLS 1.2 smaller.
//   large cert (RSA 4096 + 140 SANs, ~8.4 KB DER): TLS 1.3 9274 B, TLS 1.2 9117 B.
// PMTU black hole (routed, pathMtu 1400, ICMP frag-needed dropped):
//   large cert: handshake stalls (nothing arrives after the confirm until the
//   client's timeout); with the client MTU lowered to 1400 it completes.
//   CAUTION: the VALID cert over TLS 1.3 also stalls at pathMtu 1400 (1371 B
//   payload + 52 B IP/TCP headers = 1423 B > 1400); over TLS 1.2 it passes,
//   and at pathMtu 1450 both pass. Use the large cert when a test needs a
//   clear difference, or pathMtu >= 1450 when the valid cert must get through.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LAB_PREFIX, type HostName, type Spawned, type Topology } from './netns.ts';
import { bin } from './prereq.ts';

const execFileP = promisify(execFile);

export interface CertPair {
  cert: string;
  key: string;
}

export interface LabCerts {
  dir: string;
  /** Self-signed RSA 2048, valid for 10 years from generation. */
  valid: CertPair;
  /** Self-signed, valid 2020-01-01 .. 2020-02-01. */
  expired: CertPair;
  /** The valid cert with a key that does not belong to it. */
  mismatched: CertPair;
  /** RSA 4096, 140 long subjectAltNames: ~8 KB DER, TLS flight far above 1500 bytes. */
  large: CertPair;
  /** Paths that do not exist (xrdp cannot read them). */
  missing: CertPair;
}

// Bump when the generation below changes, so old caches are not reused.
const CERT_CACHE = join(tmpdir(), 'rfx-lab-certs-v1');
const LARGE_SANS = 140;

function certsIn(dir: string): LabCerts {
  return {
    dir,
    valid: { cert: join(dir, 'valid.pem'), key: join(dir, 'valid.key') },
    expired: { cert: join(dir, 'expired.pem'), key: join(dir, 'expired.key') },
    mismatched: { cert: join(dir, 'valid.pem'), key: join(dir, 'other.key') },
    large: { cert: join(dir, 'large.pem'), key: join(dir, 'large.key') },
    missing: { cert: join(dir, 'does-not-exist.pem'), key: join(dir, 'does-not-exist.key') },
  };
}

let certsPromise: Promise<LabCerts> | undefined;

/**
 * Generate the lab certificates once and cache them in the temp dir (the
 * 4096-bit key takes a second or more; parallel test processes share it).
 */
export function labCerts(): Promise<LabCerts> {
  certsPromise ??= generateCerts();
  return certsPromise;
}

async function generateCerts(): Promise<LabCerts> {
  if (existsSync(CERT_CACHE)) return certsIn(CERT_CACHE);
  // Build in a private dir (named like other lab temp dirs, so
  // cleanupStaleLab() removes it if we crash), then rename atomically.
  const dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${process.pid}-certs-`));
  const openssl = (args: string[]) => execFileP(bin('openssl'), args, { cwd: dir, timeout: 60_000 });
  try {
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'valid.key', '-out', 'valid.pem',
      '-days', '3650', '-subj', '/CN=rdp-lab-valid', '-addext', 'subjectAltName=DNS:rdp-lab-valid']);
    await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'other.key']);

    // openssl 3.0's `req -x509` cannot set a start date in the past (no
    // -not_before before 3.4) and faketime is not available, but `openssl ca`
    // accepts explicit -startdate/-enddate, also for a self-signed cert.
    writeFileSync(join(dir, 'ca.cnf'), [
      '[ca]', 'default_ca = lab', '[lab]', 'database = ./index.txt', 'new_certs_dir = .',
      'serial = ./serial', 'default_md = sha256', 'policy = any', 'unique_subject = no',
      'copy_extensions = copy', '[any]', 'commonName = supplied', '',
    ].join('\n'));
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '01\n');
    await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'expired.key', '-out', 'expired.csr',
      '-subj', '/CN=rdp-lab-expired']);
    await openssl(['ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'expired.key', '-in', 'expired.csr',
      '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-notext', '-out', 'expired.pem']);

    const sans = Array.from({ length: LARGE_SANS }, (_, i) =>
      `DNS:host-${String(i).padStart(3, '0')}.very-long-subdomain-name.rdp-lab.example`).join(',');
    await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096', '-out', 'large.key']);
    await openssl(['req', '-x509', '-key', 'large.key', '-out', 'large.pem', '-days', '3650',
      '-subj', '/CN=rdp-lab-large', '-addext', `subjectAltName=${sans}`]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  try {
    renameSync(dir, CERT_CACHE);
  } catch {
    // Another process won the race; its certs are just as good.
    rmSync(dir, { recursive: true, force: true });
  }
  return certsIn(CERT_CACHE);
}

export type SecurityLayer = 'rdp' | 'tls' | 'negotiate';

export interface XrdpOptions {
  /** Namespace to run in (default 'server'); listens on that host's address. */
  host?: HostName;
  port?: number;
  securityLayer?: SecurityLayer;
  /** Default: labCerts().valid. */
  cert?: CertPair;
  /** xrdp syntax, e.g. "TLSv1.2, TLSv1.3" (default) or "TLSv1.2". */
  sslProtocols?: string;
  /** Extra [Globals] keys, e.g. { tls_ciphers: 'HIGH' }. */
  globals?: Record<string, string>;
  startTimeoutMs?: number;
}

export interface Xrdp {
  addr: string;
  port: number;
  configFile: string;
  logFile: string;
  proc: Spawned;
  /** Contents of xrdp's log file (DEBUG level). */
  log(): string;
  stop(): Promise<void>;
}

export function xrdpConfig(o: { addr: string; port: number; securityLayer: SecurityLayer; cert: CertPair; sslProtocols: string; logFile: string; globals?: Record<string, string> }): string {
  const globals: Record<string, string> = {
    ini_version: '1',
    fork: 'true',
    port: `tcp://${o.addr}:${o.port}`,
    use_vsock: 'false',
    tcp_nodelay: 'true',
    tcp_keepalive: 'true',
    security_layer: o.securityLayer,
    crypt_level: 'high',
    certificate: o.cert.cert,
    key_file: o.cert.key,
    ssl_protocols: o.sslProtocols,
    ...o.globals,
  };
  return [
    '[Globals]',
    ...Object.entries(globals).map(([k, v]) => `${k}=${v}`),
    '',
    '[Logging]',
    `LogFile=${o.logFile}`,
    'LogLevel=DEBUG',
    'EnableSyslog=false',
    'EnableConsole=false',
    '',
    '[Channels]',
    '',
  ].join('\n');
}

/** Start xrdp in a namespace and wait until it listens. */
export async function startXrdp(topo: Topology, opts: XrdpOptions = {}): Promise<Xrdp> {
  const host = opts.host ?? 'server';
  const addr = topo.host(host).addr;
  const port = opts.port ?? 3389;
  const cert = opts.cert ?? (await labCerts()).valid;
  const base = join(topo.tmpDir, `xrdp-${host}-${port}`);
  const configFile = `${base}.ini`;
  const logFile = `${base}.log`;
  writeFileSync(configFile, xrdpConfig({
    addr, port, cert, logFile,
    securityLayer: opts.securityLayer ?? 'negotiate',
    sslProtocols: opts.sslProtocols ?? 'TLSv1.2, TLSv1.3',
    globals: opts.globals,
  }));
  const proc = topo.spawn(host, [bin('xrdp'), '--nodaemon', '--config', configFile]);
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  // Fail fast if xrdp exits (bad config, port taken) instead of waiting out the timeout.
  let starting = true;
  const died = proc.exited.then(({ code }) => {
    if (starting) throw new Error(`xrdp exited (${code}) before listening`);
  });
  died.catch(() => { /* reported through the race below */ });
  try {
    await Promise.race([topo.waitListening(host, port, addr, opts.startTimeoutMs ?? 5000), died]);
    starting = false;
  } catch (err) {
    starting = false;
    await proc.kill();
    throw new Error(`${(err as Error).message}\n--- xrdp output ---\n${proc.output()}\n--- xrdp log ---\n${log()}`);
  }
  return { addr, port, configFile, logFile, proc, log, stop: () => proc.kill() };
}
