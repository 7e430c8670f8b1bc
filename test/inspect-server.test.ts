import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { analyzeFacts, buildInspectScript, causeOf, interpretInspect } from '../scripts/inspect-server.ts';
import { combinationProblem, effectiveSecurity, type ServerFacts } from '../scripts/lib/server-facts.ts';
import { parseTarget } from '../scripts/lib/channels.ts';
import { psQuote, RESULT_BEGIN, RESULT_END } from '../scripts/lib/ps.ts';
import { POLICY_KEY, RDP_CONTAINER_PREFIX, RDP_FIREWALL_GROUP, RDP_TCP_KEY, SCHANNEL_KEY, TS_KEY } from '../scripts/lib/server-ps.ts';
import { fakeBin } from './helpers/fakebin.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const raw = (n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures/inspect-server', n), 'utf8')) as { step: string; status: string; facts: ServerFacts; dropped?: string[] };
const facts = (n: string) => raw(n).facts;
const ctx = { target: parseTarget('azure://sub-1/rg-web/web-01'), dryRun: false };
const problems = (f: ServerFacts) => analyzeFacts(f, ctx).filter((x) => x.severity === 'problem');

const find = suite('analyzeFacts: findings from recorded Windows facts');

find('a healthy Server 2019 has no problem; NLA being required is reported as information with its fix', () => {
  const f = analyzeFacts(facts('healthy-2019.json'), ctx);
  assert.equal(f.filter((x) => x.severity !== 'info'), []);
  assert.is(causeOf(f), 'healthy');
  const nla = f.find((x) => x.cause === 'nla-required')!;
  assert.is(nla.fix, 'npx tsx scripts/toggle-nla.ts disable --for 2h --target azure://sub-1/rg-web/web-01');
});

find('an unreadable key (NETWORK SERVICE missing), Schannel 36870 and 1058 point to clear-machinekeys', () => {
  const p = problems(facts('key-unreadable-2019.json'));
  assert.is(causeOf(analyzeFacts(facts('key-unreadable-2019.json'), ctx)), 'certificate-key-unusable');
  assert.ok(p.every((x) => x.cause === 'certificate-key-unusable'));
  assert.ok(p.some((x) => /NETWORK SERVICE \(TermService\) cannot read the key container .*f686aace/.test(x.detail)));
  assert.ok(p.some((x) => /36870 ×14/.test(x.detail)));
  assert.ok(p.some((x) => /1058 ×2/.test(x.detail)));
  assert.ok(p.every((x) => x.fix === 'npx tsx scripts/clear-machinekeys.ts --target azure://sub-1/rg-web/web-01'));
  const folder = analyzeFacts(facts('key-unreadable-2019.json'), ctx).find((x) => /MachineKeys folder ACL differs/.test(x.detail));
  assert.is(folder?.severity, 'warning', 'a hardened folder alone is a warning (RSL measured RDP still working)');
});

find('an expired self-signed certificate on 2016: regenerate exactly that certificate; its 2016 key ACL is fine', () => {
  const all = analyzeFacts(facts('expired-2016.json'), ctx);
  assert.is(causeOf(all), 'certificate-expired');
  const p = all.filter((x) => x.severity === 'problem');
  assert.is(p.length, 1);
  assert.match(p[0]!.detail, /9B1D3F5A7C9E0B2D4F6A8C0E1A3C5E7092B4D6F8 expired on 2024-12-01/);
  assert.is(p[0]!.fix, 'npx tsx scripts/restart-termserv.ts --regenerate-cert --thumbprint 9B1D3F5A7C9E0B2D4F6A8C0E1A3C5E7092B4D6F8 --target azure://sub-1/rg-web/web-01');
  assert.not.ok(all.some((x) => /differs from what build/.test(x.detail)), 'Administrators Read is what 14393 ships with');
});

find('a stopped service, denied by Group Policy, with the firewall group off: no-listener first', () => {
  const all = analyzeFacts(facts('service-stopped.json'), ctx);
  assert.is(causeOf(all), 'no-listener');
  const p = all.filter((x) => x.severity === 'problem').map((x) => x.detail);
  assert.ok(p.includes('TermService is Stopped'));
  assert.ok(p.some((d) => /fDenyTSConnections = 1 \(set by Group Policy\)/.test(d)));
  const fw = all.find((x) => x.cause === 'unreachable')!;
  assert.is(fw.severity, 'warning');
  assert.match(fw.manual!, /@FirewallAPI\.dll,-28752/);
});

find('policy overrides, an invalid SecurityLayer/MinEncryptionLevel pair and TLS 1.2 switched off', () => {
  const f = facts('policy-tls-invalid.json');
  const all = analyzeFacts(f, ctx);
  assert.is(causeOf(all), 'tls-version-mismatch');
  const p = all.filter((x) => x.severity === 'problem');
  assert.ok(p.some((x) => x.cause === 'security-layer-mismatch' && /SecurityLayer 2 \(TLS\) is not valid with MinEncryptionLevel 1/.test(x.detail)));
  assert.ok(p.some((x) => x.cause === 'tls-version-mismatch' && /36874/.test(x.detail)));
  const sec = effectiveSecurity(f.rdpTcp, f.policy);
  assert.equal(sec.UserAuthentication, { value: 1, source: 'policy' }, 'the policy value wins over the local 0');
  const nla = all.find((x) => x.cause === 'nla-required' && x.severity === 'info' && /NLA is required/.test(x.detail))!;
  assert.match(nla.fix!, /--policy/, 'the fix changes the policy value, since that is the one in force');
  assert.ok(all.some((x) => /Group Policy sets UserAuthentication = 1, overriding the local 0/.test(x.detail)));
});

find('an orphaned SSLCertificateSHA1Hash pin (REG_BINARY bytes) is named and fixed by regenerating', () => {
  const f = facts('pinned-missing.json');
  const p = problems(f);
  assert.is(p[0]!.cause, 'certificate-key-unusable');
  assert.match(p[0]!.detail, /pins 5C1E9A770B44D2138E6FA03BC95127E80496BD62/);
  assert.is(p[0]!.fix, 'npx tsx scripts/restart-termserv.ts --regenerate-cert --target azure://sub-1/rg-web/web-01');
});

find('a key that an administrator cannot open is not evidence (Administrators are not in the 2019 key ACL); as SYSTEM it is', () => {
  const asAdmin = structuredClone(facts('healthy-2019.json'));
  asAdmin.runAs = 'S-1-5-21-1004336348-1177238915-682003330-500';
  asAdmin.certificate!.key = { ...asAdmin.certificate!.key!, opened: false, error: 'Keyset does not exist' };
  assert.equal(problems(asAdmin), []);
  const asSystem = structuredClone(asAdmin);
  asSystem.runAs = 'S-1-5-18';
  assert.match(problems(asSystem)[0]!.detail, /cannot be opened even as SYSTEM: Keyset does not exist/);
});

find('another program on the RDP port is not-rdp', () => {
  const f = structuredClone(facts('healthy-2019.json'));
  f.listeners = [{ LocalAddress: '0.0.0.0', LocalPort: 3389, OwningProcess: 4242 }];
  assert.is(causeOf(analyzeFacts(f, ctx)), 'not-rdp');
});

// ---

const rules = suite('security value rules');

rules('combinationProblem enforces the ranges and SecurityLayer 2 with MinEncryptionLevel 1', () => {
  assert.is(combinationProblem(2, 3), null);
  assert.is(combinationProblem(1, 1), null);
  assert.is(combinationProblem(null, null), null);
  assert.match(combinationProblem(2, 1)!, /not valid/);
  assert.match(combinationProblem(3, 2)!, /out of range/);
  assert.match(combinationProblem(1, 5)!, /out of range/);
});

rules('effectiveSecurity: policy wins, "not set" differs from 0', () => {
  const e = effectiveSecurity({ UserAuthentication: 0, SecurityLayer: 2 }, { SecurityLayer: 1 }, { fDenyTSConnections: 0 });
  assert.equal(e.UserAuthentication, { value: 0, source: 'local' });
  assert.equal(e.SecurityLayer, { value: 1, source: 'policy' });
  assert.equal(e.MinEncryptionLevel, { value: null, source: 'unset' });
  assert.equal(e.fDenyTSConnections, { value: 0, source: 'local' });
});

// ---

const report = suite('interpretInspect');

report('the inspection is "ok" even when it finds problems (they are in cause and findings), so a recipe goes on to fix them', () => {
  const r = interpretInspect(raw('key-unreadable-2019.json') as never, ctx);
  assert.is(r.status, 'ok');
  assert.is(r.cause, 'certificate-key-unusable');
  assert.not.ok(r.healthy);
  assert.equal(r.next, ['npx tsx scripts/clear-machinekeys.ts --target azure://sub-1/rg-web/web-01']);
  assert.is(r.certificate!.networkServiceCanRead, false);
  assert.is(r.evidenceFile, 'C:\\ProgramData\\rdpfix\\evidence\\inspect-server-20250601-120000.json');
  assert.ok(JSON.stringify(r).length < 64_000);
});

report('a result the target trimmed to fit 4 KB says what it left out and where the rest is', () => {
  const r = interpretInspect(raw('key-unreadable-compressed.json') as never, ctx);
  assert.is(r.cause, 'certificate-key-unusable');
  assert.ok(r.warnings.some((w) => /facts\.events\.newest.*inspect-server-20250601-120000\.json/.test(w)));
});

report('a failed script is status failed with its error', () => {
  const r = interpretInspect({ step: 'inspect-server', status: 'failed', error: 'Access is denied' }, ctx);
  assert.is(r.status, 'failed');
  assert.match(r.summary, /Access is denied/);
});

report('every recorded result the script returns fits in Azure Run Command\'s 4,096 bytes with its markers', () => {
  for (const n of ['healthy-2019.json', 'key-unreadable-2019.json', 'expired-2016.json', 'service-stopped.json', 'policy-tls-invalid.json', 'pinned-missing.json']) {
    const framed = `${RESULT_BEGIN}\r\n${JSON.stringify(raw(n)).replace(/\//g, '\\/')}\r\n${RESULT_END}`;
    assert.ok(framed.length < 4096, `${n}: ${framed.length} bytes`);
  }
});

report('the script collects in one round trip and only writes the evidence file (skipped with --no-save)', () => {
  const s = buildInspectScript();
  assert.match(s, /SaveEvidence = \$true/);
  assert.match(buildInspectScript({ save: false }), /SaveEvidence = \$false/);
  assert.match(s, /Compress-RdpResult -Result .* -Drop @\('facts\.events\.newest'/);
});

report('the keys, the firewall group and the container prefix the script reads are the ones the findings name', () => {
  const ps = readFileSync(join(root, 'scripts/ps/inspect-server.ps1'), 'utf8');
  for (const v of [TS_KEY, RDP_TCP_KEY, POLICY_KEY, SCHANNEL_KEY, RDP_FIREWALL_GROUP]) assert.ok(ps.includes(`-Path ${psQuote(v)}`) || ps.includes(`-Group ${psQuote(v)}`), v);
  assert.ok(ps.includes(psQuote(`${RDP_CONTAINER_PREFIX}*`)), RDP_CONTAINER_PREFIX);
  assert.not.ok(/\$P\b/.test(ps), 'functions take parameters; only the generated call reads $P');
});

report('the in-server handshake check is reported: evidence, and a hung listener is a problem with the restart as its fix', () => {
  const hung = interpretInspect({ status: 'ok', facts: { computer: 'VM1', handshake: { cause: 'listener-hung', detail: '10.0.0.4:3389: accepted TCP and never answered the X.224 request' } } } as never, ctx);
  assert.equal(hung.handshake?.cause, 'listener-hung');
  assert.ok(hung.evidence.some((e) => e.startsWith('in-server handshake check: listener-hung')));
  const finding = hung.findings.find((f) => f.cause === 'listener-hung');
  assert.equal(finding?.severity, 'problem');
  assert.match(finding?.fix ?? '', /restart-termserv/);
  const none = interpretInspect({ status: 'ok', facts: { computer: 'VM1' } } as never, ctx);
  assert.equal(none.handshake, null);
  assert.not.ok(none.findings.some((f) => f.cause === 'listener-hung'));
});

report('read-only: the script carries no function that writes an ACL, a registry value or a service', () => {
  const s = buildInspectScript();
  const functions = [...s.matchAll(/^function ([A-Za-z]+-[A-Za-z0-9]+) \{$/gm)].map((m) => m[1]!);
  assert.ok(functions.includes('Get-RdpServerInspection') && functions.includes('Save-RdpEvidence'));
  // The in-server handshake check is an Invoke- that only opens one connection to the listener.
  assert.ok(functions.includes('Invoke-RdpHandshakeCheck'));
  assert.equal(functions.filter((f) => f !== 'Invoke-RdpHandshakeCheck' && /^(Set|Repair|Restart|Remove|Rename|Invoke)-/.test(f)), []);
  assert.ok(s.includes('\n$Result = Get-RdpServerInspection -EventHours $P.EventHours -MaxEvents $P.MaxEvents -SaveEvidence:$P.SaveEvidence\n'));
});

// ---

const cli = suite('inspect-server CLI');

const run = (args: string[], path?: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/inspect-server.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...(path ? { PATH: `${path}:${process.env.PATH}` } : {}) },
  });

cli('hostile or malformed input is exit 2 and nothing is run', () => {
  const fb = fakeBin(['ssh', 'az']);
  try {
    for (const args of [
      ['--target', "ssh://a@vm1'; calc"],
      ['--target', 'azure://sub/rg/vm;rm'],
      ['--target', 'ssh://a@vm1', '--event-hours', '1;2'],
      ['--target', 'ssh://a@vm1', '--max-events', '99'],
      ['--target', 'ssh://a@vm1', '--journal', 'a\nb'],
    ]) {
      const r = run([...args, '--json'], fb.dir);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    }
    assert.not.ok(existsSync(join(fb.dir, 'ssh.argv')), 'ssh was never started');
    assert.not.ok(existsSync(join(fb.dir, 'az.argv')), 'az was never started');
  } finally {
    fb.remove();
  }
});

cli('--emit prints exactly the script that would run', () => {
  const r = run(['--emit', '--no-save', '--event-hours', '24', '--max-events', '4']);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, buildInspectScript({ save: false, eventHours: 24, maxEvents: 4 }));
});

cli('the pasted script says it changes no setting, and where it saves its evidence (not where a backup is)', () => {
  const saving = buildInspectScript();
  assert.match(saving, /^# It changes no setting; it saves its full evidence under C:\\ProgramData\\rdpfix\\evidence/m);
  assert.match(saving, /SaveEvidence = \$true/);
  assert.not.match(saving, /where the backup is/);
  const reading = buildInspectScript({ save: false });
  assert.match(reading, /^# It changes nothing: it only reads\.$/m);
  assert.match(reading, /SaveEvidence = \$false/);
});

cli('--dry-run writes nothing on the target, not even the evidence file', () => {
  const r = run(['--emit', '--dry-run']);
  assert.is(r.stdout, buildInspectScript({ save: false }));
});

cli('through a channel: one JSON object; exit 0 when healthy, 1 with the cause when not', () => {
  const fb = fakeBin(['ssh']);
  try {
    const framed = (n: string) => `Windows PowerShell\r\nCopyright (C) Microsoft Corporation.\r\n${RESULT_BEGIN}\r\n${JSON.stringify(raw(n))}\r\n${RESULT_END}\r\n`;
    fb.answer('ssh', framed('healthy-2019.json'));
    let r = run(['--target', 'ssh://admin@vm1', '--json'], fb.dir);
    assert.is(r.status, 0, r.stderr);
    let doc = JSON.parse(r.stdout) as { status: string; cause: string; findings: unknown[] };
    assert.is(r.stdout.trim().split('\n').length, 1);
    assert.equal([doc.status, doc.cause], ['ok', 'healthy']);
    assert.is(fb.stdin('ssh'), buildInspectScript(), 'the channel carried exactly the emitted script');

    fb.answer('ssh', framed('key-unreadable-2019.json'));
    r = run(['--target', 'ssh://admin@vm1', '--json'], fb.dir);
    assert.is(r.status, 1);
    doc = JSON.parse(r.stdout);
    assert.equal([doc.status, doc.cause], ['ok', 'certificate-key-unusable']);

    r = run(['--target', 'ssh://admin@vm1'], fb.dir);
    assert.match(r.stdout, /problem \[certificate-key-unusable\] NETWORK SERVICE/);
    assert.match(r.stdout, /Next:\n {2}npx tsx scripts\/clear-machinekeys\.ts --target ssh:\/\/admin@vm1/);
  } finally {
    fb.remove();
  }
});

find.run();
rules.run();
report.run();
cli.run();
