// test-vpn-latency: is the network path to the RDP host good enough for RDP, and which way does it go?
//
// What it does: samples the path three ways, side by side, in rounds (default 20, 200 ms apart):
//   tcp   TCP connect time to the RDP port (SYN -> SYN-ACK),
//   x224  the RDP application round trip on that connection (X.224 Connection Request -> Confirm),
//         which also crosses RD gateways, load balancers and TCP proxies that answer the SYN themselves,
//   icmp  an echo through the system ping, where ICMP is allowed.
// A sample that does not come back within --timeout counts as lost. It reports loss, min / median /
// p95 / max and jitter per method, a sparkline, the outgoing interface and its MTU (flagging VPN
// tunnels), and a verdict against thresholds (defaults: median <= 150 ms good, > 300 ms poor; loss
// >= 1 % or jitter >= 30 ms poor). Ctrl-C stops early and prints what was gathered so far.
//
// When to use it: RDP drops or freezes over a VPN, or diagnose points at the network.
// It measures the path, and does not pretend to where the port itself is the problem: a refusal
// (nothing listens), no route, a name that does not resolve, a server that closes, answers
// something that is not RDP or never answers the X.224 request. Those are named with diagnose's
// cause (same words, never a contradiction) and sampling stops as soon as more rounds cannot
// change that.
//
// Undo: nothing to undo — it only measures (one short TCP connection per round, one ping).
import type { Cause } from './lib/causes.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { isResolved, resolveHost } from './lib/dns.ts';
import { EnvError, UsageError } from './lib/errors.ts';
import { chalk, printJson, type Status } from './lib/output.ts';
import { pingPlatform, runPing } from './lib/ping.ts';
import type { Report } from './lib/report.ts';
import { describeRoute, type RouteInfo } from './lib/route.ts';
import { DEFAULT_THRESHOLDS, judge, round3, sparkline, summarize, thresholdError, type Summary, type Thresholds, type Verdict } from './lib/stats.ts';
import { tcpConnect } from './lib/tcp.ts';
import { formatHostPort, validateHost, validateInt } from './lib/validate.ts';
import { exchangeConfirm, PROTOCOL } from './lib/x224.ts';
const SCRIPT = 'test-vpn-latency';
export type Method = 'tcp' | 'x224' | 'icmp';

export interface LatencyOptions {
  /** HOST or HOST:PORT (IPv6 in brackets). */
  host: string;
  /** RDP port when the host has none (default 3389). */
  port?: number;
  /** Rounds (default 20). */
  count?: number;
  /** Milliseconds between the starts of two rounds (default 200). */
  intervalMs?: number;
  /** Per-sample timeout in ms (default 2000); a timeout counts as loss. */
  timeoutMs?: number;
  /** Which methods to sample (default all three). */
  methods?: Method[];
  thresholds?: Partial<Thresholds>;
  /** Abort (Ctrl-C): stop and report the rounds completed so far. */
  signal?: AbortSignal;
  /** Called after each completed round. */
  onRound?: (p: RoundProgress) => void;
}

export interface RoundProgress {
  round: number;
  count: number;
  last: Partial<Record<Method, number | null>>;
  lost: number;
}

export interface MethodReport extends Summary {
  method: Method;
  /** Every sample in order, RTT in ms or null when lost. */
  samplesMs: (number | null)[];
  /** Failures other than timeouts, by kind (refused, reset, closed, not-x224, no-connection...). */
  errors: Record<string, number>;
  /** Whether this method counts for the verdict (a blocked ICMP or a non-RDP answer does not). */
  counted: boolean;
  note?: string;
}

/**
 * good / fair / poor / unreachable judge the path; 'server-problem' means the path answers but the
 * port does not speak RDP (refused, closed, not RDP, silent); 'name-not-resolved' that there is no
 * address at all. Both carry `problem`, in diagnose's cause names.
 */
export type LatencyVerdict = Verdict | 'server-problem' | 'name-not-resolved' | 'unknown';

/**
 * The step contract (lib/report.ts) and the numbers. `cause`: the problem's cause, or
 * unstable-network for a poor path, else null; `evidence`: the reasons, why sampling stopped, the
 * methods' notes and errors; `changes`: always [] (it only measures).
 */
export interface LatencyReport extends Report {
  status: Status;
  /** HOST:PORT as measured. */
  endpoint: string;
  address: string | null;
  route: { interface: string | null; mtu: number | null; vpn: boolean };
  methods: MethodReport[];
  verdict: LatencyVerdict;
  /** When the path is not what fails: the cause diagnose names for the same host, and why. */
  problem: { cause: Cause; summary: string } | null;
  /** Why sampling stopped before --count rounds (more rounds could not change the verdict). */
  stoppedEarly?: string;
  reasons: string[];
  /** Exact commands to run next; the prose that goes with them is in `notes`. */
  next: string[];
  notes: string[];
  thresholds: Thresholds;
  rounds: number;
  interrupted: boolean;
  elapsedMs: number;
}

/** Sample the path and judge it. Validation errors are UsageErrors (nothing is sent). */
export async function measureLatency(o: LatencyOptions): Promise<LatencyReport> {
  const t0 = performance.now();
  const h = validateHost(o.host);
  const port = h.port ?? o.port ?? 3389;
  const count = validateInt(o.count ?? 20, 'count', 1, 100_000);
  const intervalMs = validateInt(o.intervalMs ?? 200, 'interval (ms)', 0, 3_600_000);
  const timeoutMs = validateInt(o.timeoutMs ?? 2000, 'timeout (ms)', 50, 60_000);
  const want = new Set<Method>(o.methods ?? ['tcp', 'x224', 'icmp']);
  if (!want.size) throw new UsageError('no method to sample');
  const thresholds: Thresholds = { ...DEFAULT_THRESHOLDS, ...o.thresholds };
  const inverted = thresholdError(thresholds);
  if (inverted) throw new UsageError(inverted);
  const endpoint = formatHostPort({ host: h.host, port });
  const base = { endpoint, methods: [] as MethodReport[], thresholds, interrupted: false };
  const lookup = await resolveHost(h.host, timeoutMs);
  if (!isResolved(lookup)) {
    // Nothing to sample: no address. diagnose says the same (name-not-resolved, no network fix).
    const partial = {
      ...base, status: 'failed' as const, address: null, route: { interface: null, mtu: null, vpn: false }, verdict: 'name-not-resolved' as const,
      problem: { cause: 'name-not-resolved' as const, summary: `${lookup.error}: there is no address to measure` }, reasons: [], rounds: 0,
      elapsedMs: Math.round(performance.now() - t0),
    };
    return withContract({ ...partial, ...nextOf(partial), thresholds });
  }
  const { address, family } = lookup;
  const route: RouteInfo = await describeRoute(address, family);

  const samples: Record<Method, (number | null)[]> = { tcp: [], x224: [], icmp: [] };
  const errors: Record<Method, Record<string, number>> = { tcp: {}, x224: {}, icmp: {} };
  const add = (m: Method, s: Sample) => {
    samples[m].push(s.ms);
    if (s.error) errors[m][s.error] = (errors[m][s.error] ?? 0) + 1;
  };
  let icmpNote: string | undefined;
  const x224Failures = new Set<string>();
  let icmpOn = want.has('icmp');
  const platform = pingPlatform();
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const aborted = new Promise<'aborted'>((resolve) => {
    if (stop.signal.aborted) resolve('aborted');
    stop.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
  });

  let rounds = 0;
  let lost = 0;
  let stoppedEarly: string | undefined;
  /** Rounds so far in which TCP was accepted and X.224 got no Connection Confirm. */
  let deafRounds = 0;
  try {
    for (let i = 0; i < count && !stop.signal.aborted; i++) {
      await sleep(t0 + i * intervalMs - performance.now(), stop.signal);
      if (stop.signal.aborted) break;
      // A round: TCP (+X.224) first, then ICMP — one after the other, so a ping process starting
      // up never competes with a TCP measurement for this process's event loop.
      const round = (async () => {
        const r: Partial<Record<Method, Sample>> = {};
        if (want.has('tcp') || want.has('x224')) {
          const t = await sampleTcp(address, port, timeoutMs, want.has('x224'));
          if (want.has('tcp')) r.tcp = t.tcp;
          if (want.has('x224')) r.x224 = t.x224;
        }
        if (icmpOn && !stop.signal.aborted) {
          try {
            const p = await runPing({ platform, address, family, timeoutMs, signal: stop.signal });
            if (p.outcome.kind === 'reply') r.icmp = { ms: p.outcome.rttMs };
            else if (p.outcome.kind === 'error') {
              // ping cannot work here (no permission, bad option): stop asking it.
              icmpOn = false;
              icmpNote = `the system ping failed: ${p.outcome.detail}`;
            } else r.icmp = { ms: null, ...(p.outcome.kind === 'silent' ? {} : { error: p.outcome.kind }) };
          } catch (e) {
            if (!(e instanceof EnvError)) throw e;
            icmpOn = false;
            icmpNote = e.message;
          }
        }
        return r;
      })();
      const r = await Promise.race([round, aborted]);
      // An interrupted round is dropped whole: its samples would be cut short, not lost.
      if (r === 'aborted') break;
      for (const m of ['tcp', 'x224', 'icmp'] as const) {
        const s = r[m];
        if (!s) continue;
        add(m, s);
        if (s.failure) x224Failures.add(s.failure);
        if (s.ms === null) lost++;
      }
      rounds++;
      o.onRound?.({ round: rounds, count, last: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v!.ms])), lost });
      // What more rounds cannot change: the host's own refusal or no route, at once; a port that
      // accepts and never answers X.224 (or closes, or speaks something else), after 3 rounds agree.
      const t = r.tcp;
      if (rounds === 1 && t && (t.error === 'refused' || t.error === 'unreachable')) {
        stoppedEarly = t.error === 'refused' ? 'the first connect was refused: nothing listens on the port, more rounds cannot change that'
          : 'there is no route to the host: more rounds cannot change that';
        break;
      }
      if (want.has('x224') && r.tcp?.ms !== null && r.tcp?.ms !== undefined && r.x224?.ms === null) deafRounds++;
      if (rounds === STOP_AFTER_DEAF && deafRounds === rounds && rounds < count) {
        stoppedEarly = `${rounds} rounds in a row: TCP accepted, but no X.224 Connection Confirm: a server-side problem, more rounds cannot change that`;
        break;
      }
    }
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }

  const methods: MethodReport[] = [];
  for (const m of ['tcp', 'x224', 'icmp'] as const) {
    if (!want.has(m)) continue;
    const s = summarize(samples[m]);
    const rep: MethodReport = { method: m, ...s, samplesMs: samples[m].map((x) => (x === null ? null : round3(x))), errors: errors[m], counted: s.sent > 0 };
    const tcpGot = samples.tcp.some((x) => x !== null);
    if (m === 'icmp') {
      if (icmpNote) {
        rep.counted = false;
        rep.note = icmpNote;
      } else if (s.sent > 0 && s.received === 0 && tcpGot) {
        rep.counted = false;
        rep.note = 'no ICMP echo reply while TCP answers: ping is blocked on the path or by the host (Windows Firewall blocks echo by default); judged on TCP and X.224';
      }
    }
    if (m === 'x224' && s.received === 0 && s.sent > 0) {
      const protocol = (errors.x224['not-x224'] ?? 0) + (errors.x224.closed ?? 0) + (errors.x224.reset ?? 0);
      if (protocol > 0 && tcpGot) {
        rep.counted = false;
        rep.note = errors.x224['not-x224']
          ? 'the port answers, but not with an RDP X.224 Connection Confirm: is this the RDP port?'
          : 'the server closed or reset the connection instead of answering the X.224 request: a server-side problem, not the network (run diagnose)';
      }
    }
    methods.push(rep);
  }
  let verdict: LatencyReport['verdict'];
  let reasons: string[];
  let problem: LatencyReport['problem'] = null;
  const tcpAnswered = samples.tcp.some((x) => x !== null);
  const x224Answered = samples.x224.some((x) => x !== null);
  if (rounds === 0) {
    verdict = 'unknown';
    reasons = ['interrupted before the first sample'];
  } else if (want.has('tcp') && !tcpAnswered && errors.tcp.refused) {
    // The host answered (RST): the path works, the port is the problem. diagnose: no-listener.
    verdict = 'server-problem';
    problem = { cause: 'no-listener', summary: `connection refused: nothing listens on ${endpoint}` };
    reasons = [];
  } else if (want.has('tcp') && !tcpAnswered) {
    // Without a single TCP connection RDP cannot work, whatever ICMP says.
    verdict = 'unreachable';
    const e = errors.tcp;
    reasons = [
      e.refused ? `connection refused ×${e.refused}: nothing listens on ${formatHostPort({ host: h.host, port })}` : '',
      e.unreachable ? `host or network unreachable ×${e.unreachable}` : '',
      samples.tcp.length - Object.values(e).reduce((x, y) => x + y, 0) > 0 ? 'TCP connects time out: a firewall drops them, or the host is down' : '',
      e.error ? `connect errors ×${e.error}` : '',
    ].filter(Boolean);
    problem = { cause: 'unreachable', summary: e.unreachable ? `no route to ${h.host}` : `TCP connects to ${endpoint} are not answered` };
  } else if (want.has('x224') && tcpAnswered && samples.x224.length > 0 && !x224Answered) {
    // TCP works and every X.224 request went unanswered: not something a path does to 19 bytes
    // when it carries the SYNs. The same causes diagnose names for these answers.
    const e = errors.x224;
    verdict = 'server-problem';
    problem = e['not-x224'] ? { cause: 'not-rdp', summary: `the port answers, but not with an RDP X.224 Connection Confirm: the service on port ${port} is not RDP` }
      : e.closed || e.reset ? { cause: 'closed-by-server', summary: `the server accepts TCP and ${e.reset && !e.closed ? 'resets' : 'closes'} the connection instead of answering the X.224 request` }
      : { cause: 'listener-hung', summary: `the server accepts TCP but never answers the X.224 request: a hung RDP listener (or a silent service that is not RDP)` };
    const silent = samples.x224.length - Object.values(e).reduce((a, b) => a + b, 0);
    reasons = silent > 0 ? [`x224: no answer within ${timeoutMs} ms ×${silent}`] : [];
    // The problem says it; the method's own note would only repeat it.
    for (const m of methods) if (m.method === 'x224') delete m.note;
  } else {
    const j = judge(methods.filter((m) => m.counted), thresholds);
    verdict = j.verdict;
    reasons = j.reasons;
    if (x224Failures.size) reasons.push(`the server answers X.224 with RDP_NEG_FAILURE ${[...x224Failures].join(', ')}: the path is fine, the server refuses this negotiation (run diagnose)`);
  }
  const status: Status = verdict === 'unknown' ? 'skipped' : verdict === 'good' || verdict === 'fair' ? 'ok' : 'failed';
  const routeOut = { interface: route.interface, mtu: route.mtu, vpn: route.vpn };
  return withContract({
    status,
    endpoint,
    address,
    route: routeOut,
    methods,
    verdict,
    problem,
    ...(stoppedEarly ? { stoppedEarly } : {}),
    reasons,
    ...nextOf({ endpoint, verdict, route: routeOut, problem }),
    thresholds,
    rounds,
    interrupted: stop.signal.aborted,
    elapsedMs: Math.round(performance.now() - t0),
  });
}

export async function main(argv: string[]): Promise<number> {
  // Positional HOST: strict() would reject it, so only unknown options are errors.
  const cli = makeCli(argv, SCRIPT)
    .strict(false)
    .strictOptions(true)
    .usage(
      '$0 HOST[:PORT] [options]\n\n' +
        'HOST[:PORT]: the RDP host (port 3389 unless given; IPv6 as [ADDR]:PORT).\n\n' +
        'Sample the path to an RDP host three ways side by side — TCP connect, the RDP X.224 round trip,\n' +
        'and ICMP echo — and judge it for RDP: loss, min/median/p95/max, jitter, the outgoing interface\n' +
        'and its MTU (VPN tunnels flagged). Ctrl-C stops early and prints the statistics so far.',
    )
    .option('count', { alias: 'c', type: 'string', default: '20', describe: 'rounds of samples' })
    .option('interval', { alias: 'i', type: 'string', default: '200', describe: 'ms between rounds' })
    .option('timeout', { alias: 'W', type: 'string', default: '2000', describe: 'per-sample timeout in ms (a timeout counts as loss)' })
    .option('icmp', { type: 'boolean', default: true, describe: 'also sample ICMP echo with the system ping (--no-icmp: do not)' })
    .option('good-rtt', { type: 'string', default: String(DEFAULT_THRESHOLDS.goodRttMs), describe: 'median RTT (ms) at or below which the path is good' })
    .option('poor-rtt', { type: 'string', default: String(DEFAULT_THRESHOLDS.poorRttMs), describe: 'median RTT (ms) above which the path is poor' })
    .option('poor-loss', { type: 'string', default: String(DEFAULT_THRESHOLDS.poorLossPct), describe: 'loss % at or above which the path is poor' })
    .option('poor-jitter', { type: 'string', default: String(DEFAULT_THRESHOLDS.poorJitterMs), describe: 'jitter (ms) at or above which the path is poor' })
    .option('progress', { type: 'boolean', describe: 'progress line on stderr (default: when stderr is a terminal and not --json)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object with every number' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'a no-op: it only measures (every script takes it)' })
    .example('$0 10.8.0.5', '20 rounds to 10.8.0.5:3389')
    .example('$0 vm1:3390 --count 100 --interval 100', 'a longer, denser run on port 3390')
    .example('$0 10.8.0.5 --json > latency.json', 'all numbers for a script or a ticket')
    .epilog('Exit codes: 0 good or fair, 1 poor, unreachable, a server problem (refused, closes, not RDP, never answers) or a name that does not resolve, 2 bad usage. Interrupted (Ctrl-C): the verdict so far.');
  const a = await cli.parseAsync();
  const pos = a._.map(String);
  if (pos.length !== 1) throw new UsageError(pos.length ? `one host expected, got ${pos.length}: ${pos.join(' ')}` : 'which host? e.g. test-vpn-latency 10.8.0.5');
  const json = a.json as boolean;
  const num = (k: string, what: string, max: number) => {
    const v = String(a[k]);
    if (!/^\d+(\.\d+)?$/.test(v) || Number(v) > max) throw new UsageError(`invalid ${what} ${JSON.stringify(v)}: expected a number from 0 to ${max}`);
    return Number(v);
  };
  const h = validateHost(pos[0]!);
  const opts: LatencyOptions = {
    host: pos[0]!,
    count: validateInt(a.count as string, '--count', 1, 100_000),
    intervalMs: validateInt(a.interval as string, '--interval (ms)', 0, 3_600_000),
    timeoutMs: validateInt(a.timeout as string, '--timeout (ms)', 50, 60_000),
    methods: a.icmp === false ? ['tcp', 'x224'] : ['tcp', 'x224', 'icmp'],
    thresholds: {
      goodRttMs: num('good-rtt', '--good-rtt', 60_000),
      poorRttMs: num('poor-rtt', '--poor-rtt', 60_000),
      poorLossPct: num('poor-loss', '--poor-loss', 100),
      poorJitterMs: num('poor-jitter', '--poor-jitter', 60_000),
    },
  };
  const progress = (a.progress as boolean | undefined) ?? (!json && !!process.stderr.isTTY);
  const tty = !!process.stderr.isTTY;
  const target = formatHostPort({ host: h.host, port: h.port ?? 3389 });
  if (progress) {
    opts.onRound = (p) => {
      const last = (['tcp', 'x224', 'icmp'] as const).filter((m) => m in p.last).map((m) => `${m} ${p.last[m] === null ? '×' : `${fmt(p.last[m]!)} ms`}`).join(' · ');
      const line = `sampling ${target}: ${p.round}/${p.count}  ${last}  lost ${p.lost}`;
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    };
  }
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  // First Ctrl-C: stop and report. The handler is removed at once, so a second Ctrl-C kills.
  process.once('SIGINT', onSigint);
  opts.signal = ac.signal;
  let r: LatencyReport;
  try {
    r = await measureLatency(opts);
  } finally {
    process.off('SIGINT', onSigint);
    if (progress && tty) process.stderr.write('\r\x1b[K');
  }
  if (json) printJson(r);
  else process.stdout.write(renderReport(r));
  return r.status === 'failed' ? 1 : 0;
}

// ------------------------------------------------------------------ internals

interface Sample {
  ms: number | null;
  /** Set for failures that are not plain timeouts. */
  error?: string;
  /** x224: an RDP_NEG_FAILURE answer (it is an answer: the path works; the server refuses). */
  failure?: string;
}

/** One TCP connection: connect time (tcp), then Connection Request -> Confirm on it (x224). */
async function sampleTcp(address: string, port: number, timeoutMs: number, x224: boolean): Promise<{ tcp: Sample; x224: Sample }> {
  const c = await tcpConnect(address, port, timeoutMs, x224);
  if (c.outcome !== 'accepted') {
    const error = c.outcome === 'timeout' ? undefined : c.outcome;
    return { tcp: { ms: null, ...(error ? { error } : {}) }, x224: { ms: null, error: 'no-connection' } };
  }
  if (!x224 || !c.socket) return { tcp: { ms: c.ms }, x224: { ms: null } };
  try {
    const r = await exchangeConfirm(c.socket, PROTOCOL.SSL | PROTOCOL.HYBRID | PROTOCOL.HYBRID_EX, timeoutMs);
    if (r.outcome === 'confirm') return { tcp: { ms: c.ms }, x224: { ms: r.ms, ...(r.confirm.kind === 'failure' ? { failure: r.confirm.name } : {}) } };
    return { tcp: { ms: c.ms }, x224: { ms: null, ...(r.outcome === 'timeout' ? {} : { error: r.outcome }) } };
  } finally {
    c.socket.destroy();
  }
}

/** Rounds of TCP accepted / X.224 unanswered after which sampling stops. */
const STOP_AFTER_DEAF = 3;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

const fmt = (x: number | null) => (x === null ? '-' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

type Measured = Omit<LatencyReport, keyof Report> & Pick<LatencyReport, 'status' | 'next' | 'notes'>;

/** The measurement with the contract's summary, cause, changes and evidence in front. */
function withContract(r: Measured): LatencyReport {
  const { status, next, notes, ...rest } = r;
  const cause: Cause | null = r.problem?.cause ?? (r.verdict === 'poor' ? 'unstable-network' : null);
  const head = headline(r);
  return { status, summary: `${r.verdict} — ${head}${r.interrupted ? ' (interrupted)' : ''}`, cause, changes: [], evidence: evidenceOf(r), next, notes, ...rest };
}

/** The verdict line after the verdict word: the endpoint, the problem or the numbers, the rounds. */
function headline(r: Measured): string {
  const main = r.methods.find((m) => m.counted && m.received > 0) ?? r.methods[0];
  const numbers = main && main.received
    ? `median ${fmt(main.medianMs)} ms, loss ${main.lossPct}%, jitter ${fmt(main.jitterMs)} ms (${main.method})`
    : 'no answers';
  const what = r.problem && r.verdict !== 'unreachable' ? `${r.problem.summary} (diagnose: ${r.problem.cause})${main && main.received ? `; the path answers: ${numbers}` : ''}` : numbers;
  const rounds = r.verdict === 'name-not-resolved' ? '' : ` over ${r.rounds} round${r.rounds === 1 ? '' : 's'}`;
  return `${r.endpoint}: ${what}${rounds}`;
}

/** What the verdict rests on beyond the numbers: the reasons first, then why sampling stopped, the methods' notes and errors. */
function evidenceOf(r: Measured): string[] {
  const out = [...r.reasons, ...(r.stoppedEarly ? [`stopped early: ${r.stoppedEarly}`] : []), ...r.methods.filter((m) => m.note).map((m) => `${m.method}: ${m.note}`)];
  for (const m of r.methods) {
    const e = Object.entries(m.errors).map(([k, v]) => `${k} ×${v}`).join(', ');
    if (e) out.push(`${m.method}: ${e}`);
  }
  return out;
}

/** The commands to run next (exact commands only) and the prose that goes with them. */
function nextOf(r: Pick<LatencyReport, 'endpoint' | 'verdict' | 'route' | 'problem'>): { next: string[]; notes: string[] } {
  const next: string[] = [];
  const notes: string[] = [];
  const host = r.endpoint.replace(/:\d+$/, '');
  if (r.verdict === 'name-not-resolved') next.push(`nslookup ${host.replace(/^\[|\]$/g, '')}`);
  if (r.problem) {
    next.push(`npx tsx scripts/diagnose.ts ${r.endpoint}`);
    if (r.verdict !== 'unreachable') notes.push(`the network path is not what fails here (${r.problem.cause}): diagnose names the fix`);
  } else if (r.route.vpn || r.verdict === 'poor') {
    next.push(`npx tsx scripts/lower-mtu.ts --probe ${host}`);
    notes.push('a VPN often hides a path-MTU black hole: lower-mtu --probe measures the path MTU (it changes nothing)');
  }
  return { next, notes };
}

function renderReport(r: LatencyReport, routeError?: string): string {
  const colour = r.verdict === 'good' ? chalk.green : r.verdict === 'fair' ? chalk.yellow : r.verdict === 'unknown' ? chalk.gray : chalk.red;
  const lines = [
    `${colour(chalk.bold(r.verdict.toUpperCase()))} — ${headline(r)}${r.interrupted ? chalk.yellow(' (interrupted)') : ''}`,
    `  ${chalk.dim('route:')} ${r.route.interface ?? 'unknown'}${r.route.mtu ? `, MTU ${r.route.mtu}` : ''}${r.route.vpn ? chalk.cyan(' (VPN tunnel)') : ''}${routeError ? chalk.dim(` (${routeError})`) : ''}`,
  ];
  if (r.methods.length) lines.push('', chalk.dim('  method  sent  recv   loss     min  median     p95     max  jitter  (ms)'));
  const pad = (s: string, n: number) => s.padStart(n);
  for (const m of r.methods) {
    lines.push(
      `  ${m.method.padEnd(6)}${pad(String(m.sent), 6)}${pad(String(m.received), 6)}${pad(`${m.lossPct}%`, 7)}` +
        `${pad(fmt(m.minMs), 8)}${pad(fmt(m.medianMs), 8)}${pad(fmt(m.p95Ms), 8)}${pad(fmt(m.maxMs), 8)}${pad(fmt(m.jitterMs), 8)}  ${sparkline(m.samplesMs, 40)}`,
    );
  }
  // The reasons (the evidence's first lines) in yellow.
  const notes = r.evidence.map((x, i) => (i < r.reasons.length ? chalk.yellow(x) : x));
  if (notes.length) lines.push('', ...notes.map((n) => `  ${chalk.dim('•')} ${n}`));
  if (r.next.length) lines.push('', chalk.bold('Next:'), ...r.next.map((n) => `  ${n}`), ...r.notes.map((n) => `  ${chalk.dim('•')} ${chalk.dim(n)}`));
  return lines.join('\n') + '\n';
}

if (isMain(import.meta.url)) await runCli(main);
