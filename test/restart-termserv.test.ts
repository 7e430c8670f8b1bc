import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTarget } from '../scripts/lib/channels.ts';
import { list } from '../scripts/lib/journal.ts';
import { RESULT_BEGIN, RESULT_END } from '../scripts/lib/ps.ts';
import type { Runner, StepContext } from '../scripts/lib/server-step.ts';
import { scripted } from './helpers/scripted-runner.ts';
import { buildRestartScript, interpretRestart, regenChange, restartTermserv, validRecords, type RestartRaw } from '../scripts/restart-termserv.ts';
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

interp('a valid pinned CA certificate is not replaced without --force, and says how', () => {
  const r = interpretRestart(fx('regenerate-pinned-refused.json'), ctxFor(scripted()), { regenerateCert: true });
  assert.is(r.status, 'failed');
  assert.match(r.summary, /pinned certificate 5C1E9A770B44D2138E6FA03BC95127E80496BD62/);
  assert.equal(r.next, ['npx tsx scripts/restart-termserv.ts --regenerate-cert --force --target winrm://vm1']);
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
  assert.match(r.next[0]!, /^put the old certificate back: npx tsx scripts\/undo\.ts /);
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
  assert.is(r.stdout, buildRestartScript({ regenerateCert: true, onlyThumbprint: OLD, timeoutSeconds: 60, removeKey: false, force: false }, false));
  r = run(['--emit', '--dry-run']);
  assert.is(r.stdout, buildRestartScript({ timeoutSeconds: 60, regenerateCert: false, removeKey: false, force: false }, true));
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

interp.run();
triple.run();
script.run();
cli.run();
