// probe-rdp.ts: speak the start of RDP to a server and say, from the wire, why a connection would be
// closed (Remote Desktop error 0x904, extended 0x7) — or that it is healthy.
//
// When to use it: first, before touching the server (diagnose.ts runs it and adds network checks),
// and after every fix to prove it worked (the recipes' "Probe RDP" steps). It changes nothing, on
// either side; there is nothing to undo.
//
// What it does, in at most 5 TCP connections, each step with its own timeout:
//   1. TCP connect (refused / timed out / accepted, with the connect time).
//   2. X.224 Connection Request with RDP_NEG_REQ asking for SSL|HYBRID|HYBRID_EX, and the decoded
//      Connection Confirm (RDP_NEG_RSP, RDP_NEG_FAILURE codes 1-6 by name, or a legacy answer).
//      A second request only where it changes the diagnosis: plain RDP when SSL is refused or the
//      server closes at once; fewer flags after INCONSISTENT_FLAGS.
//   3. TLS on the same socket when TLS was selected: version, cipher, certificate (subject, issuer,
//      self-signed, validity, key, SHA-1 thumbprint as Windows shows it); a handshake that dies is
//      named: closed/reset right after the ClientHello, an alert, RDP bytes instead of TLS, silence.
//   4. Silence (no TLS flight): the same request over a connection with a small TCP segment size
//      (lib/mss-relay.ts): if the flight then arrives, the path drops large packets.
//   5. Which TLS versions (1.0-1.3) the server accepts: when the first handshake failed, or with
//      --tls-versions.
// A garbage-sending, endless, stalling or 10 MB-certificate server is classified, never waited on
// beyond the step timeouts, and its bytes are cut off where the protocol ends. The probe itself is
// lib/probe.ts (diagnose runs the same); this file is its CLI and the report.
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { printJson } from './lib/output.ts';
import { DEFAULT_TIMEOUTS, probeRdp, type ProbeResult } from './lib/probe.ts';
import { formatVerdict, verdictOf, type Verdict } from './lib/rdp-verdict.ts';
import type { Report } from './lib/report.ts';
import { validateHost, validateInt } from './lib/validate.ts';

/** The step contract (lib/report.ts) with the verdict's fields; `changes` is always [] (read-only). */
export interface ProbeReport extends Verdict, Omit<Report, keyof Verdict | 'status'> {
  status: 'ok' | 'failed';
  /** HOST:PORT probed. */
  endpoint: string;
  probe: ProbeResult;
}

export function probeReport(probe: ProbeResult): ProbeReport {
  const v = verdictOf(probe);
  return { status: v.cause === 'healthy' ? 'ok' : 'failed', endpoint: probe.endpoint, ...v, changes: [], probe };
}

export async function main(argv: string[]): Promise<number> {
  const args = await makeCli(argv, 'probe-rdp')
    .strict(false)
    .strictOptions(true) // one positional (the host), every option checked
    .usage('$0 HOST[:PORT] [options]\n\nSpeak the start of RDP (TCP, X.224 negotiation, TLS) to one server in at most 5 connections and name\nwhy a client would get error 0x904/0x7, with the certificate as Windows shows it. Changes nothing.')
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON document (status, cause, confidence, evidence, recipe, probe)' })
    .option('tls-versions', { type: 'boolean', default: false, describe: 'also test which TLS versions (1.0-1.3) the server accepts' })
    .option('connect-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.connectMs, describe: 'TCP connect timeout, ms' })
    .option('x224-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.x224Ms, describe: 'wait for the X.224 Connection Confirm, ms' })
    .option('tls-timeout', { type: 'number', default: DEFAULT_TIMEOUTS.tlsMs, describe: 'wait for the TLS handshake, ms' })
    .option('mss-retry', { type: 'boolean', default: true, describe: 'when the TLS flight never arrives, retry with a 536-byte segment size (needs perl or python3; --no-mss-retry to skip)' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'a no-op: the probe changes nothing (every script takes it)' })
    .example('$0 10.0.0.4', 'probe the default port 3389')
    .example('$0 vm1.contoso.com:3390 --json', 'machine-readable result')
    .example('$0 10.0.0.4 --tls-versions', 'also list the TLS versions the server accepts')
    .epilog('Exit codes: 0 healthy, 1 a problem was found (the cause and the recipe that fixes it are printed), 2 bad usage.\nMore checks (loss, latency, path MTU): npx tsx scripts/diagnose.ts HOST')
    .parseAsync();
  const positional = args._.map(String);
  if (positional.length !== 1) throw new UsageError(positional.length ? `expected one HOST[:PORT], got ${positional.length}: ${positional.map((p) => JSON.stringify(p)).join(' ')}` : 'which host? expected HOST[:PORT], e.g. 10.0.0.4 or vm1.contoso.com:3390');
  const target = validateHost(positional[0]!);
  const probe = await probeRdp({
    host: target.host,
    port: target.port ?? 3389,
    connectTimeoutMs: validateInt(args['connect-timeout'], '--connect-timeout', 100, 60_000),
    x224TimeoutMs: validateInt(args['x224-timeout'], '--x224-timeout', 100, 60_000),
    tlsTimeoutMs: validateInt(args['tls-timeout'], '--tls-timeout', 100, 60_000),
    tlsVersions: args['tls-versions'],
    mssRetry: args['mss-retry'],
  });
  const report = probeReport(probe);
  if (args.json) printJson(report);
  else process.stdout.write(formatVerdict(report) + '\n');
  return report.status === 'ok' ? 0 : 1;
}

if (isMain(import.meta.url)) await runCli(main);
