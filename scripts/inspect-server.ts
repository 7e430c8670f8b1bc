// inspect-server: the server-side half of a 0x904/0x7 diagnosis, read-only, in one round trip.
//
// What it does: collects on the server (through any --target channel, or pasted with --emit) the
// raw facts that explain a socket closed during connection setup — TermService/UmRdpService state,
// who listens on the RDP port, PortNumber, fDenyTSConnections, the Remote Desktop firewall group,
// the security settings with their Group Policy overrides, the certificate in use with its key
// container and that file's ACL, the MachineKeys folder ACL, SCHANNEL protocol switches and the
// events that name the cause (Schannel 36870/36871/36874/36888, RemoteConnectionManager
// 1050/1055/1057/1058). PowerShell only collects; this file turns the facts into findings, each
// with a cause name diagnose uses (lib/causes.ts) and the exact command that fixes it.
// When to use it: after diagnose points at the server, or as the first step of a server recipe.
// Undo: nothing to undo — it changes nothing. It saves the full evidence (more events, whole
// messages) to C:\ProgramData\rdpfix\evidence\ on the target unless --no-save; the path is in
// the result, which stays well under Azure Run Command's 4 KB.
// The PowerShell is scripts/ps/inspect-server.ps1 (with facts.ps1); what the facts mean is in
// docs/windows-reference.md.
import { CAUSE_NAMES, type Cause } from './lib/causes.ts';
import { isMain, makeCli, runCli } from './lib/cli.ts';
import { chalk } from './lib/output.ts';
import { psStep } from './lib/ps-loader.ts';
import { networkServiceCanRead, isSddl } from './lib/sddl.ts';
import { combinationProblem, effectiveSecurity, keyFindings, LAYER_NAME, sourceText, type EffectiveSecurity, type EventRecord, type Finding, type ServerFacts, type Setting, type Severity } from './lib/server-facts.ts';
import { POLICY_KEY, RDP_FIREWALL_GROUP, RDP_TCP_KEY, SCHANNEL_KEY, SESSIONENV_SID, TS_KEY } from './lib/server-ps.ts';
import { asArray, baseReport, dword, nextCommand, psDate, runStep, serverFlags, serverMain, serviceStatus, startType, withServerOptions, type RawResult, type StepContext, type StepReport } from './lib/server-step.ts';
import { validateInt } from './lib/validate.ts';

// ---------------------------------------------------------------- types

export interface InspectOptions {
  /** How far back to look for events, in hours (default 72). */
  eventHours?: number;
  /** Newest events kept in the compact result (default 6). */
  maxEvents?: number;
  /** Save the full evidence to a file on the target (default true). */
  save?: boolean;
}

export interface InspectReport extends StepReport {
  cause: Cause;
  healthy: boolean;
  findings: Finding[];
  security: EffectiveSecurity | null;
  certificate: { thumbprint: string | null; subject: string | null; notAfter: string | null; selfSigned: boolean | null; source: string | null; keyFile: string | null; networkServiceCanRead: boolean | null } | null;
  evidenceFile: string | null;
  /** What the server's own RDP handshake check said (null when the facts have none). */
  handshake: { cause: string; detail: string } | null;
}

// ---------------------------------------------------------------- the step

/** Inspect the server behind a target. */
export async function inspectServer(opts: InspectOptions, ctx: StepContext): Promise<InspectReport> {
  const raw = await runStep<InspectRaw>(ctx, buildInspectScript(opts));
  return interpretInspect(raw, ctx);
}


// ---------------------------------------------------------------- CLI

export async function main(argv: string[]): Promise<number> {
  const args = await withServerOptions(makeCli(argv, 'inspect-server'))
    .usage('$0 [--target CHANNEL] [options]\n\nRead-only: collect everything on the server that explains RDP error 0x904/0x7, in one round trip, and name\nthe cause with the command that fixes it. Exit 0 when no server-side problem is found, 1 when one is.')
    .option('event-hours', { type: 'string', default: '72', describe: 'how far back to look for events (hours, 1-720)' })
    .option('max-events', { type: 'string', default: '6', describe: 'newest events in the compact result (0-20; the evidence file keeps more)' })
    .option('save', { type: 'boolean', default: true, describe: 'save the full evidence to C:\\ProgramData\\rdpfix\\evidence on the target (--no-save to skip)' })
    .example('$0 --target azure://SUB/RG/VM', 'inspect an Azure VM through Run Command (works while RDP is down)')
    .example('$0 --target winrm://vm1.contoso.com --json', 'one JSON object with status, cause and findings')
    .example('$0 --emit > inspect.ps1', 'the script to paste into the Run command blade or an elevated PowerShell')
    .epilog('Fixes: findings name restart-termserv, clear-machinekeys or toggle-nla with the exact arguments.')
    .parseAsync();
  const flags = serverFlags(args);
  const opts: InspectOptions = {
    eventHours: validateInt(args['event-hours'], '--event-hours', 1, 720),
    maxEvents: validateInt(args['max-events'], '--max-events', 0, 20),
    // Read-only either way; a dry run does not even write the evidence file.
    save: args.save && !flags.dryRun,
  };
  return serverMain(flags, {
    title: 'inspect-server',
    emit: () => buildInspectScript(opts),
    execute: (ctx) => inspectServer(opts, ctx),
    exitCode: (r) => (r.status === 'failed' ? 1 : (r as InspectReport).healthy ? 0 : 1),
    human: (r) =>
      ((r as InspectReport).findings ?? []).map((x) => {
        const mark = x.severity === 'problem' ? chalk.red('problem') : x.severity === 'warning' ? chalk.yellow('warning') : chalk.dim('info');
        return `${mark} [${x.cause}] ${x.detail}${x.fix ? chalk.dim(`  → ${x.fix}`) : x.manual ? chalk.dim(`  → ${x.manual}`) : ''}`;
      }),
  });
}

// ---------------------------------------------------------------- internals

/** The generated script. Read-only except the evidence file (skipped with save: false). */
export function buildInspectScript(opts: InspectOptions = {}): string {
  return psStep({
    name: 'inspect-server',
    elevated: false,
    summary: 'collect the server-side facts behind RDP error 0x904/0x7; changes no setting',
    readOnly: opts.save ?? true
      ? 'It changes no setting; it saves its full evidence under C:\\ProgramData\\rdpfix\\evidence (named in the result).'
      : 'It changes nothing: it only reads.',
    file: 'inspect-server',
    entry: 'Get-RdpServerInspection',
    params: { EventHours: opts.eventHours ?? 72, MaxEvents: opts.maxEvents ?? 6, SaveEvidence: opts.save ?? true },
  });
}

interface InspectRaw extends RawResult {
  facts?: ServerFacts;
  dropped?: string[];
}

/** Interpret the raw result: findings, the cause, the compact summaries. Pure; tested on fixtures. */
export function interpretInspect(raw: InspectRaw, ctx: StepContext): InspectReport {
  const base = baseReport('inspect-server', ctx);
  if (raw.status !== 'ok' || !raw.facts) {
    return {
      ...base,
      status: 'failed',
      summary: `the inspection failed on the target: ${raw.error ?? 'no facts returned'}`,
      ...(raw.error ? { error: raw.error } : {}),
      cause: 'healthy',
      healthy: false,
      findings: [],
      security: null,
      certificate: null,
      evidenceFile: null,
      handshake: null,
    };
  }
  const facts = raw.facts;
  const findings = analyzeFacts(facts, ctx);
  const cause = causeOf(findings);
  const problems = findings.filter((x) => x.severity === 'problem');
  const cert = facts.certificate;
  const keySddl = cert?.key?.sddl;
  const report: InspectReport = {
    ...base,
    // The inspection itself succeeded: 'ok' even when it found problems (they are in `cause` and
    // `findings`, and in the exit code), so a recipe continues to the step that fixes them.
    status: 'ok',
    summary: problems.length
      ? `${problems.length} problem(s) on ${facts.computer ?? 'the server'}; first: ${problems[0]!.detail}`
      : `no server-side cause found on ${facts.computer ?? 'the server'}`,
    before: null,
    after: null,
    cause,
    healthy: problems.length === 0,
    findings,
    security: effectiveSecurity(facts.rdpTcp, facts.policy, facts.terminalServer),
    certificate: cert
      ? {
          thumbprint: cert.thumbprint ?? null,
          subject: cert.inUse?.Subject ?? null,
          notAfter: psDate(cert.inUse?.NotAfter)?.toISOString() ?? null,
          selfSigned: cert.selfSigned ?? null,
          source: cert.source ?? null,
          keyFile: cert.key?.file ?? null,
          networkServiceCanRead: keySddl && isSddl(keySddl) ? networkServiceCanRead(keySddl) : null,
        }
      : null,
    evidenceFile: facts.evidenceFile ?? null,
    handshake: facts.handshake?.cause ? { cause: facts.handshake.cause, detail: facts.handshake.detail ?? '' } : null,
    facts,
  };
  const sec = report.security!;
  const fmt = (n: string, s: Setting) => `${n} = ${s.value ?? 'not set'}${s.source === 'policy' ? ' (Group Policy)' : ''}`;
  report.evidence.push(
    `TermService ${serviceStatus(asArray<{ Name?: string; Status?: unknown }>(facts.services).find((s) => s?.Name === 'TermService')?.Status) ?? 'missing'}, ${asArray(facts.listeners).length ? 'listening' : 'not listening'} on port ${facts.port ?? 3389}; build ${facts.build ?? '?'}`,
    `${fmt('UserAuthentication', sec.UserAuthentication)}, ${fmt('SecurityLayer', sec.SecurityLayer)}, ${fmt('MinEncryptionLevel', sec.MinEncryptionLevel)}`,
    report.certificate?.thumbprint
      ? `certificate ${report.certificate.thumbprint} (${report.certificate.source}), expires ${report.certificate.notAfter?.slice(0, 10) ?? '?'}, key ${report.certificate.keyFile ?? 'file not found'}${report.certificate.networkServiceCanRead === false ? ' — NOT readable by NETWORK SERVICE' : ''}`
      : 'no certificate in use',
  );
  if (report.handshake) report.evidence.push(`in-server handshake check: ${report.handshake.cause}${report.handshake.detail ? ` (${report.handshake.detail})` : ''}`);
  if (raw.dropped?.length) report.warnings.push(`left out of the compact result to fit 4 KB: ${raw.dropped.join(', ')}; see ${facts.evidenceFile ?? 'the evidence file'}`);
  for (const e of asArray<{ errors?: unknown }>(facts.events).flatMap((x) => asArray<string>(x?.errors))) report.warnings.push(`events: ${e}`);
  report.next = [...new Set(problems.map((p) => p.fix).filter((x): x is string => !!x))];
  return report;
}

const CAUSE_ORDER: Cause[] = ['no-listener', 'listener-hung', 'not-rdp', 'certificate-key-unusable', 'certificate-expired', 'tls-version-mismatch', 'security-layer-mismatch', 'nla-required', 'unreachable'];
const SEVERITY_ORDER: Severity[] = ['problem', 'warning', 'info'];

/** Turn the raw facts into findings, most important first. */
export function analyzeFacts(facts: ServerFacts, ctx: Pick<StepContext, 'target'>): Finding[] {
  const c = ctx as StepContext;
  const cmd = (script: string, args: string[] = []) => nextCommand(script, args, c);
  const f: Finding[] = [];
  const add = (cause: Cause, severity: Severity, detail: string, fix: string | null, manual?: string) =>
    f.push({ cause, severity, detail, fix, ...(manual ? { manual } : {}) });
  const now = psDate(facts.now) ?? new Date();
  const port = facts.port ?? 3389;

  // Service and listener.
  const services = asArray<{ Name?: string; Status?: unknown; StartType?: unknown }>(facts.services);
  const svc = (name: string) => services.find((s) => s?.Name?.toLowerCase() === name.toLowerCase());
  const term = svc('TermService');
  if (!term) add('no-listener', 'problem', 'the TermService service was not found', null, 'Remote Desktop Services is not installed or the service query failed');
  else if (startType(term.StartType) === 'Disabled') {
    add('no-listener', 'problem', 'TermService is disabled', cmd('restart-termserv'), "Set-Service -Name 'TermService' -StartupType Manual, then restart it");
  } else if (serviceStatus(term.Status) !== 'Running') {
    add('no-listener', 'problem', `TermService is ${serviceStatus(term.Status) ?? 'not running'}`, cmd('restart-termserv'));
  }
  const um = svc('UmRdpService');
  if (um && serviceStatus(um.Status) !== 'Running' && term && serviceStatus(term.Status) === 'Running') {
    add('no-listener', 'info', `UmRdpService is ${serviceStatus(um.Status)} (device redirection only; not a cause of 0x904)`, null);
  }

  const sec = effectiveSecurity(facts.rdpTcp, facts.policy, facts.terminalServer);
  if (sec.fDenyTSConnections.value === 1) {
    const where = sec.fDenyTSConnections.source === 'policy' ? `${POLICY_KEY}\\fDenyTSConnections` : `${TS_KEY}\\fDenyTSConnections`;
    add('no-listener', 'problem', `remote connections are denied: fDenyTSConnections = 1 (${sourceText(sec.fDenyTSConnections)})`, null, `set ${where} to 0 (both copies when the policy key holds one)`);
  }
  if (dword(facts.rdpTcp, 'fEnableWinStation') === 0) add('no-listener', 'problem', 'the RDP-Tcp listener is disabled (fEnableWinStation = 0)', null, `set ${RDP_TCP_KEY}\\fEnableWinStation to 1`);
  if (dword(facts.terminalServer, 'TSEnabled') === 0) add('no-listener', 'problem', 'TSEnabled = 0', null, `set ${TS_KEY}\\TSEnabled to 1`);
  if (dword(facts.rdpTcp, 'fLogonDisabled') === 1) add('closed-by-server', 'warning', 'logons are disabled on RDP-Tcp (fLogonDisabled = 1)', null, `set ${RDP_TCP_KEY}\\fLogonDisabled to 0`);
  const drain = dword(facts.terminalServer, 'TSServerDrainMode');
  if (drain) add('closed-by-server', 'warning', `the server is in drain mode (TSServerDrainMode = ${drain}): new logons are refused`, null, 'change logon mode: chglogon /enable');

  const listeners = asArray<{ LocalAddress?: string; OwningProcess?: number | null }>(facts.listeners);
  const running = term && serviceStatus(term.Status) === 'Running';
  if (running && listeners.length === 0) add('no-listener', 'problem', `TermService runs but nothing listens on port ${port}`, cmd('restart-termserv'));
  const pid = facts.termServicePid;
  const foreign = listeners.filter((l) => typeof l?.OwningProcess === 'number' && typeof pid === 'number' && pid > 0 && l.OwningProcess !== pid);
  if (foreign.length) add('not-rdp', 'problem', `port ${port} is held by process ${foreign[0]!.OwningProcess}, not TermService (pid ${pid})`, null, 'stop the other program or move RDP to another port');

  // Firewall: the built-in Remote Desktop group.
  const rules = asArray<{ Name?: string; Enabled?: unknown; Direction?: unknown; Action?: unknown }>(facts.firewall);
  const on = (v: unknown) => v === 1 || v === true || v === 'True';
  const inbound = (v: unknown) => v === undefined || v === 1 || v === 'Inbound';
  const allow = (v: unknown) => v === undefined || v === 2 || v === 'Allow';
  if (rules.length && !rules.some((r) => on(r.Enabled) && inbound(r.Direction) && allow(r.Action))) {
    add('unreachable', 'warning', `no inbound rule of the Remote Desktop firewall group is enabled (${rules.length} rules found)`, null, `Enable-NetFirewallRule -Group '${RDP_FIREWALL_GROUP}' (unless another rule opens port ${port})`);
  }
  if (port !== 3389) add('unreachable', 'info', `RDP listens on port ${port}; the built-in firewall rules open 3389 only`, null, `allow TCP ${port} inbound in the Windows firewall and the NSG`);

  // Security settings (policy wins).
  const ua = sec.UserAuthentication;
  const sl = sec.SecurityLayer;
  const mel = sec.MinEncryptionLevel;
  const combo = combinationProblem(sl.value, mel.value);
  if (combo) add('security-layer-mismatch', 'problem', `${combo} (${sourceText(sl)})`, cmd('toggle-nla', ['--security-layer', 'negotiate']));
  if (sl.value === 0) {
    add('security-layer-mismatch', 'warning', `SecurityLayer is ${LAYER_NAME[0]} (${sourceText(sl)}): clients that require TLS or NLA are refused`, cmd('toggle-nla', ['--security-layer', 'negotiate', ...(sl.source === 'policy' ? ['--policy'] : [])]));
    if (ua.value === 1) add('security-layer-mismatch', 'warning', 'NLA is required but SecurityLayer is RDP security: CredSSP needs TLS; Windows may auto-correct this (event 1050) or refuse clients', cmd('toggle-nla', ['--security-layer', 'negotiate']));
  }
  if (ua.value === 1) {
    add('nla-required', 'info', `NLA is required (${sourceText(ua)}): clients that cannot do CredSSP are refused (failure code 5)`, cmd('toggle-nla', ['disable', '--for', '2h', ...(ua.source === 'policy' ? ['--policy'] : [])]));
  }
  const policyOverrides = (['UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel'] as const).filter((n) => {
    const p = dword(facts.policy, n);
    const l = dword(facts.rdpTcp, n);
    return p !== undefined && l !== undefined && p !== l;
  });
  for (const n of policyOverrides) {
    add(n === 'UserAuthentication' ? 'nla-required' : 'security-layer-mismatch', 'info', `Group Policy sets ${n} = ${dword(facts.policy, n)}, overriding the local ${dword(facts.rdpTcp, n)}`, null);
  }

  // SCHANNEL protocol switches and TLS events.
  const tls = facts.schannel ?? {};
  const disabled = (v: string) => dword(tls[v], 'Enabled') === 0;
  if (disabled('TLS 1.2') && (disabled('TLS 1.0') || dword(tls['TLS 1.0'], 'Enabled') === undefined) && !(dword(tls['TLS 1.3'], 'Enabled') === 1)) {
    add('tls-version-mismatch', 'problem', 'TLS 1.2 is disabled for servers (SCHANNEL\\Protocols\\TLS 1.2\\Server\\Enabled = 0): modern clients have no TLS version in common', null, `set ${SCHANNEL_KEY}\\TLS 1.2\\Server\\Enabled to 1 and DisabledByDefault to 0, then restart the server`);
  } else if (dword(tls['TLS 1.2'], 'DisabledByDefault') === 1) {
    add('tls-version-mismatch', 'warning', 'TLS 1.2 is DisabledByDefault for servers; TermService may not offer it', null, `set ${SCHANNEL_KEY}\\TLS 1.2\\Server\\DisabledByDefault to 0`);
  }
  const counts = facts.events?.counts ?? {};
  if (counts['36874']) add('tls-version-mismatch', 'problem', `Schannel 36874 ×${counts['36874']}: a client offered no cipher suite the server supports`, null, 'enable TLS 1.2 cipher suites the clients use (or update the clients)');
  const newest = asArray<EventRecord>(facts.events?.newest);
  const protoAlert = newest.find((e) => e?.Id === 36888 && /\b70\b/.test(e.Message ?? ''));
  if (protoAlert) add('tls-version-mismatch', 'warning', 'Schannel 36888 with alert 70 (protocol_version): a client asked for a TLS version the server refuses', null);
  if (counts['1050']) add('security-layer-mismatch', 'warning', `RemoteConnectionManager 1050 ×${counts['1050']}: inconsistent security layer and encryption settings were auto-corrected`, cmd('toggle-nla', ['--security-layer', 'negotiate']));

  // Certificate and key.
  const cert = facts.certificate ?? {};
  const inUse = cert.inUse ?? null;
  if (cert.source === 'pinned-missing') {
    add('certificate-key-unusable', 'problem', `SSLCertificateSHA1Hash pins ${cert.pinned}, which is in neither the My nor the Remote Desktop store`, cmd('restart-termserv', ['--regenerate-cert']));
  } else if (cert.source === 'none' || !inUse) {
    add('certificate-key-unusable', 'problem', 'there is no certificate in the Remote Desktop store (TLS clients get failure code 3)', cmd('restart-termserv', ['--regenerate-cert']));
  }
  if (inUse) {
    const notAfter = psDate(inUse.NotAfter);
    const notBefore = psDate(inUse.NotBefore);
    const renew = cert.selfSigned
      ? cmd('restart-termserv', ['--regenerate-cert', '--thumbprint', inUse.Thumbprint])
      : null;
    const caManual = cert.selfSigned ? undefined : 'renew the pinned certificate with its CA and set it again (SSLCertificateSHA1Hash)';
    if (notAfter && notAfter < now) add('certificate-expired', 'problem', `the certificate ${inUse.Thumbprint} expired on ${notAfter.toISOString().slice(0, 10)}`, renew, caManual);
    else if (notBefore && notBefore > now) add('certificate-expired', 'problem', `the certificate ${inUse.Thumbprint} is not valid until ${notBefore.toISOString().slice(0, 10)} (check the server clock)`, renew, caManual);
    else if (notAfter && notAfter.getTime() - now.getTime() < 14 * 86400_000) {
      add('certificate-expired', 'warning', `the certificate ${inUse.Thumbprint} expires on ${notAfter.toISOString().slice(0, 10)}`, null);
    }
    if (inUse.HasPrivateKey === false) {
      add('certificate-key-unusable', 'problem', `the certificate ${inUse.Thumbprint} has no private key`, cert.selfSigned ? cmd('restart-termserv', ['--regenerate-cert', '--thumbprint', inUse.Thumbprint]) : null, caManual);
    }
  }
  f.push(
    ...keyFindings(
      {
        ...(facts.build !== undefined ? { build: facts.build } : {}),
        ...(facts.runAs !== undefined ? { runAs: facts.runAs } : {}),
        folderSddl: facts.machineKeys?.sddl ?? null,
        containers: facts.machineKeys?.containers,
        key: cert.key ?? null,
        hasPrivateKey: inUse?.HasPrivateKey ?? null,
        eventCounts: counts,
      },
      (args) => cmd('clear-machinekeys', args),
    ),
  );
  // The in-server handshake check sees what the facts cannot: a listener that accepts and never
  // answers is a problem; any other cause it names that no fact explains is a warning (it is one
  // connection from inside, the facts are the evidence of why).
  const hs = facts.handshake;
  if (hs?.cause === 'listener-hung') {
    add('listener-hung', 'problem', `the in-server handshake check: ${hs.detail ?? 'the listener accepts TCP and never answers'}`, cmd('restart-termserv'));
  } else if (hs?.cause && hs.cause !== 'healthy' && (CAUSE_NAMES as string[]).includes(hs.cause) && !f.some((x) => x.cause === hs.cause && x.severity === 'problem')) {
    add(hs.cause as Cause, 'warning', `the in-server handshake check says ${hs.cause}: ${hs.detail ?? ''}`, null);
  }
  if (facts.sessionEnvSid && facts.sessionEnvSid !== SESSIONENV_SID) {
    add('certificate-key-unusable', 'warning', `NT SERVICE\\SessionEnv resolves to ${facts.sessionEnvSid}, not the derived ${SESSIONENV_SID}`, null);
  }

  return f.sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity) || CAUSE_ORDER.indexOf(a.cause) - CAUSE_ORDER.indexOf(b.cause));
}

/** The one cause to report: the first problem's, or healthy. */
export function causeOf(findings: Finding[]): Cause {
  return findings.find((x) => x.severity === 'problem')?.cause ?? 'healthy';
}

// Last, so every constant above is initialised before main runs.
if (isMain(import.meta.url)) await runCli(main);
