import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../scripts/lib/channels.ts';
import { list } from '../scripts/lib/journal.ts';
import { readPsFile } from '../scripts/lib/ps-loader.ts';
import { psQuote, RESULT_BEGIN, RESULT_END } from '../scripts/lib/ps.ts';
import { RD_STORE, RD_STORE_REG, RDP_TCP_KEY } from '../scripts/lib/server-ps.ts';
import type { Runner, StepContext } from '../scripts/lib/server-step.ts';
import { scripted } from './helpers/scripted-runner.ts';
import { buildRestartScript, interpretRestart, restartTermserv } from '../scripts/restart-termserv.ts';
import { regenChange, validRecords, type RestartRaw } from '../scripts/lib/certificate.ts';
import { sessionImpact } from '../scripts/lib/sessions.ts';
import { fakeBin } from './helpers/fakebin.ts';
import { parseProblems } from './helpers/powershell.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const fx = (n: string) => JSON.parse(readFileSync(join(root, 'test/fixtures/restart-termserv', n), 'utf8')) as RestartRaw;
const OLD = '3F2A9C4E1B7D6058A1C3E5F7092B4D6E8A0C2E41';
const NEW = '7C0E5A3B9D1F2E4C6A8B0D2F4E6A8C0B1D3F5E79';

/** A fake channel: answers with the given results in order and records the scripts it was given. */
let dir = '';
const ctxFor = (run: Runner, dryRun = false): StepContext => ({ target: parseTarget('winrm://vm1'), dryRun, journal: dir, run });

const interp = suite('interpretRestart');

interp('a plain restart reports the service and listener before and after and the thumbprint', () => {
  const r = interpretRestart(fx('restart-service-stopped-before.json'), ctxFor(scripted()), {});
  assert.is(r.status, 'changed');
  assert.match(r.summary, new RegExp(`listening on port 3389; certificate ${OLD} → ${OLD}`));
  assert.match(r.evidence[0]!, /before: TermService StartPending, not listening/);
  assert.match(r.evidence[1]!, /after: TermService Running, listening/);
});

interp('the in-server handshake check is the last verification: healthy is one evidence line', () => {
  const raw = fx('restart-service-stopped-before.json');
  raw.handshake = { cause: 'healthy', detail: '127.0.0.1:3389: negotiation and TLS complete (Tls12)', attempts: 1 } as never;
  const r = interpretRestart(raw, ctxFor(scripted()), {});
  assert.is(r.status, 'changed');
  assert.is(r.cause, null);
  assert.ok(r.evidence.includes('handshake checked from the server itself: healthy (127.0.0.1:3389: negotiation and TLS complete (Tls12))'));
  assert.equal(r.handshake, { cause: 'healthy', detail: '127.0.0.1:3389: negotiation and TLS complete (Tls12)', attempts: 1 });
});

interp('a restart that leaves the handshake broken is failed with its cause, and the next step is a new certificate', () => {
  const raw = fx('restart-service-stopped-before.json');
  const problem = 'after the change the RDP handshake from the server itself is certificate-key-unusable: 127.0.0.1:3389: the server chose TLS, then closed the connection';
  Object.assign(raw, { status: 'failed', problems: [problem], handshake: { cause: 'certificate-key-unusable', detail: '127.0.0.1:3389: the server chose TLS, then closed the connection', attempts: 3 } });
  const r = interpretRestart(raw, ctxFor(scripted()), {});
  assert.is(r.status, 'failed');
  assert.is(r.cause, 'certificate-key-unusable');
  assert.is(r.summary, problem);
  assert.ok(r.evidence.some((e) => /^handshake checked from the server itself: certificate-key-unusable .* after 3 attempts$/.test(e)));
  assert.equal(r.next, ['npx tsx scripts/restart-termserv.ts --regenerate-cert --target winrm://vm1']);
  // The restart itself happened and is still a change (journaled, undoable as a restart is not).
  assert.ok(r.changes.some((c) => /^restarted TermService/.test(c.summary)));
});

interp('a "changed" whose old certificate is still in use is a failed verification', () => {
  const raw = fx('regenerate-changed.json');
  raw.after!.certificate!.thumbprint = OLD;
  const r = interpretRestart(raw, ctxFor(scripted()), { regenerateCert: true });
  assert.is(r.status, 'failed');
  assert.ok(r.evidence.some((e) => /verification: no new certificate is in use/.test(e)));
});

interp('a result trimmed to fit 4 KB (services dropped) is still judged by what is left', () => {
  const raw = fx('regenerate-changed.json');
  delete raw.before!.services;
  raw.dropped = ['before.services'] as never;
  const r = interpretRestart(raw, ctxFor(scripted()), { regenerateCert: true });
  assert.is(r.status, 'changed');
  assert.match(r.evidence[0]!, /before: TermService unknown/);
});

interp('a service that does not come back: failed, with the newest events, and the next step', () => {
  const r = interpretRestart(fx('regenerate-failed.json'), ctxFor(scripted()), { regenerateCert: true });
  assert.is(r.status, 'failed');
  assert.match(r.summary, /did not reach Running within 60 s/);
  assert.ok(r.evidence.some((e) => /^event 1057 Microsoft-Windows-TerminalServices-RemoteConnectionManager/.test(e)));
  assert.ok(r.evidence.some((e) => /^event 7024 Service Control Manager/.test(e)));
  assert.equal(r.next, ['npx tsx scripts/clear-machinekeys.ts --target winrm://vm1']);
});

interp('a valid pinned CA certificate is not replaced without --replace-pinned, and says how', () => {
  const r = interpretRestart(fx('regenerate-pinned-refused.json'), ctxFor(scripted()), { regenerateCert: true });
  assert.is(r.status, 'failed');
  assert.match(r.summary, /pinned certificate 5C1E9A770B44D2138E6FA03BC95127E80496BD62/);
  assert.equal(r.next, ['npx tsx scripts/restart-termserv.ts --regenerate-cert --replace-pinned --target winrm://vm1']);
});

// ---

const triple = suite('restartTermserv: check, apply, again (idempotency triple)');
triple.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'rdpfix-restart-'));
});
triple.after.each(() => rmSync(dir, { recursive: true, force: true }));

triple('--regenerate-cert --thumbprint: would-change and nothing recorded; changed with one undo; then ok', async () => {
  const opts = { regenerateCert: true, onlyThumbprint: OLD };
  const check = await restartTermserv(opts, ctxFor(scripted(fx('regenerate-dry-run.json')), true));
  assert.is(check.status, 'would-change');
  assert.match(check.summary, new RegExp(`would back up and remove certificate\\(s\\) ${OLD}, then restart TermService`));
  assert.equal(await list(dir), [], 'a dry run records nothing');

  const run = scripted(fx('regenerate-changed.json'));
  const apply = await restartTermserv(opts, ctxFor(run));
  assert.is(apply.status, 'changed');
  assert.equal([apply.thumbprintBefore, apply.thumbprintAfter], [OLD, NEW]);
  const entries = await list(dir);
  assert.is(entries.length, 1);
  const e = entries[0]!;
  assert.equal([e.script, e.target, e.backup], ['restart-termserv', 'winrm://vm1', 'C:\\ProgramData\\rdpfix\\backup\\20250601-120000-123-restart-termserv']);
  assert.is(apply.undo, `npx tsx scripts/undo.ts ${e.id} --yes --journal ${JSON.stringify(dir)}`);
  assert.is(e.undo.kind, 'powershell');
  const undo = e.undo as { kind: 'powershell'; target: string; script: string };
  assert.is(undo.target, 'winrm://vm1');
  assert.equal(await parseProblems(undo.script), []);
  assert.match(undo.script, /Restore-RdpCertificate -BackupPath \$P\.BackupPath/);
  assert.ok(undo.script.includes(`'thumbprint' = '${OLD}'`), 'the undo restores exactly the removed certificate');
  assert.match(run.scripts[0]!, new RegExp(`OnlyThumbprint = '${OLD}'`));

  const again = await restartTermserv(opts, ctxFor(scripted(fx('regenerate-again-ok.json'))));
  assert.is(again.status, 'ok');
  assert.match(again.summary, /no longer in use/);
  assert.is((await list(dir)).length, 1, 'nothing new recorded');
});

triple('a plain restart changes nothing that can be undone: no journal entry', async () => {
  const r = await restartTermserv({}, ctxFor(scripted(fx('restart-changed.json'))));
  assert.is(r.status, 'changed');
  assert.equal(await list(dir), []);
  assert.is(r.undo, null);
});

triple('a failed regeneration still journals what it removed and offers the undo first', async () => {
  const r = await restartTermserv({ regenerateCert: true }, ctxFor(scripted(fx('regenerate-failed.json'))));
  assert.is(r.status, 'failed');
  assert.is((await list(dir)).length, 1);
  assert.match(r.next[0]!, /^npx tsx scripts\/undo\.ts \S+ --yes/, 'the undo is the first next step, as a bare command');
  assert.ok(r.notes.some((n) => /puts the old certificate back/.test(n)));
});

triple('a backup record with a hostile path is never embedded in an undo script', async () => {
  const raw = fx('regenerate-changed-hostile-record.json');
  assert.is(validRecords(raw.removed), null);
  const c = regenChange(raw, ctxFor(scripted()));
  assert.is(c!.undo.kind, 'none');
  assert.match((c!.undo as { reason: string }).reason, /restore by hand from C:\\ProgramData\\rdpfix\\backup/);
});

// ---

const script = suite('generated restart script');

script('values reach the script only through $P, quoted; the dry run calls the step with -WhatIf', () => {
  const s = buildRestartScript({ regenerateCert: true, onlyThumbprint: OLD, backupRoot: "D:\\it's here", port: 3390 }, true);
  assert.match(s, /^ {4}BackupRoot = 'D:\\it''s here'$/m);
  assert.match(s, /^ {4}Port = 3390$/m);
  assert.match(s, /^ {4}DryRun = \$true$/m);
  assert.match(s, /-WhatIf:\$P\.DryRun\n/);
});

script('the store, its registry key and RDP-Tcp are the lib/server-ps.ts constants, as literals; no function reads $P', () => {
  const ps = ['restart-termserv', 'certificate'].map((f) => readFileSync(join(root, `scripts/ps/${f}.ps1`), 'utf8')).join('\n');
  // The store is named to the Windows boundary (windows.ps1 Get-RdpStoreCertificate) by its name under Cert:\LocalMachine.
  assert.is(RD_STORE, "Cert:\\LocalMachine\\Remote Desktop");
  assert.ok(ps.includes(`-Store 'Remote Desktop'`) && ps.includes(`(${psQuote(RD_STORE + '\\')} + $thumbprint)`), RD_STORE);
  assert.ok(ps.includes(`(${psQuote(RD_STORE_REG)} + '\\' + $thumbprint)`), RD_STORE_REG);
  assert.ok(ps.includes(`-Path ${psQuote(RDP_TCP_KEY)} -Name 'SSLCertificateSHA1Hash'`) && ps.includes(`'export', ${psQuote(RDP_TCP_KEY.replace(':', ''))}`), RDP_TCP_KEY);
  const other = ps.replace(new RegExp([RD_STORE, RD_STORE + '\\', RD_STORE_REG, RDP_TCP_KEY, RDP_TCP_KEY.replace(':', '')].sort((x, y) => y.length - x.length).map((v) => psQuote(v).replace(/[\\$()*+.?[\]^{|}]/g, '\\$&')).join('|'), 'g'), '');
  assert.not.match(other, /'(HKLM|Cert:)[^']*'/, 'no other store or registry path');
  assert.not.ok(/\$P\b/.test(ps), 'functions take parameters; only the generated call reads $P');
  assert.ok(buildRestartScript({}, false).includes('\n$Result = Restart-RdpService '), 'the step is Restart-RdpService itself');
  const step = readPsFile('restart-termserv').functions.find((f) => f.name === 'Restart-RdpService')!.text;
  assert.equal([...new Set(step.match(/\breturn\b.*/g))], ['return (Compress-RdpResult -Result $result -Drop $Drop)'], 'every exit is trimmed to fit 4 KB');
  assert.not.ok(buildRestartScript({ regenerateCert: true }, false).includes('function Restore-RdpCertificate'), 'the restart carries no undo');
});

// ---

const cli = suite('restart-termserv CLI');

const run = (args: string[], path?: string, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/restart-termserv.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env, ...(path ? { PATH: `${path}:${process.env.PATH}` } : {}) },
  });

cli('hostile thumbprint, port, path or timeout: exit 2, nothing run', () => {
  const fb = fakeBin(['ssh']);
  try {
    for (const args of [
      ['--regenerate-cert', '--thumbprint', "3F2A'; Remove-Item C:\\ -Recurse #"],
      ['--regenerate-cert', '--thumbprint', '3F2A9C4E'],
      ['--port', '3389; calc'],
      ['--port', '70000'],
      ['--backup-dir', 'C:\\x"; calc'],
      ['--backup-dir', 'C:\\a\\..\\Windows'],
      ['--backup-dir', 'relative'],
      ['--timeout', '5'],
      ['--thumbprint', OLD],
      ['--remove-key'],
    ]) {
      const r = run([...args, '--target', 'ssh://admin@vm1', '--json'], fb.dir);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    }
    assert.not.ok(existsSync(join(fb.dir, 'ssh.argv')), 'ssh was never started');
  } finally {
    fb.remove();
  }
});

cli('--emit and --emit --dry-run print exactly the script that would run', () => {
  let r = run(['--regenerate-cert', '--thumbprint', OLD.toLowerCase(), '--emit']);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, buildRestartScript({ regenerateCert: true, onlyThumbprint: OLD, timeoutSeconds: 60, removeKey: false, replacePinned: false, disconnectSessions: false }, false));
  r = run(['--emit', '--dry-run']);
  assert.is(r.stdout, buildRestartScript({ timeoutSeconds: 60, regenerateCert: false, removeKey: false, replacePinned: false, disconnectSessions: false }, true));
});

cli('through a channel with --json: one object with status, and the journal entry on disk', () => {
  const fb = fakeBin(['ssh']);
  const jdir = mkdtempSync(join(tmpdir(), 'rdpfix-restart-cli-'));
  try {
    fb.answer('ssh', `noise\r\n${RESULT_BEGIN}\r\n${JSON.stringify(fx('regenerate-changed.json'))}\r\n${RESULT_END}\r\n`);
    const r = run(['--regenerate-cert', '--target', 'ssh://admin@vm1', '--json', '--journal', jdir], fb.dir, { RDPFIX_RUN_ID: 'recipe-run-7' });
    assert.is(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { status: string; journal: string[]; thumbprintAfter: string };
    assert.equal([doc.status, doc.thumbprintAfter], ['changed', NEW]);
    assert.is(doc.journal.length, 1);
    const entry = JSON.parse(readFileSync(join(jdir, `${doc.journal[0]}.json`), 'utf8')) as { runId: string; target: string };
    assert.equal([entry.runId, entry.target], ['recipe-run-7', 'ssh://admin@vm1'], 'a recipe run id is honoured');
  } finally {
    fb.remove();
    rmSync(jdir, { recursive: true, force: true });
  }
});

// ---

const sessions = suite('sessions: who a restart disconnects');

sessions('every signed-in session but the caller\'s counts; a stopped TermService has none to lose; an unreadable list blocks', () => {
  const s = fx('restart-refused-sessions.json').sessions!;
  const i = sessionImpact(s, true);
  assert.equal(i.others.map((x) => x.id), [2, 3, 1], 'remote, disconnected and console sessions');
  assert.is(i.blocks, true);
  assert.is(sessionImpact(s, false).blocks, false, 'starting a stopped TermService disconnects nobody');
  const own = sessionImpact(fx('restart-changed-own-session.json').sessions, true);
  assert.equal([own.others.length, own.own?.id, own.blocks], [0, 2, false], 'the caller\'s own session (local channel) does not block');
  assert.equal([sessionImpact({ own: 0, count: 12, list: [s.list as never].flat().slice(0, 1) as never }, true).more], [11], 'sessions beyond the listed ones count');
  const unknown = sessionImpact(fx('restart-refused-sessions-unknown.json').sessions, true);
  assert.equal([unknown.blocks, unknown.unknown], [true, 'the session list did not come back within 15 s (TermService may be hung)']);
  assert.is(sessionImpact(undefined, true).blocks, true, 'a result without a session list is not taken as "nobody"');
});

sessions('refused without --force: says who would be disconnected, nothing changed, the exact command with --force', () => {
  const r = interpretRestart(fx('restart-refused-sessions.json'), ctxFor(scripted()), {});
  assert.is(r.status, 'failed');
  assert.match(r.summary, /^refused: restarting TermService disconnects 3 session\(s\): CONTOSO\\alice \(session 2, Active, from LAPTOP-17\); CONTOSO\\bob \(session 3, Disconnected\); WEB-01\\Administrator \(session 1, Active\); nothing was changed/);
  assert.equal(r.next, ['npx tsx scripts/restart-termserv.ts --force --target winrm://vm1']);
  assert.equal(r.disconnects.map((x) => x.user), ['CONTOSO\\alice', 'CONTOSO\\bob', 'WEB-01\\Administrator']);
  const g = interpretRestart(fx('restart-refused-sessions.json'), ctxFor(scripted()), { regenerateCert: true });
  assert.equal(g.next, ['npx tsx scripts/restart-termserv.ts --regenerate-cert --force --target winrm://vm1'], '--regenerate-cert is refused the same way');
  const h = interpretRestart(fx('restart-refused-sessions-unknown.json'), ctxFor(scripted()), {});
  assert.match(h.summary, /^refused: restarting TermService may disconnect signed-in users \(the sessions could not be listed: the session list did not come back within 15 s/);
});

sessions('--dry-run lists the sessions and says the real run refuses without --force', () => {
  const r = interpretRestart(fx('restart-dry-run-sessions.json'), ctxFor(scripted(), true), {});
  assert.is(r.status, 'would-change');
  assert.match(r.summary, /; that disconnects 3 session\(s\): CONTOSO\\alice \(session 2, Active, from LAPTOP-17\);.*so the real run refuses without --force$/);
  assert.ok(r.evidence.includes('signed in: CONTOSO\\alice (session 2, Active, from LAPTOP-17); CONTOSO\\bob (session 3, Disconnected); WEB-01\\Administrator (session 1, Active)'), r.evidence.join('\n'));
  assert.equal(r.next, ['npx tsx scripts/restart-termserv.ts --force --target winrm://vm1']);
  const forced = interpretRestart(fx('restart-dry-run-sessions.json'), ctxFor(scripted(), true), { disconnectSessions: true });
  assert.not.match(forced.summary, /refuses/);
});

sessions('the caller alone (local channel) is not refused, but is told its own session goes too', () => {
  const r = interpretRestart(fx('restart-changed-own-session.json'), ctxFor(scripted()), {});
  assert.is(r.status, 'changed');
  assert.ok(r.warnings.some((w) => /your own session 2 is disconnected by the restart too/.test(w)));
  assert.equal(r.disconnects, []);
});

sessions('the script refuses on the target unless --force binds DisconnectSessions; the check comes before any change', () => {
  const plain = buildRestartScript({}, false);
  assert.match(plain, /^ {4}DisconnectSessions = \$false$/m);
  assert.match(buildRestartScript({ disconnectSessions: true }, false), /^ {4}DisconnectSessions = \$true$/m);
  const body = plain.slice(plain.indexOf('function Restart-RdpService'));
  const check = body.indexOf('Test-RdpSessionBlock -Sessions');
  assert.ok(check > 0 && check < body.indexOf('New-RdpTargetRecord') && check < body.indexOf("Restart-RdpWinService -Name 'TermService'"), 'sessions are judged before the backup, the removal and the restart');
});

sessions('JSON reports carry ISO 8601 dates, never the /Date(ms)/ form of Windows PowerShell 5.1', async () => {
  const raw = fx('regenerate-changed.json');
  assert.ok(JSON.stringify(raw).includes('/Date('), 'the fixture has PS 5.1 dates');
  const r = await restartTermserv({ regenerateCert: true }, ctxFor(scripted(raw)));
  const text = JSON.stringify(r);
  assert.not.ok(text.includes('/Date('), text.slice(text.indexOf('/Date(') - 80, text.indexOf('/Date(') + 40));
  assert.match(text, /"NotAfter":"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/);
});

sessions('CLI: --force is the sessions override; --replace-pinned still needs --regenerate-cert; an empty --target is exit 2', () => {
  let r = run(['--force', '--emit']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {4}DisconnectSessions = \$true$/m);
  assert.match(r.stdout, /^ {4}ReplacePinned = \$false$/m);
  r = run(['--replace-pinned', '--emit']);
  assert.is(r.status, 2);
  for (const t of ['', '   ']) {
    r = run(['--target', t, '--json']);
    assert.is(r.status, 2, `${JSON.stringify(t)}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /invalid --target/);
  }
});

interp.run();
triple.run();
script.run();
cli.run();
sessions.run();
