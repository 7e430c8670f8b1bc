// A TCP connection with a small maximum segment size, for the probe's path-MTU black-hole check.
//
// WHY: when the server's TLS flight never arrives but the small X.224 exchange did, the classic
// cause is a path (VPN, tunnel) that drops full-size packets and whose ICMP "fragmentation needed"
// never reaches the server. The direct proof is to ask again with a smaller segment size: a TCP
// client announces its MSS in the SYN, the server then sends segments no larger than that, and if
// the flight now arrives, packet size was the problem. Node cannot set TCP_MAXSEG, so a tiny relay
// in a helper program that can (perl, which is part of every Debian/Ubuntu base system and macOS,
// or python3) opens the connection with the MSS set before connect() and copies bytes between the
// socket and its stdin/stdout. The RDP and TLS bytes are still produced and parsed by Node; the
// helper only carries them. No root is needed (lowering one's own MSS is unprivileged).
// Windows has neither the helpers by default nor a settable TCP_MAXSEG: there the check is
// reported as skipped and diagnose relies on the DF-ping path-MTU check instead.
import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import { lateSafeTimeout } from './tcp.ts';
import { findProgram } from './which.ts';

/**
 * 536 = the IPv4 default MSS (RFC 879/1122): 576-byte packets, which every IPv4 path must carry,
 * and which Windows and Linux servers honour (both clamp lower values).
 */
export const SMALL_MSS = 536;

// Protocol with the helper: argv = ADDRESS PORT MSS TIMEOUT_SECONDS. It writes one line to stderr,
// "connected", or "failed <errno text>" / "timeout" and exits; after "connected" it relays until
// either side closes, and writes "reset" to stderr when the socket read failed (RST).
const PERL = String.raw`
use strict; use warnings;
use Socket qw(:addrinfo SOCK_STREAM IPPROTO_TCP TCP_MAXSEG);
use IO::Select; use IO::Handle;
my ($host, $port, $mss, $tmo) = @ARGV;
STDERR->autoflush(1);
my ($err, @res) = getaddrinfo($host, $port, { socktype => SOCK_STREAM, flags => AI_NUMERICHOST });
if ($err || !@res) { print STDERR "failed resolve $err\n"; exit 2 }
socket(my $s, $res[0]->{family}, SOCK_STREAM, IPPROTO_TCP) or do { print STDERR "failed socket $!\n"; exit 2 };
setsockopt($s, IPPROTO_TCP, TCP_MAXSEG, pack('i', $mss)) or do { print STDERR "failed setsockopt $!\n"; exit 2 };
$SIG{ALRM} = sub { print STDERR "timeout\n"; exit 3 };
alarm($tmo);
connect($s, $res[0]->{addr}) or do { print STDERR "failed connect $!\n"; exit 4 };
alarm(0);
print STDERR "connected\n";
binmode STDIN; binmode STDOUT; binmode $s;
my $sel = IO::Select->new(\*STDIN, $s);
while (my @r = $sel->can_read) {
  for my $fh (@r) {
    my $n = sysread($fh, my $buf, 65536);
    if (!defined $n && $fh == $s) { print STDERR "reset\n"; exit 0 }
    if (!$n) { if ($fh == $s) { exit 0 } shutdown($s, 1); $sel->remove(\*STDIN); next }
    my $out = $fh == $s ? \*STDOUT : $s;
    my $off = 0;
    while ($off < $n) { my $w = syswrite($out, $buf, $n - $off, $off); exit 0 unless defined $w; $off += $w }
  }
}
`;

const PYTHON = String.raw`
import os, select, socket, sys
host, port, mss, tmo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
try:
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
except Exception as e:
    sys.stderr.write("failed %s\n" % e); sys.stderr.flush(); sys.exit(2)
s.settimeout(tmo)
try:
    s.connect(ai[4])
except socket.timeout:
    sys.stderr.write("timeout\n"); sys.stderr.flush(); sys.exit(3)
except Exception as e:
    sys.stderr.write("failed connect %s\n" % e); sys.stderr.flush(); sys.exit(4)
s.settimeout(None)
sys.stderr.write("connected\n"); sys.stderr.flush()
fds = [0, s.fileno()]
while True:
    r, _, _ = select.select(fds, [], [])
    for fd in r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            sys.stderr.write("reset\n"); sys.stderr.flush(); sys.exit(0)
        if not data:
            if fd == 0:
                s.shutdown(socket.SHUT_WR); fds.remove(0); continue
            sys.exit(0)
        out = 1 if fd != 0 else s.fileno()
        while data:
            n = os.write(out, data); data = data[n:]
`;

export interface MssHelper {
  name: 'perl' | 'python3';
  path: string;
}

/** The helper this machine has, or why there is none. */
export function findMssHelper(platform: NodeJS.Platform = process.platform, only?: MssHelper['name']): MssHelper | { unavailable: string } {
  if (platform === 'win32') return { unavailable: 'Windows cannot set a socket\'s TCP_MAXSEG' };
  for (const name of only ? [only] : (['perl', 'python3'] as const)) {
    const path = findProgram(name);
    if (path) return { name, path };
  }
  return { unavailable: only ? `${only} is not installed` : 'neither perl nor python3 is installed to open a connection with a small segment size' };
}

export type SmallMssConnect =
  | { outcome: 'accepted'; stream: Duplex; helper: MssHelper['name']; ms: number }
  | { outcome: 'refused' | 'timeout' | 'error'; helper: MssHelper['name']; ms: number; error: string }
  | { outcome: 'unavailable'; ms: 0; error: string };

/**
 * Connect to address:port (a literal IP) with TCP_MAXSEG = mss. On 'accepted', `stream` carries
 * the connection; destroying it ends the helper. Never throws; bounded by timeoutMs.
 */
export function connectSmallMss(address: string, port: number, mss: number, timeoutMs: number, helper = findMssHelper()): Promise<SmallMssConnect> {
  if ('unavailable' in helper) return Promise.resolve({ outcome: 'unavailable', ms: 0, error: helper.unavailable });
  const t0 = performance.now();
  const ms = () => Math.round((performance.now() - t0) * 100) / 100;
  const args = [String(address), String(port), String(Math.trunc(mss)), String(Math.max(1, Math.ceil(timeoutMs / 1000)))];
  const argv = helper.name === 'perl' ? ['-e', PERL, ...args] : ['-c', PYTHON, ...args];
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(helper.path, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ outcome: 'error', helper: helper.name, ms: ms(), error: (e as Error).message });
      return;
    }
    let settled = false;
    let stream: Duplex | undefined;
    let errText = '';
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const settle = (r: SmallMssConnect) => {
      if (settled) return;
      settled = true;
      cancel();
      if (r.outcome !== 'accepted') kill();
      resolve(r);
    };
    const cancel = lateSafeTimeout(() => settle({ outcome: 'timeout', helper: helper.name, ms: ms(), error: 'connect timed out' }), timeoutMs);
    child.on('error', (e) => settle({ outcome: 'error', helper: helper.name, ms: ms(), error: e.message }));
    child.stdin!.on('error', () => { /* helper gone; the stream reports the close */ });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      errText = (errText + d).slice(-2000);
      if (!settled) {
        if (/^connected$/m.test(errText)) {
          const s = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
          s.on('error', () => { /* readers attach their own */ });
          s.on('close', kill);
          stream = s;
          settle({ outcome: 'accepted', stream: s, helper: helper.name, ms: ms() });
        } else if (/^timeout$/m.test(errText)) {
          settle({ outcome: 'timeout', helper: helper.name, ms: ms(), error: 'connect timed out' });
        } else if (/^failed /m.test(errText)) {
          const line = /^failed (.*)$/m.exec(errText)![1]!;
          settle({ outcome: /refused/i.test(line) ? 'refused' : 'error', helper: helper.name, ms: ms(), error: line.trim() });
        }
      } else if (stream && /^reset$/m.test(errText)) {
        stream.destroy(Object.assign(new Error('connection reset by peer (via helper)'), { code: 'ECONNRESET' }));
      }
    });
    child.on('exit', () => {
      if (!settled) settle({ outcome: 'error', helper: helper.name, ms: ms(), error: errText.trim().split('\n').pop() || 'helper exited' });
    });
  });
}
