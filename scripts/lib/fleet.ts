// Fleet runs (diagnose and run-recipe --hosts FILE --parallel N) with memory and file descriptors that do not grow
// with the number of hosts:
//   - forEachParallel: a pool of `parallel` workers; each result goes to onResult as soon as it is
//     ready and is then dropped (nothing keeps a per-host result: 10,000 reports of a few KB each
//     would otherwise stay in memory until the end);
//   - FleetSummary: what the end-of-run summary needs, in fixed space: a count per cause, the N
//     slowest hosts (endpoint, cause, ms only — not the report), a histogram of per-host times
//     (exact to the ms below 10 s, 100 ms buckets above) for p50/p95, the peak RSS and the largest
//     number of open file descriptors seen;
//   - Progress: the "hosts done / total, rate, ETA" line on stderr, throttled, cleared at the end.
// What does grow with the hosts: the parsed hosts file (HOST, PORT, line number: about 100 bytes a
// host, needed whole to refuse duplicates before anything is probed).
import { readdirSync } from 'node:fs';
import { optionTokens } from './cli.ts';
import type { Report } from './report.ts';

/**
 * Run fn on every item, at most `parallel` at once, in input order of start. onResult gets each result
 * as soon as it is ready; nothing is kept once it returns. fn must not throw (a throw stops the run).
 */
export async function forEachParallel<T, R>(items: readonly T[], parallel: number, fn: (item: T, i: number) => Promise<R>, onResult: (r: R, item: T, i: number) => void): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      const item = items[i]!;
      onResult(await fn(item, i), item, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, worker));
}

/** Open file descriptors of this process (Linux /proc/self/fd, macOS /dev/fd), or null where neither can be read. */
export function openFds(): number | null {
  for (const dir of ['/proc/self/fd', '/dev/fd']) {
    try {
      // The directory handle readdirSync opens is itself listed once: not counted.
      return readdirSync(dir).length - 1;
    } catch { /* next */ }
  }
  return null;
}

/** Peak resident set size of this process so far, in MB (getrusage ru_maxrss). */
export function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

export interface FleetEntry {
  endpoint: string;
  cause: string;
  ms: number;
  /** Line in the hosts file. */
  line?: number;
}

export interface FleetSummaryDoc {
  hosts: number;
  ok: number;
  /** Hosts per cause, most frequent first. */
  causes: { cause: string; hosts: number }[];
  slowest: FleetEntry[];
  perHostMs: { p50: number; p95: number; max: number } | null;
  ms: number;
  peakRssMb: number;
  maxOpenFds: number | null;
}

const EXACT_MS = 10_000;
const COARSE_MS = 100;
const BUCKETS = EXACT_MS + 2000; // 100 ms buckets up to 210 s; longer is counted in the last one

/** The end-of-run summary, in space that does not depend on the number of hosts. */
export class FleetSummary {
  readonly counts = new Map<string, number>();
  done = 0;
  ok = 0;
  maxOpenFds: number | null = null;
  private readonly slow: FleetEntry[] = [];
  private readonly hist = new Uint32Array(BUCKETS);
  private maxMs = 0;
  private readonly t0 = performance.now();

  /** `isOk`: which causes (for a recipe: results) count as fine, not as a problem. */
  constructor(readonly keepSlowest = 5, readonly isOk: (cause: string) => boolean = (c) => c === 'healthy') {}

  /** Count one host. Only endpoint, cause, ms and line are read, and copied if kept. */
  add(e: FleetEntry): void {
    this.done++;
    if (this.isOk(e.cause)) this.ok++;
    this.counts.set(e.cause, (this.counts.get(e.cause) ?? 0) + 1);
    const ms = Math.max(0, Math.round(e.ms));
    this.maxMs = Math.max(this.maxMs, ms);
    this.hist[ms < EXACT_MS ? ms : Math.min(BUCKETS - 1, EXACT_MS + Math.floor((ms - EXACT_MS) / COARSE_MS))]!++;
    if (this.keepSlowest > 0 && (this.slow.length < this.keepSlowest || ms > this.slow.at(-1)!.ms)) {
      this.slow.push({ endpoint: e.endpoint, cause: e.cause, ms, ...(e.line !== undefined ? { line: e.line } : {}) });
      this.slow.sort((a, b) => b.ms - a.ms);
      if (this.slow.length > this.keepSlowest) this.slow.pop();
    }
    this.sample();
  }

  /** Note the open file descriptors now (called on every host and by the progress timer). */
  sample(): void {
    const n = openFds();
    if (n !== null) this.maxOpenFds = Math.max(this.maxOpenFds ?? 0, n);
  }

  /** The per-host time at quantile q (0-1), to the ms below 10 s and to 100 ms above. */
  quantile(q: number): number {
    if (!this.done) return 0;
    const rank = Math.max(1, Math.ceil(q * this.done));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.hist[i]!;
      if (seen >= rank) return i === BUCKETS - 1 ? this.maxMs : Math.min(this.maxMs, i < EXACT_MS ? i : EXACT_MS + (i - EXACT_MS) * COARSE_MS);
    }
    return this.maxMs;
  }

  get slowest(): readonly FleetEntry[] {
    return this.slow;
  }

  toJSON(): FleetSummaryDoc {
    return {
      hosts: this.done,
      ok: this.ok,
      causes: [...this.counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([cause, hosts]) => ({ cause, hosts })),
      slowest: this.slow.map((s) => ({ ...s })),
      perHostMs: this.done ? { p50: this.quantile(0.5), p95: this.quantile(0.95), max: this.maxMs } : null,
      ms: Math.round(performance.now() - this.t0),
      peakRssMb: peakRssMb(),
      maxOpenFds: this.maxOpenFds,
    };
  }
}

/** 95 -> "1m 35s", 7 -> "7s", 4000 -> "1h 06m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "1234/10000 hosts (12%), 41.2/s, ETA 3m 33s, 57 with a problem" (no ETA before the first host). */
export function formatProgress(done: number, total: number, elapsedMs: number, problems = 0): string {
  const pct = total ? Math.floor((done / total) * 100) : 100;
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const eta = done >= total ? 'done' : rate > 0 ? `ETA ${formatDuration((total - done) / rate)}` : 'ETA -';
  return `${done}/${total} hosts (${pct}%), ${rate.toFixed(1)}/s, ${eta}${problems ? `, ${problems} with a problem` : ''}`;
}

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
}

/**
 * The progress line. On a terminal it is rewritten in place (\r, erase to end of line) at most every
 * `intervalMs` and erased by stop(), so that nothing is left of it; elsewhere (asked for with
 * --progress, e.g. to a log) it is one whole line at most every `logIntervalMs`, and a last one at stop().
 */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private shown = false;
  private readonly t0 = performance.now();

  constructor(
    private readonly out: ProgressStream,
    private readonly state: () => { done: number; total: number; problems: number },
    private readonly o: { label?: string; intervalMs?: number; logIntervalMs?: number; onTick?: () => void } = {},
  ) {}

  private get tty(): boolean {
    return Boolean(this.out.isTTY);
  }

  private text(): string {
    const s = this.state();
    return `${this.o.label ? `${this.o.label}: ` : ''}${formatProgress(s.done, s.total, performance.now() - this.t0, s.problems)}`;
  }

  start(): this {
    const every = this.tty ? (this.o.intervalMs ?? 250) : (this.o.logIntervalMs ?? 5000);
    this.timer = setInterval(() => this.tick(), Math.min(every, 250));
    this.timer.unref();
    return this;
  }

  /** Render now if the throttle allows (also called by the timer). */
  tick(force = false): void {
    this.o.onTick?.();
    const now = performance.now();
    const every = this.tty ? (this.o.intervalMs ?? 250) : (this.o.logIntervalMs ?? 5000);
    if (!force && now - this.last < every) return;
    this.last = now;
    if (this.tty) this.out.write(`\r${this.text()}\x1b[K`);
    else this.out.write(`${this.text()}\n`);
    this.shown = true;
  }

  /** Stop; on a terminal the line is erased, elsewhere a final line is written. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) {
      if (this.shown) this.out.write('\r\x1b[K');
    } else {
      this.tick(true);
    }
  }
}

/**
 * The human end-of-run summary: the count per cause (with the recipe that fixes each), the slowest
 * hosts, and what the run cost (wall time, per-host p50/p95, peak RSS, most open file descriptors).
 */
export function formatSummary(s: FleetSummaryDoc, recipeOf: (cause: string) => string | null = () => null, words = { ok: 'healthy', problem: 'with a problem' }): string[] {
  const lines = [`${s.hosts} hosts in ${(s.ms / 1000).toFixed(s.ms < 10_000 ? 2 : 1)} s: ${s.ok} ${words.ok}, ${s.hosts - s.ok} ${words.problem}`];
  const width = Math.max(0, ...s.causes.map((c) => c.cause.length));
  for (const c of s.causes) {
    const recipe = recipeOf(c.cause);
    lines.push(`  ${String(c.hosts).padStart(String(s.hosts).length)}  ${recipe ? `${c.cause.padEnd(width)}  recipe ${recipe}` : c.cause}`);
  }
  if (s.slowest.length) {
    lines.push(`Slowest ${s.slowest.length === 1 ? 'host' : `${s.slowest.length} hosts`}:`);
    for (const h of s.slowest) lines.push(`  ${`${h.ms} ms`.padStart(9)}  ${h.endpoint}${h.line !== undefined ? ` (line ${h.line})` : ''}  ${h.cause}`);
  }
  const cost = [
    s.perHostMs ? `per host p50 ${s.perHostMs.p50} ms, p95 ${s.perHostMs.p95} ms` : '',
    `peak RSS ${s.peakRssMb} MB`,
    s.maxOpenFds !== null ? `at most ${s.maxOpenFds} open files` : '',
  ].filter(Boolean);
  lines.push(cost.join('; '));
  return lines;
}

/** What a fleet run's per-host callback gets: count the host, and print its line over the progress line. */
export interface FleetReporter {
  add(e: FleetEntry): void;
  /** One result line on stdout; on a terminal the progress line is erased first (the next tick redraws it). */
  print(line: string): void;
}

/**
 * The summary, the progress line (`progress`: shown when true; undefined: when stderr is a terminal)
 * and the file-descriptor sampling around one fleet run, stopped also when the run throws.
 * `isOk`: what counts as fine (FleetSummary). Returns the summary document.
 */
export async function reportFleet(
  o: { total: number; slowest: number; label: string; progress: boolean | undefined; isOk?: (cause: string) => boolean },
  run: (r: FleetReporter) => Promise<void>,
): Promise<FleetSummaryDoc> {
  const summary = new FleetSummary(o.slowest, o.isOk);
  const progress = (o.progress ?? Boolean(process.stderr.isTTY))
    ? new Progress(process.stderr, () => ({ done: summary.done, total: o.total, problems: summary.done - summary.ok }), { label: o.label, onTick: () => summary.sample() }).start()
    : undefined;
  const sampler = progress ? undefined : setInterval(() => summary.sample(), 250).unref();
  try {
    await run({
      add: (e) => summary.add(e),
      print: (line) => {
        if (progress && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
        process.stdout.write(`${line}\n`);
      },
    });
  } finally {
    progress?.stop();
    clearInterval(sampler);
  }
  return summary.toJSON();
}

/** The fleet options diagnose and run-recipe share; `per` is what the summary counts (cause, result). */
export function fleetOptions(per: string) {
  return {
    progress: { type: 'boolean', describe: 'fleet: a progress line on stderr (hosts done / total, rate, ETA); default: when stderr is a terminal (--no-progress: never)' },
    summary: { type: 'boolean', default: false, describe: `fleet with --json: end with one summary object line (count per ${per}, slowest hosts, peak RSS); the human output always has it` },
    slowest: { type: 'number', default: 5, describe: 'fleet: how many of the slowest hosts the summary names' },
  } as const;
}

/**
 * A usage error naming the fleet options given to a run that is not a fleet run (`where`: what a
 * fleet run is, e.g. "--hosts FILE"); none when there are none. --no-progress is always fine.
 */
export function fleetOnlyError(args: { summary?: boolean; progress?: boolean }, argv: string[], where: string): string | null {
  const opts = optionTokens(argv);
  const given = [
    args.summary ? '--summary' : '',
    args.progress ? '--progress' : '',
    opts.some((a) => a === '--slowest' || a.startsWith('--slowest=')) ? '--slowest' : '',
  ].filter(Boolean);
  return given.length ? `${given.join(' and ')} ${given.length > 1 ? 'are' : 'is'} for a fleet run (${where})` : null;
}

/** The --summary line of a fleet with --json: the step contract, then `fleet` (docs/json.md). */
export function fleetSummaryReport(doc: FleetSummaryDoc): Omit<Report, 'cause'> & { cause: null; fleet: FleetSummaryDoc } {
  const problems = doc.hosts - doc.ok;
  return {
    status: problems ? 'failed' : 'ok',
    summary: `${doc.hosts} hosts: ${doc.causes.map((c) => `${c.hosts} ${c.cause}`).join(', ')}`,
    cause: null,
    changes: [],
    evidence: doc.slowest.map((h) => `slowest: ${h.endpoint} ${h.ms} ms (${h.cause})`),
    next: [],
    notes: [],
    fleet: doc,
  };
}
