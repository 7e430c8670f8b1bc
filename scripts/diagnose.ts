// diagnose.ts: one command that says why Remote Desktop fails with 0x904 (extended 0x7) — "the
// socket was closed" — and which recipe fixes it. This is what `npm start` runs.
//
// When to use it: first, from the machine where the RDP client fails (default endpoint
// 127.0.0.1:3389), or for a whole fleet with --hosts FILE. It changes nothing; nothing to undo.
//
// What it does, at the same time:
//   - the RDP probe (lib/probe.ts, what probe-rdp.ts runs: TCP, X.224 negotiation, TLS and
//     certificate, at most 5 connections);
//   - a connect sample: about ten TCP connects 20 ms apart (the probe's own connect is the first).
//     A connect that is not answered within 1.2 s lost its SYN or SYN-ACK (the first retransmit
//     is at 1 s), so a lossy path is caught even when the probe itself got through, and a healthy
//     host is still done in about 0.2 s;
//   - where the probe points at the network (the TLS flight never arrives, connects time out or
//     are lost), the path-MTU check (lib/pmtu.ts, what lower-mtu --probe runs: DF pings).
// Then it prints the verdict, the evidence, and the exact command of the recipe that fixes it.
import { recipeFor, type Cause } from './lib/causes.ts';
import { describeTarget, parseTarget, TARGET_HELP } from './lib/channels.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { connectSample, SAMPLE_NOT_NEEDED, summariseSample } from './lib/connect-sample.ts';
import { isResolved, resolveHost } from './lib/dns.ts';
import { fleetOnlyError, fleetOptions, fleetSummaryReport, forEachParallel, formatSummary, reportFleet } from './lib/fleet.ts';
import { readHostsFile } from './lib/hosts.ts';
import { UsageError } from './lib/errors.ts';
import { chalk, printJson, withSpinner } from './lib/output.ts';
import { probePathMtu } from './lib/pmtu.ts';
import { DEFAULT_TIMEOUTS, probeRdp, type ProbeOptions, type ProbeResult } from './lib/probe.ts';
import { formatVerdict, serverTargets, verdictOf, type ConnectSample, type NetworkEvidence, type PathMtuCheck, type SampleConnect, type Verdict } from './lib/rdp-verdict.ts';
import type { Report } from './lib/report.ts';
import { LagMonitor } from './lib/tcp.ts';
import { formatHostPort, validateHost, validateInt } from './lib/validate.ts';

export interface DiagnoseOptions extends Omit<ProbeOptions, 'host' | 'port' | 'address' | 'onProgress'> {
  samples?: number;
  intervalMs?: number;
  maxRttMs?: number;
  maxLost?: number;
  /**
   * When to run the DF-ping path-MTU check (lib/pmtu.ts, as lower-mtu --probe): 'suspected' (default for one
   * host) whenever the probe points at the network; 'unproven' (default for a fleet) only when the
   * small-segment retry did not already prove a black hole (its number is then left to the vpn-mtu
   * recipe, which measures it again before changing anything); 'never'. true/false = suspected/never.
   */
  pathMtu?: PathMtuPolicy | boolean;
}

export type PathMtuPolicy = 'suspected' | 'unproven' | 'never';

/** The step contract (lib/report.ts) with the verdict's fields; `changes` is always [] (read-only). */
export interface DiagnoseReport extends Verdict, Omit<Report, keyof Verdict | 'status'> {
  status: 'ok' | 'failed';
  /** HOST:PORT diagnosed. */
  endpoint: string;
  probe: ProbeResult;
  network: NetworkEvidence;
  /** TCP connections opened: the probe's and the sample's extra connects. */
  connections: { probe: number; sample: number; total: number };
  ms: number;
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
    changes: [],
    probe,
    network,
    connections: { probe: probe.connections, sample: sampleConns, total: probe.connections + sampleConns },
    ms: Math.round(performance.now() - t0),
  };
}

export async function main(argv: string[]): Promise<number> {
  const args = await makeCli(argv, 'diagnose')
    .strict(false)
    .strictOptions(true) // one optional positional (the host), every option checked
    .usage('$0 [HOST[:PORT]] [options]\n\nName the cause of Remote Desktop error 0x904/0x7 from the client side and print the command that fixes it.\nRuns the RDP probe, a TCP connect sample and (where the network is suspect) a path-MTU check. Changes nothing.\nDefault endpoint: 127.0.0.1:3389.')
    .option('json', { type: 'boolean', default: false, describe: 'one JSON document (with --hosts: one JSON object per line)' })
    .option('hosts', { type: 'string', describe: 'fleet: file with one HOST[:PORT] per line (# comments; further columns ignored)' })
    .option('parallel', { type: 'number', default: 16, describe: 'fleet: hosts diagnosed at once' })
    .options(fleetOptions('cause'))
    .option('tls-versions', { type: 'boolean', default: false, describe: 'also test which TLS versions (1.0-1.3) the server accepts' })
    .option('samples', { type: 'number', default: DEFAULTS.samples, describe: 'TCP connects in the loss/latency sample, the probe\'s included (1 = the probe only)' })
    .option('interval', { type: 'number', default: DEFAULTS.intervalMs, describe: 'ms between sample connects' })
    .option('max-rtt', { type: 'number', default: DEFAULTS.maxRttMs, describe: 'median connect time (ms) from which the path counts as too slow' })
    .option('max-lost', { type: 'number', default: DEFAULTS.maxLost, describe: 'lost sample connects from which the path counts as lossy' })
    .option('connect-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.connectMs, describe: 'TCP connect timeout of the probe, ms' })
    .option('x224-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.x224Ms, describe: 'wait for the X.224 Connection Confirm, ms' })
    .option('tls-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.tlsMs, describe: 'wait for the TLS handshake, ms' })
    .option('mss-retry', { type: 'boolean', default: true, describe: 'when the TLS flight never arrives, retry with a 536-byte segment size (needs perl or python3; --no-mss-retry to skip)' })
    .option('path-mtu', { type: 'string', choices: ['suspected', 'unproven', 'never'], describe: 'when to run the DF-ping path-MTU check (the search lower-mtu --probe runs): whenever the network is suspect (default for one host), only when the small-segment retry did not prove a black hole (default with --hosts), or never' })
    .example('$0', 'diagnose this machine (127.0.0.1:3389)')
    .example('$0 10.0.0.4', 'diagnose a server on the default port')
    .example('$0 vm1.contoso.com:3390 --json', 'machine-readable verdict')
    .option('emit', { type: 'boolean', default: false, describe: 'print one PowerShell script that runs this diagnosis on a Windows client without Node (paste it into Windows PowerShell 5.1+, no elevation; it ends with one JSON line); probes nothing here' })
    .option('fix', { type: 'boolean', default: false, describe: 'run the recipe for the cause found, through run-recipe (plan, confirmation, verification)' })
    .option('target', { type: 'string', describe: `with --fix: ${TARGET_HELP} (default: local on Windows for this machine; required otherwise)` })
    .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'with --fix: do not ask for confirmation' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'with --fix: run the recipe inspect-only (else a no-op)' })
    .example('$0 vm1.contoso.com --emit > diagnose.ps1', 'the same diagnosis as PowerShell, for a Windows client without Node')
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
  if (args.emit) {
    // Nothing is probed: the host is validated and goes into the script's $P block.
    const clash = ['hosts', 'fix', 'json', 'tls-versions', 'target'].filter((k) => args[k] !== undefined && args[k] !== false);
    if (clash.length) throw new UsageError(`--emit prints the PowerShell script and runs nothing; it takes one HOST[:PORT], not ${clash.map((k) => `--${k}`).join(', ')}`);
    if (positional.length > 1) throw new UsageError(`expected at most one HOST[:PORT], got ${positional.length}: ${positional.map((p) => JSON.stringify(p)).join(' ')}`);
    const { diagnoseScript } = await import('./lib/diagnose-ps.ts');
    process.stdout.write(diagnoseScript(positional[0] ?? `${DEFAULTS.host}:${DEFAULTS.port}`, {
      timeoutMs: Math.max(opts.connectTimeoutMs!, opts.x224TimeoutMs!), samples: opts.samples!, intervalMs: opts.intervalMs!, maxRttMs: opts.maxRttMs!, maxLost: opts.maxLost!,
    }));
    return 0;
  }
  if (args.fix && args.hosts !== undefined) throw new UsageError('--fix works on one host; for a fleet run: npx tsx scripts/run-recipe.ts RECIPE --hosts FILE');
  const fixTarget = args.fix ? fixChannel(args.target, positional[0]) : undefined;

  if (args.hosts !== undefined) {
    if (positional.length) throw new UsageError(`give either HOST or --hosts FILE, not both (got ${positional.map((p) => JSON.stringify(p)).join(' ')})`);
    const targets = readHostsFile(args.hosts).map((h) => ({ host: h.host, port: h.port ?? DEFAULTS.port, line: h.line }));
    const parallel = validateInt(args.parallel, '--parallel', 1, 1024);
    const slowest = validateInt(args.slowest, '--slowest', 0, 100);
    // Each report is printed as its host finishes and then dropped: only the summary's counts stay.
    const doc = await reportFleet({ total: targets.length, slowest, label: 'diagnose', progress: args.progress }, (fleet) =>
      diagnoseFleet(targets, parallel, { pathMtu: 'unproven', ...opts }, (r, t) => {
        fleet.add({ endpoint: r.endpoint, cause: r.cause, ms: r.ms, ...(t.line !== undefined ? { line: t.line } : {}) });
        if (json) printJson({ line: t.line, ...r });
        else fleet.print(fleetLine(r));
      }),
    );
    if (json) {
      if (args.summary) printJson(fleetSummaryReport(doc));
    } else {
      process.stdout.write(`\n${formatSummary(doc, (c) => recipeFor(c as Cause)).join('\n')}\n`);
      const group = serverTargets('{host}').targets[0];
      process.stdout.write(chalk.dim(`Fix a group: npx tsx scripts/run-recipe.ts RECIPE --hosts FILE ${group ? `--target "${group}"` : '--emit'}\n`));
    }
    return doc.ok === doc.hosts ? 0 : 1;
  }
  const notFleet = fleetOnlyError(args, argv, '--hosts FILE');
  if (notFleet) throw new UsageError(notFleet);

  if (positional.length > 1) throw new UsageError(`expected at most one HOST[:PORT], got ${positional.length}: ${positional.map((p) => JSON.stringify(p)).join(' ')}`);
  const t = positional.length ? validateHost(positional[0]!) : { host: DEFAULTS.host, port: DEFAULTS.port };
  const port = t.port ?? DEFAULTS.port;
  const report = await withSpinner(`Diagnosing ${formatHostPort({ host: t.host, port })}`, () => diagnose(t.host, port, opts), !json);
  if (json) printJson(report);
  else process.stdout.write(formatVerdict(report) + '\n');
  if (!args.fix || report.status === 'ok') return report.status === 'ok' ? 0 : 1;
  return fix(report, formatHostPort({ host: t.host, port }), { target: fixTarget!, yes: args.yes, dryRun: args['dry-run'], json });
}

// ---------------------------------------------------------------- internals

const DEFAULTS = {
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

/** Does the probe's result point at the network (so that the path MTU matters)? */
function pointsAtNetwork(p: ProbeResult, s: ConnectSample, recheck: ConnectSample | null): boolean {
  const tls = p.tls?.outcome;
  if (tls === 'silence' || tls === 'stalled') return true;
  if (p.connect.outcome === 'timeout' && s.answered > 0) return true;
  // Losses that vanish when connects are paced are the server's listen queue, not the path.
  return s.lost > 0 && s.answered > 0 && (recheck === null || recheck.lost > 0);
}

/**
 * Run the path-MTU check, bounded by deadlineMs. `pingTimeoutMs` is the wait per DF ping (a silent
 * size costs that much; on a path with a 1 ms RTT a reply comes in well under 300 ms). Never throws.
 */
async function pathMtuCheck(address: string, pingTimeoutMs = 1000, deadlineMs: number = DEFAULTS.pathMtuDeadlineMs): Promise<PathMtuCheck> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      probePathMtu({ host: address, timeoutMs: pingTimeoutMs }),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no result within ${deadlineMs} ms`)), deadlineMs); }),
    ]);
    return {
      status: 'done', host: r.host, pathMtu: r.pathMtu, interface: r.interface, interfaceMtu: r.interfaceMtu, probes: r.probes,
      ...(r.blackhole !== undefined ? { blackhole: r.blackhole } : {}), ...(r.error ? { reason: r.error } : {}), ms: ms(),
    };
  } catch (e) {
    return { status: 'error', reason: (e as Error).message.split('\n')[0], ms: ms() };
  } finally {
    clearTimeout(timer);
  }
}

interface FleetTarget {
  host: string;
  port: number;
  /** Line number in the hosts file (1-based), for the output. */
  line?: number;
}

/**
 * Diagnose many hosts, `parallel` at a time. Each report is passed to onReport as soon as it is
 * ready (one slow host holds up no other) and is not kept: memory does not grow with the hosts.
 */
async function diagnoseFleet(targets: FleetTarget[], parallel: number, o: DiagnoseOptions, onReport: (r: DiagnoseReport, t: FleetTarget) => void): Promise<void> {
  await forEachParallel(targets, parallel, (t) => diagnose(t.host, t.port, o), (r, t) => onReport(r, t));
}

function fleetLine(r: DiagnoseReport): string {
  const ok = r.cause === 'healthy';
  return `${ok ? chalk.green('✔') : chalk.red('✘')} ${r.endpoint.padEnd(26)} ${(ok ? chalk.green : chalk.red)(r.cause.padEnd(25))} ${r.confidence.toFixed(2)}  ${chalk.dim(r.summary)}`;
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
  const { targets, notes } = serverTargets(host);
  if (targets[0] === 'local') return 'local';
  const where = targets.length
    ? `Choices from this machine: --target ${targets.join(', --target ')}; or run-recipe with --emit to print the script`
    : `${notes.join(' ') || 'No channel to it was found on this machine (pwsh for WinRM, ssh, or az).'} run-recipe with --emit prints the script to paste on the server.`;
  throw new UsageError(`--fix needs --target: where should the server steps run? ${process.platform === 'win32' ? '' : `(local needs Windows; this is ${process.platform}) `}${where}`);
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
  const { loadRecipe } = await import('./lib/recipe.ts');
  const { runWithPlan } = await import('./lib/runner.ts');
  return runWithPlan(loadRecipe(recipe), { host, target: describeTarget(parseTarget(o.target)), yes: o.yes, dryRun: o.dryRun, json: o.json });
}

if (isMain(import.meta.url)) await runCli(main);
