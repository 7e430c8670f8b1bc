import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { channelCommand, describeTarget, parseTarget, runScript } from '../../scripts/lib/channels.ts';
import { EnvError, UsageError } from '../../scripts/lib/errors.ts';
import { buildScript } from '../../scripts/lib/ps.ts';
import { fakeBin } from '../helpers/fakebin.ts';
import { parseProblems } from '../helpers/powershell.ts';

const fixture = (n: string) => readFileSync(new URL(`../fixtures/channels/${n}`, import.meta.url), 'utf8');
const script = buildScript({ name: 'demo', summary: 'demo', params: { Name: "it's" }, body: "$Result = [ordered]@{ step = 'demo'; status = 'ok' }" });
const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf16le');

const target = suite('parseTarget');

target('parses every channel', () => {
  assert.equal(parseTarget('local'), { kind: 'local' });
  assert.equal(parseTarget('winrm://vm1.contoso.com'), { kind: 'winrm', host: 'vm1.contoso.com' });
  assert.equal(parseTarget('ssh://CONTOSO\\admin@10.0.0.4:2222'), { kind: 'ssh', user: 'CONTOSO\\admin', host: '10.0.0.4', port: 2222 });
  assert.equal(parseTarget('azure://0b1f6471-1bf0-4dda-aec3-cb9272f09590/rg-web/web-01'), {
    kind: 'azure', subscription: '0b1f6471-1bf0-4dda-aec3-cb9272f09590', resourceGroup: 'rg-web', vm: 'web-01',
  });
  assert.is(describeTarget(parseTarget('ssh://a@[::1]:22')), 'ssh://a@[::1]:22');
});

target('rejects hostile targets with a usage error', () => {
  for (const bad of ['winrm://vm;calc', "ssh://-oProxyCommand=x@h", 'ssh://a@b c', 'azure://s/rg', 'azure://s/rg/vm;x', 'ftp://x', 'winrm://h:5985']) {
    assert.throws(() => parseTarget(bad), (e: unknown) => e instanceof UsageError && e.exitCode === 2, bad);
  }
});

// ---

const cmd = suite('channelCommand');

cmd('winrm and ssh send a small fixed loader as -EncodedCommand and the script itself on stdin', async () => {
  const w = channelCommand(parseTarget("winrm://vm1"), script);
  assert.equal(w.argv.slice(0, 4), ['pwsh', '-NoProfile', '-NonInteractive', '-EncodedCommand']);
  assert.is(w.stdin, script);
  const wl = decode(w.argv[4]!);
  assert.ok(wl.includes("Invoke-Command -ComputerName 'vm1' -ScriptBlock ([scriptblock]::Create($rdpfixScript))"));
  assert.equal(await parseProblems(wl), []);

  const s = channelCommand(parseTarget('ssh://admin@10.0.0.4:2222'), script);
  assert.equal(s.argv.slice(0, 8), ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-p', '2222', '--']);
  assert.is(s.argv[8], 'admin@10.0.0.4');
  const m = /^powershell -NoProfile -NonInteractive -EncodedCommand ([A-Za-z0-9+/=]+)$/.exec(s.argv[9]!);
  assert.ok(m, s.argv[9]);
  assert.equal(await parseProblems(decode(m![1]!)), []);
  assert.ok(s.argv[9]!.length < 8191, 'fits cmd.exe');
});

// ---

const run = suite('runScript through fake programs');

run('ssh: exact argv, script on stdin, result found in noisy output', async () => {
  const fb = fakeBin(['ssh']);
  const restore = fb.install();
  try {
    fb.answer('ssh', fixture('pwsh-noisy.txt'));
    const out = await runScript(parseTarget('ssh://admin@vm1'), script);
    assert.equal(out.result, { step: 'demo', status: 'changed', before: { v: 0 }, after: { v: 1 } });
    assert.equal(fb.argv('ssh'), channelCommand(parseTarget('ssh://admin@vm1'), script).argv.slice(1));
    assert.is(fb.stdin('ssh'), script);
  } finally {
    restore();
    fb.remove();
  }
});

run('winrm: runs pwsh with the loader and the script on stdin', async () => {
  const fb = fakeBin(['pwsh']);
  const restore = fb.install();
  try {
    fb.answer('pwsh', fixture('pwsh-noisy.txt'));
    const out = await runScript(parseTarget('winrm://vm1'), script);
    assert.is((out.result as { status: string }).status, 'changed');
    assert.is(fb.argv('pwsh')[3], channelCommand(parseTarget('winrm://vm1'), script).argv[4]);
    assert.is(fb.stdin('pwsh'), script);
  } finally {
    restore();
    fb.remove();
  }
});

run('azure: passes the script as @file and parses value[0].message', async () => {
  const fb = fakeBin(['az']);
  const restore = fb.install();
  try {
    fb.answer('az', fixture('az-run-command.json'));
    const out = await runScript(parseTarget('azure://sub-1/rg/vm1'), script);
    assert.equal(out.result, { step: 'demo', status: 'ok', before: { UserAuthentication: 1 } });
    const argv = fb.argv('az');
    assert.equal(argv.slice(0, 12), ['vm', 'run-command', 'invoke', '--subscription', 'sub-1', '--resource-group', 'rg', '--name', 'vm1', '--command-id', 'RunPowerShellScript', '--scripts']);
    assert.match(argv[12]!, /^@.*step\.ps1$/);
    assert.equal(argv.slice(13), ['--output', 'json']);
    assert.is(fb.scriptFile('az'), script, 'the file holds exactly the script');
  } finally {
    restore();
    fb.remove();
  }
});

run('azure: a failing az is a step failure with its stderr tail', async () => {
  const fb = fakeBin(['az']);
  const restore = fb.install();
  try {
    fb.answer('az', '', 1);
    await runScript(parseTarget('azure://sub-1/rg/vm1'), script).then(
      () => assert.unreachable('should fail'),
      (e: Error) => assert.match(e.message, /az vm run-command failed \(exit 1\)/),
    );
  } finally {
    restore();
    fb.remove();
  }
});

run('output cut off before the end marker is reported, not mis-parsed', async () => {
  const fb = fakeBin(['ssh']);
  const restore = fb.install();
  try {
    fb.answer('ssh', fixture('pwsh-noisy.txt').split('##rdpfix-result-end##')[0]!);
    await runScript(parseTarget('ssh://a@vm1'), script).then(
      () => assert.unreachable('should fail'),
      (e: Error) => assert.match(e.message, /cut off/),
    );
  } finally {
    restore();
    fb.remove();
  }
});

run('a missing program is an environment error (exit 2) with the install step', async () => {
  const old = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await runScript(parseTarget('azure://s/rg/vm'), script).then(
      () => assert.unreachable('should fail'),
      (e: unknown) => {
        assert.instance(e, EnvError);
        assert.is((e as EnvError).exitCode, 2);
        assert.match((e as EnvError).hint ?? '', /Azure CLI/);
      },
    );
  } finally {
    process.env.PATH = old;
  }
});

run('local on a non-Windows machine is a clear environment error', async () => {
  await runScript({ kind: 'local' }, script).then(
    () => assert.unreachable('should fail'),
    (e: unknown) => assert.match((e as Error).message, /this Windows machine, but this is linux/),
  );
});

target.run();
cmd.run();
run.run();
