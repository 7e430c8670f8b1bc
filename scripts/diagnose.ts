// diagnose.ts: one command that says why Remote Desktop fails with 0x904 (extended 0x7) — "the
// socket was closed" — and which recipe fixes it. This is what `npm start` runs.
//
// When to use it: first, from the machine where the RDP client fails (default endpoint
// 127.0.0.1:3389), or for a whole fleet with --hosts FILE. It changes nothing; nothing to undo.
//
// What it does, at the same time:
//   - the RDP probe (probe-rdp.ts: TCP, X.224 negotiation, TLS and certificate, at most 5
//     connections);
//   - a connect sample: about ten TCP connects 20 ms apart (the probe's own connect is the first).
//     A connect that is not answered within 1.2 s lost its SYN or SYN-ACK (the first retransmit
//     is at 1 s), so a lossy path is caught even when the probe itself got through, and a healthy
//     host is still done in about 0.2 s;
//   - where the probe points at the network (the TLS flight never arrives, connects time out or
//     are lost), the path-MTU check of scripts/lower-mtu.ts (DF pings), when that script exists;
//     otherwise the evidence says the check was skipped.
// Then it prints the verdict, the evidence, and the exact command of the recipe that fixes it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { recipeFor, type Cause } from './lib/causes.ts';
import { parseTarget, TARGET_HELP } from './lib/channels.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { isResolved, resolveHost } from './lib/dns.ts';
import { readHostsFile } from './lib/hosts.ts';
import { UsageError } from './lib/errors.ts';
import { chalk, printJson, withSpinner } from './lib/output.ts';
import { formatVerdict, serverTargets, verdictOf, type ConnectSample, type NetworkEvidence, type PathMtuCheck, type SampleConnect, type Verdict } from './lib/rdp-verdict.ts';
import { LagMonitor, tcpConnect } from './lib/tcp.ts';
import { formatHostPort, validateHost, validateInt } from './lib/validate.ts';
import { DEFAULT_TIMEOUTS, probeRdp, type ProbeOptions, type ProbeResult } from './probe-rdp.ts';

// ---------------------------------------------------------------- types

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 3389,
  /** Connects in the sample, the probe's own included. */
  samples: 10,
  intervalMs: 20,
  /** A sample connect still unanswered after this long lost its SYN (first retransmit at 1 s). */
  cutoffMs: 1200,
  /** Median connect time at or above this is "slow". */
  maxRttMs: 500,
  /** This many lost sample connects make the path "lossy". */
  maxLost: 2,
  /** Longest wait for the path-MTU check. */
  pathMtuDeadlineMs: 10_000,
  /** When the burst lost connects: this many more, this far apart, to tell path loss from a full listen queue. */
  recheck: 5,
  recheckIntervalMs: 100,
  /** Pause before the re-check, so that connections the burst left in the server's accept queue are taken first. */
  recheckPauseMs: 300,
} as const;

export interface DiagnoseOptions extends Omit<ProbeOptions, 'host' | 'port' | 'address' | 'onProgress'> {
  samples?: number;
  intervalMs?: number;
  maxRttMs?: number;
  maxLost?: number;
  /**
   * When to run the DF-ping path-MTU check (scripts/lower-mtu.ts): 'suspected' (default for one
   * host) whenever the probe points at the network; 'unproven' (default for a fleet) only when the
   * small-segment retry did not already prove a black hole (its number is then left to the vpn-mtu
   * recipe, which measures it again before changing anything); 'never'. true/false = suspected/never.
   */
  pathMtu?: PathMtuPolicy | boolean;
}

export type PathMtuPolicy = 'suspected' | 'unproven' | 'never';

export interface DiagnoseReport extends Verdict {
  status: 'ok' | 'failed';
  /** HOST:PORT diagnosed. */
  endpoint: string;
  probe: ProbeResult;
  network: NetworkEvidence;
  /** TCP connections opened: the probe's and the sample's extra connects. */
  connections: { probe: number; sample: number; total: number };
  ms: number;
}

// ---------------------------------------------------------------- connect sample

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

// ---------------------------------------------------------------- path-MTU check

type ProbePathMtu = (opts: { host: string; floor?: number; timeoutMs?: number }) => Promise<{
  target: string; pathMtu: number | null; probes: number; interface: string | null; interfaceMtu: number | null;
  /** Later versions of lower-mtu.ts also say whether the sizes above pathMtu vanished silently. */
  blackhole?: boolean | null; error?: string;
}>;

const LOWER_MTU = new URL('./lower-mtu.ts', import.meta.url);

/** probePathMtu from scripts/lower-mtu.ts, or why it cannot be used. Loaded only when needed. */
async function loadProbePathMtu(): Promise<ProbePathMtu | string> {
  if (!existsSync(fileURLToPath(LOWER_MTU))) return 'scripts/lower-mtu.ts is not installed yet, so the DF-ping path-MTU check was not run';
  try {
    const mod = (await import(LOWER_MTU.href)) as { probePathMtu?: unknown };
    if (typeof mod.probePathMtu !== 'function') return 'scripts/lower-mtu.ts does not export probePathMtu, so the DF-ping path-MTU check was not run';
    return mod.probePathMtu as ProbePathMtu;
  } catch (e) {
    return `scripts/lower-mtu.ts could not be loaded (${(e as Error).message.split('\n')[0]})`;
  }
}

/**
 * Run the path-MTU check, bounded by deadlineMs. `pingTimeoutMs` is the wait per DF ping (a silent
 * size costs that much; on a path with a 1 ms RTT a reply comes in well under 300 ms). Never throws.
 */
export async function pathMtuCheck(address: string, pingTimeoutMs = 1000, deadlineMs: number = DEFAULTS.pathMtuDeadlineMs): Promise<PathMtuCheck> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const fn = await loadProbePathMtu();
  if (typeof fn === 'string') return { status: 'skipped', reason: fn, ms: ms() };
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      fn({ host: address, timeoutMs: pingTimeoutMs }),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no result within ${deadlineMs} ms`)), deadlineMs); }),
    ]);
    return {
      status: 'done', host: r.target, pathMtu: r.pathMtu, interface: r.interface, interfaceMtu: r.interfaceMtu, probes: r.probes,
      ...(r.blackhole !== undefined ? { blackhole: r.blackhole } : {}), ...(r.error ? { reason: r.error } : {}), ms: ms(),
    };
  } catch (e) {
    return { status: 'error', reason: (e as Error).message.split('\n')[0], ms: ms() };
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- diagnose

/** Does the probe's result point at the network (so that the path MTU matters)? */
function pointsAtNetwork(p: ProbeResult, s: ConnectSample, recheck: ConnectSample | null): boolean {
  const tls = p.tls?.outcome;
  if (tls === 'silence' || tls === 'stalled') return true;
  if (p.connect.outcome === 'timeout' && s.answered > 0) return true;
  // Losses that vanish when connects are paced are the server's listen queue, not the path.
  return s.lost > 0 && s.answered > 0 && (recheck === null || recheck.lost > 0);
}

/** Diagnose one host. Never throws for network reasons. */
export async function diagnose(host: string, port: number = DEFAULTS.port, o: DiagnoseOptions = {}): Promise<DiagnoseReport> {
  const t0 = performance.now();
  const samples = o.samples ?? DEFAULTS.samples;
  const intervalMs = o.intervalMs ?? DEFAULTS.intervalMs;
  const thresholds = { maxRttMs: o.maxRttMs ?? DEFAULTS.maxRttMs, maxLost: o.maxLost ?? DEFAULTS.maxLost };
  const endpoint = formatHostPort({ host, port });

  // Resolve once, so the probe and the sample talk to the same address; a name that does not
  // resolve is reported by the probe as it is (nothing is sent anywhere).
  const lookup = await resolveHost(host, o.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectMs);
  const address = isResolved(lookup) ? lookup.address : undefined;

  const policy: PathMtuPolicy = o.pathMtu === false ? 'never' : o.pathMtu === true || o.pathMtu === undefined ? 'suspected' : o.pathMtu;
  let mtu: Promise<PathMtuCheck> | undefined;
  let pingTimeoutMs = 1000;
  let probeConnectAt: number | undefined;
  LagMonitor.start();
  const skipped = (reason: string): Promise<PathMtuCheck> => Promise.resolve({ status: 'skipped', reason, ms: 0 });
  const startMtu = (addr: string) => (mtu ??= policy === 'never' ? skipped('disabled (--path-mtu never)') : pathMtuCheck(addr, pingTimeoutMs));
  // The sample starts once the probe's own connect has an outcome (or has been pending for the
  // sample's cut-off, when it may be a lost SYN): after a refusal or no route it is not taken at all.
  let connectOutcome: (outcome: string | null) => void = () => {};
  const firstConnect = new Promise<string | null>((r) => { connectOutcome = r; });
  const probeP = probeRdp({
    ...o,
    host,
    port,
    ...(address ? { address } : { unresolved: lookup as Exclude<typeof lookup, { address: string }> }),
    onProgress: (e) => {
      // A DF ping that has not come back after 20 connect times (at least 300 ms) is lost.
      if (e.step === 'connected') {
        probeConnectAt = performance.now() - e.ms;
        pingTimeoutMs = Math.min(1000, Math.max(300, Math.round(e.ms * 20)));
      }
      if (e.step === 'connect') connectOutcome(e.outcome);
      // 'suspected': start at once, alongside the small-segment retry; 'unproven' waits for it.
      if (e.step === 'tls-silence' && policy === 'suspected') void startMtu(e.address);
    },
  });
  let sampleSkipped: string | undefined = address ? undefined : 'the name does not resolve: there is no address to connect to';
  const sampleP = (async (): Promise<SampleConnect[]> => {
    if (!address || samples <= 1) return [];
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([firstConnect, new Promise<null>((r) => { timer = setTimeout(() => r(null), DEFAULTS.cutoffMs); })]);
    clearTimeout(timer);
    const why = outcome ? SAMPLE_NOT_NEEDED[outcome] : undefined;
    if (why) {
      sampleSkipped = why;
      return [];
    }
    return connectSample(address, port, samples - 1, intervalMs, DEFAULTS.cutoffMs);
  })();
  let probe: ProbeResult;
  let extra: SampleConnect[];
  let sample: ConnectSample;
  let recheck: ConnectSample | null = null;
  try {
    [probe, extra] = await Promise.all([probeP, sampleP]);
    sample = summariseSample(probe, extra, intervalMs, DEFAULTS.cutoffMs, probeConnectAt);
    // Lost connects in a 20 ms burst are either the path, or a server whose listen queue overflowed
    // (xrdp's backlog is 2; any server that is briefly busy): the kernel then drops the SYN, which
    // on the wire looks exactly like loss. Pacing tells them apart: path loss does not care how far
    // apart connects are, a full accept queue does.
    if (address && sample.lost > 0 && sample.answered > 0 && samples > 1) {
      const paced = await connectSample(address, port, DEFAULTS.recheck, DEFAULTS.recheckIntervalMs, DEFAULTS.cutoffMs, sample.attempts, DEFAULTS.recheckPauseMs);
      recheck = summariseSample(null, paced, DEFAULTS.recheckIntervalMs, DEFAULTS.cutoffMs);
    }
  } finally {
    LagMonitor.stop();
  }
  if (address && pointsAtNetwork(probe, sample, recheck)) {
    if (policy === 'unproven' && probe.mssRetry?.arrived && !mtu) {
      mtu = skipped(`not needed: the small-segment retry proved the black hole (its size: npx tsx scripts/lower-mtu.ts --probe ${host})`);
    } else {
      startMtu(address);
    }
  }
  const network: NetworkEvidence = { sample: address && !sampleSkipped ? sample : null, ...(sampleSkipped ? { sampleSkipped } : {}), recheck, pathMtu: mtu ? await mtu : null, thresholds };
  const v = verdictOf(probe, network);
  const sampleConns = extra.length + (recheck?.attempts ?? 0);
  return {
    status: v.cause === 'healthy' ? 'ok' : 'failed',
    endpoint,
    ...v,
    probe,
    network,
    connections: { probe: probe.connections, sample: sampleConns, total: probe.connections + sampleConns },
    ms: Math.round(performance.now() - t0),
  };
}

export interface FleetTarget {
  host: string;
  port: number;
  /** Line number in the hosts file (1-based), for the output. */
  line?: number;
}

/**
 * Diagnose many hosts, `parallel` at a time. Each report is passed to onReport as soon as it is
 * ready (one slow host holds up no other); the result is in input order.
 */
export async function diagnoseFleet(targets: FleetTarget[], parallel: number, o: DiagnoseOptions = {}, onReport?: (r: DiagnoseReport, t: FleetTarget) => void): Promise<DiagnoseReport[]> {
  const out: DiagnoseReport[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= targets.length) return;
      const t = targets[i]!;
      const r = await diagnose(t.host, t.port, o);
      out[i] = r;
      onReport?.(r, t);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, targets.length)) }, worker));
  return out;
}

/** Parse a hosts file: one HOST[:PORT] per line; blank lines and # comments ignored; further columns (a run-recipe target) ignored. */
// ---------------------------------------------------------------- CLI

function fleetLine(r: DiagnoseReport): string {
  const ok = r.cause === 'healthy';
  return `${ok ? chalk.green('✔') : chalk.red('✘')} ${r.endpoint.padEnd(26)} ${(ok ? chalk.green : chalk.red)(r.cause.padEnd(25))} ${r.confidence.toFixed(2)}  ${chalk.dim(r.summary)}`;
}

export async function main(argv: string[]): Promise<number> {
  const args = await makeCli(argv, 'diagnose')
    .strict(false)
    .strictOptions(true) // one optional positional (the host), every option checked
    .usage('$0 [HOST[:PORT]] [options]\n\nName the cause of Remote Desktop error 0x904/0x7 from the client side and print the command that fixes it.\nRuns the RDP probe, a TCP connect sample and (where the network is suspect) a path-MTU check. Changes nothing.\nDefault endpoint: 127.0.0.1:3389.')
    .option('json', { type: 'boolean', default: false, describe: 'one JSON document (with --hosts: one JSON object per line)' })
    .option('hosts', { type: 'string', describe: 'fleet: file with one HOST[:PORT] per line (# comments; further columns ignored)' })
    .option('parallel', { type: 'number', default: 16, describe: 'fleet: hosts diagnosed at once' })
    .option('tls-versions', { type: 'boolean', default: false, describe: 'also test which TLS versions (1.0-1.3) the server accepts' })
    .option('samples', { type: 'number', default: DEFAULTS.samples, describe: 'TCP connects in the loss/latency sample, the probe\'s included (1 = the probe only)' })
    .option('interval', { type: 'number', default: DEFAULTS.intervalMs, describe: 'ms between sample connects' })
    .option('max-rtt', { type: 'number', default: DEFAULTS.maxRttMs, describe: 'median connect time (ms) from which the path counts as too slow' })
    .option('max-lost', { type: 'number', default: DEFAULTS.maxLost, describe: 'lost sample connects from which the path counts as lossy' })
    .option('connect-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.connectMs, describe: 'TCP connect timeout of the probe, ms' })
    .option('x224-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.x224Ms, describe: 'wait for the X.224 Connection Confirm, ms' })
    .option('tls-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.tlsMs, describe: 'wait for the TLS handshake, ms' })
    .option('mss-retry', { type: 'boolean', default: true, describe: 'when the TLS flight never arrives, retry with a 536-byte segment size (needs perl or python3; --no-mss-retry to skip)' })
    .option('path-mtu', { type: 'string', choices: ['suspected', 'unproven', 'never'], describe: 'when to run the DF-ping path-MTU check (scripts/lower-mtu.ts): whenever the network is suspect (default for one host), only when the small-segment retry did not prove a black hole (default with --hosts), or never' })
    .example('$0', 'diagnose this machine (127.0.0.1:3389)')
    .example('$0 10.0.0.4', 'diagnose a server on the default port')
    .example('$0 vm1.contoso.com:3390 --json', 'machine-readable verdict')
    .option('fix', { type: 'boolean', default: false, describe: 'run the recipe for the cause found, through run-recipe (plan, confirmation, verification)' })
    .option('target', { type: 'string', describe: `with --fix: ${TARGET_HELP} (default: local on Windows for this machine; required otherwise)` })
    .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'with --fix: do not ask for confirmation' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'with --fix: run the recipe in inspect-only mode' })
    .example('$0 --hosts hosts.txt --parallel 64 --json > r.jsonl', 'a fleet, one JSON object per line')
    .example('$0 10.0.0.4 --fix --target azure://SUB/RG/VM', 'diagnose, then run the recipe that fixes it (asks first)')
    .epilog('Exit codes: 0 healthy (with --hosts: every host healthy), 1 a problem was found, 2 bad usage.\nFix: the printed `npx tsx scripts/run-recipe.ts RECIPE --host HOST ...` command.')
    .parseAsync();

  const json = args.json;
  const opts: DiagnoseOptions = {
    connectTimeoutMs: validateInt(args['connect-timeout'], '--connect-timeout', 100, 60_000),
    x224TimeoutMs: validateInt(args['x224-timeout'], '--x224-timeout', 100, 60_000),
    tlsTimeoutMs: validateInt(args['tls-timeout'], '--tls-timeout', 100, 60_000),
    tlsVersions: args['tls-versions'],
    mssRetry: args['mss-retry'],
    ...(args['path-mtu'] !== undefined ? { pathMtu: args['path-mtu'] as PathMtuPolicy } : {}),
    samples: validateInt(args.samples, '--samples', 1, 50),
    intervalMs: validateInt(args.interval, '--interval', 0, 1000),
    maxRttMs: validateInt(args['max-rtt'], '--max-rtt', 1, 60_000),
    maxLost: validateInt(args['max-lost'], '--max-lost', 1, 50),
  };
  const positional = args._.map(String);
  if (args.fix && args.hosts !== undefined) throw new UsageError('--fix works on one host; for a fleet run: npx tsx scripts/run-recipe.ts RECIPE --hosts FILE');
  const fixTarget = args.fix ? fixChannel(args.target, positional[0]) : undefined;

  if (args.hosts !== undefined) {
    if (positional.length) throw new UsageError(`give either HOST or --hosts FILE, not both (got ${positional.map((p) => JSON.stringify(p)).join(' ')})`);
    const targets = readHostsFile(args.hosts).map((h) => ({ host: h.host, port: h.port ?? DEFAULTS.port, line: h.line }));
    const parallel = validateInt(args.parallel, '--parallel', 1, 1024);
    const t0 = performance.now();
    const reports = await diagnoseFleet(targets, parallel, { pathMtu: 'unproven', ...opts }, (r, t) => {
      if (json) printJson({ line: t.line, ...r });
      else process.stdout.write(fleetLine(r) + '\n');
    });
    if (!json) {
      const counts = new Map<Cause, number>();
      for (const r of reports) counts.set(r.cause, (counts.get(r.cause) ?? 0) + 1);
      const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${n} ${c}${recipeFor(c) ? ` (recipe ${recipeFor(c)})` : ''}`);
      process.stdout.write(`\n${reports.length} hosts in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${parts.join(', ')}\n`);
      const group = serverTargets('{host}').targets[0];
      process.stdout.write(chalk.dim(`Fix a group: npx tsx scripts/run-recipe.ts RECIPE --hosts FILE ${group ? `--target "${group}"` : '--emit'}\n`));
    }
    return reports.every((r) => r.status === 'ok') ? 0 : 1;
  }

  if (positional.length > 1) throw new UsageError(`expected at most one HOST[:PORT], got ${positional.length}: ${positional.map((p) => JSON.stringify(p)).join(' ')}`);
  const t = positional.length ? validateHost(positional[0]!) : { host: DEFAULTS.host, port: DEFAULTS.port };
  const port = t.port ?? DEFAULTS.port;
  const report = await withSpinner(`Diagnosing ${formatHostPort({ host: t.host, port })}`, () => diagnose(t.host, port, opts), !json);
  if (json) printJson(report);
  else process.stdout.write(formatVerdict(report) + '\n');
  if (!args.fix || report.status === 'ok') return report.status === 'ok' ? 0 : 1;
  return fix(report, formatHostPort({ host: t.host, port }), { target: fixTarget!, yes: args.yes, dryRun: args['dry-run'], json });
}

/**
 * The channel --fix runs the server steps through. `local` is the default only where it can work
 * (Windows, this machine); elsewhere a missing --target is bad usage that names the ones that can.
 * A bad channel is bad usage before anything is probed.
 */
function fixChannel(spec: string | undefined, hostArg: string | undefined): string {
  if (spec !== undefined) {
    parseTarget(spec);
    return spec;
  }
  const host = hostArg === undefined ? DEFAULTS.host : validateHost(hostArg).host;
  const { targets } = serverTargets(host);
  if (targets[0] === 'local') return 'local';
  const choices = [...targets, 'or run-recipe with --emit to print the script'];
  throw new UsageError(`--fix needs --target: where should the server steps run? ${process.platform === 'win32' ? '' : `(local needs Windows; this is ${process.platform}) `}Choices from this machine: ${choices.join(', ')}`);
}

/**
 * --fix: hand the cause's recipe to the runner, which prints the plan, asks for confirmation
 * (unless --yes), runs, verifies with the same probe and journals the run. With --json the
 * runner's document follows the diagnosis as a second line.
 */
async function fix(report: { cause: Cause; recipe: string | null }, host: string, o: { target: string; yes: boolean; dryRun: boolean; json: boolean }): Promise<number> {
  const recipe = recipeFor(report.cause);
  if (!recipe) {
    if (!o.json) process.stdout.write(`\nNo recipe fixes ${report.cause}; nothing was changed.\n`);
    return 1;
  }
  if (!o.json) process.stdout.write(`\n${chalk.bold(`Fixing with recipe ${recipe}`)}\n`);
  const runner = (await import('./run-recipe.ts')) as { main: (argv: string[]) => Promise<number> };
  return runner.main([recipe, '--host', host, '--target', o.target, ...(o.yes ? ['--yes'] : []), ...(o.dryRun ? ['--dry-run'] : []), ...(o.json ? ['--json'] : [])]);
}

if (isMain(import.meta.url)) await runCli(main);
