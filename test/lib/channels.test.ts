import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { channelCommand, channelNeeds, describeTarget, invokeCommandLine, parseTarget, runScript, TARGET_HELP, validateWindowsUser } from '../../scripts/lib/channels.ts';
import { EnvError, StepError, UsageError } from '../../scripts/lib/errors.ts';
import { buildScript } from '../../scripts/lib/ps.ts';
import { fakeBin } from '../helpers/fakebin.ts';
import { parseProblems } from '../helpers/powershell.ts';

const fixture = (n: string) => readFileSync(new URL(`../fixtures/channels/${n}`, import.meta.url), 'utf8');
const script = buildScript({ name: 'demo', summary: 'demo', params: { Name: "it's" }, body: "$Result = [ordered]@{ step = 'demo'; status = 'ok' }" });
const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf16le');

const target = suite('parseTarget');

target('parses every channel', () => {
  assert.equal(parseTarget('local'), { kind: 'local' });
  assert.equal(parseTarget('winrm://vm1.contoso.com'), { kind: 'winrm', host: 'vm1.contoso.com', ssl: false });
  assert.equal(parseTarget('ssh://CONTOSO\\admin@10.0.0.4:2222'), { kind: 'ssh', user: 'CONTOSO\\admin', host: '10.0.0.4', port: 2222 });
  assert.equal(parseTarget('azure://0b1f6471-1bf0-4dda-aec3-cb9272f09590/rg-web/web-01'), {
    kind: 'azure', subscription: '0b1f6471-1bf0-4dda-aec3-cb9272f09590', resourceGroup: 'rg-web', vm: 'web-01',
  });
  assert.is(describeTarget(parseTarget('ssh://a@[::1]:22')), 'ssh://a@[::1]:22');
});

target('WinRM: HTTP and HTTPS, a port, a user in each of its three forms, IPv6', () => {
  assert.equal(parseTarget('winrm://vm1:8985'), { kind: 'winrm', host: 'vm1', ssl: false, port: 8985 });
  assert.equal(parseTarget('winrms://vm1'), { kind: 'winrm', host: 'vm1', ssl: true });
  assert.equal(parseTarget('winrms://vm1:5986'), { kind: 'winrm', host: 'vm1', ssl: true }, 'the default HTTPS port is no port');
  assert.equal(parseTarget('winrm://vm1:5986'), { kind: 'winrm', host: 'vm1', ssl: false, port: 5986 }, 'HTTP on 5986 is what was asked');
  assert.equal(parseTarget('winrm://CONTOSO\\admin@10.0.0.4'), { kind: 'winrm', host: '10.0.0.4', ssl: false, user: 'CONTOSO\\admin' });
  assert.equal(parseTarget('winrms://admin@contoso.com@vm1:6000'), { kind: 'winrm', host: 'vm1', ssl: true, port: 6000, user: 'admin@contoso.com' });
  assert.equal(parseTarget('winrm://Administrator@[fe80::1]'), { kind: 'winrm', host: 'fe80::1', ssl: false, user: 'Administrator' });
  for (const t of ['winrm://vm1', 'winrm://vm1:8985', 'winrms://vm1', 'winrms://CONTOSO\\admin@vm1:6000', 'winrm://a@[fe80::1]:5999', 'winrm://admin@contoso.com@10.0.0.4']) {
    assert.is(describeTarget(parseTarget(t)), t, 'describeTarget round-trips');
  }
  assert.is(describeTarget(parseTarget('winrm://vm1:5985')), 'winrm://vm1', 'one name per server in the journal');
});

target('an empty or blank --target is a usage error that shows what was typed', () => {
  for (const bad of ['', ' ', '\t', ' local']) {
    assert.throws(
      () => parseTarget(bad),
      (e: unknown) => e instanceof UsageError && e.exitCode === 2 && e.message.includes(JSON.stringify(bad).slice(1, -1).slice(0, 2)) && /--target/.test(e.message),
      JSON.stringify(bad),
    );
  }
  assert.throws(() => parseTarget(''), /invalid --target "": it is empty/);
});

target('one user validator: DOMAIN\\user, user@domain or user; nothing else', () => {
  for (const ok of ['admin', 'CONTOSO\\admin', 'admin@contoso.com', 'svc-rdp$', 'jürgen.müller']) assert.is(validateWindowsUser(ok), ok);
  for (const bad of ['', '-oProxyCommand=x', 'a b', 'a;b', "o'brien", 'A\\B\\c', 'a@b@c', 'C\\a@b.com', 'a"b', 'a@-bad-', 'a\u200e']) {
    assert.throws(() => validateWindowsUser(bad), (e: unknown) => e instanceof UsageError && e.exitCode === 2, JSON.stringify(bad));
  }
  assert.throws(() => parseTarget('winrm://a b@vm1'), /user in --target "winrm:\/\/a b@vm1"/);
});

target('rejects hostile targets with a usage error', () => {
  for (const bad of ['winrm://vm;calc', "ssh://-oProxyCommand=x@h", 'ssh://a@b c', 'azure://s/rg', 'azure://s/rg/vm;x', 'ftp://x', 'winrm://h:0', 'winrm://h:99999', 'winrm://', "winrm://x'y@vm1", 'winrms://fe80::1', 'ssh://h']) {
    assert.throws(() => parseTarget(bad), (e: unknown) => e instanceof UsageError && e.exitCode === 2, bad);
  }
});

target('help and hints say what each channel needs', () => {
  assert.match(TARGET_HELP, /winrm:\/\/\[USER@\]HOST\[:PORT\]/);
  assert.match(TARGET_HELP, /winrms:\/\/\[USER@\]HOST\[:PORT\]/);
  assert.match(TARGET_HELP, /TrustedHosts/);
  assert.match(TARGET_HELP, /certificate/);
  assert.match(TARGET_HELP, /WSMan/);
  assert.match(channelNeeds(parseTarget('winrm://10.0.0.4')), /TrustedHosts/);
  assert.match(channelNeeds(parseTarget('winrms://vm1')), /certificate this client trusts/);
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

const winrm = (t: string) => parseTarget(t) as Extract<ReturnType<typeof parseTarget>, { kind: 'winrm' }>;

cmd('the exact Invoke-Command line for each WinRM form', async () => {
  const sb = '-ScriptBlock ([scriptblock]::Create($rdpfixScript))';
  const cases: Array<[string, string]> = [
    ['winrm://vm1', `Invoke-Command -ComputerName 'vm1' ${sb}`],
    ['winrm://vm1:8985', `Invoke-Command -ComputerName 'vm1' -Port 8985 ${sb}`],
    ['winrms://vm1', `Invoke-Command -ComputerName 'vm1' -UseSSL ${sb}`],
    ['winrms://vm1:6000', `Invoke-Command -ComputerName 'vm1' -Port 6000 -UseSSL ${sb}`],
    // PowerShell puts an IPv6 -ComputerName in brackets itself when it builds the WSMan URI.
    ['winrm://[fe80::1]', `Invoke-Command -ComputerName 'fe80::1' ${sb}`],
    ['winrms://[2001:db8::4]:6000', `Invoke-Command -ComputerName '2001:db8::4' -Port 6000 -UseSSL ${sb}`],
    ['winrm://CONTOSO\\admin@10.0.0.4', `Invoke-Command -ComputerName '10.0.0.4' -Credential (Get-Credential -UserName 'CONTOSO\\admin' -Message 'rdpfix: the password of CONTOSO\\admin on 10.0.0.4') ${sb}`],
    ['winrms://admin@contoso.com@vm1', `Invoke-Command -ComputerName 'vm1' -UseSSL -Credential (Get-Credential -UserName 'admin@contoso.com' -Message 'rdpfix: the password of admin@contoso.com on vm1') ${sb}`],
  ];
  for (const [t, line] of cases) {
    assert.is(invokeCommandLine(winrm(t)), line, t);
    assert.equal(await parseProblems(line), [], t);
  }
});

cmd('with a user: an interactive pwsh (the password prompt), the script from a temp file, nothing on stdin', async () => {
  const w = channelCommand(parseTarget('winrm://CONTOSO\\admin@10.0.0.4'), script, '/tmp/rdpfix-x/step.ps1');
  assert.equal(w.argv.slice(0, 3), ['pwsh', '-NoProfile', '-EncodedCommand'], 'no -NonInteractive: Get-Credential must be able to prompt');
  assert.is(w.interactive, true);
  assert.is(w.stdin, '');
  assert.is(w.scriptFile, '/tmp/rdpfix-x/step.ps1');
  const loader = decode(w.argv[3]!);
  assert.ok(loader.includes("[System.IO.File]::ReadAllText('/tmp/rdpfix-x/step.ps1'"), loader);
  assert.ok(loader.includes("-Credential (Get-Credential -UserName 'CONTOSO\\admin'"), loader);
  assert.not.ok(/password\s*=|ConvertTo-SecureString|-AsPlainText/i.test(loader), 'no password anywhere in what is spawned');
  assert.equal(await parseProblems(loader), []);
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

run('winrm: each form reaches pwsh as its exact Invoke-Command line (host, host:port, https, IPv6)', async () => {
  const fb = fakeBin(['pwsh']);
  const restore = fb.install();
  try {
    fb.answer('pwsh', fixture('pwsh-noisy.txt'));
    for (const [t, line] of [
      ['winrm://vm1', "Invoke-Command -ComputerName 'vm1' -ScriptBlock"],
      ['winrm://vm1:8985', "Invoke-Command -ComputerName 'vm1' -Port 8985 -ScriptBlock"],
      ['winrms://vm1', "Invoke-Command -ComputerName 'vm1' -UseSSL -ScriptBlock"],
      ['winrms://[fe80::1]:6000', "Invoke-Command -ComputerName 'fe80::1' -Port 6000 -UseSSL -ScriptBlock"],
    ] as const) {
      await runScript(parseTarget(t), script);
      const argv = fb.argv('pwsh');
      assert.equal(argv.slice(0, 3), ['-NoProfile', '-NonInteractive', '-EncodedCommand'], t);
      assert.ok(decode(argv[3]!).includes(line), `${t}: ${decode(argv[3]!)}`);
      assert.is(fb.stdin('pwsh'), script, t);
    }
  } finally {
    restore();
    fb.remove();
  }
});

run('winrm with a user but no terminal for the password prompt: exit 2, pwsh never started', async () => {
  const fb = fakeBin(['pwsh']);
  const restore = fb.install();
  try {
    fb.answer('pwsh', fixture('pwsh-noisy.txt'));
    await runScript(parseTarget('winrm://CONTOSO\\admin@10.0.0.4'), script, { terminal: false }).then(
      () => assert.unreachable('should fail'),
      (e: unknown) => {
        assert.instance(e, EnvError);
        assert.is((e as EnvError).exitCode, 2);
        assert.match((e as Error).message, /password of CONTOSO\\admin.*needs a terminal/);
        assert.match((e as EnvError).hint ?? '', /winrm:\/\/10\.0\.0\.4/);
      },
    );
    assert.throws(() => fb.argv('pwsh'), 'pwsh was not run');
  } finally {
    restore();
    fb.remove();
  }
});

run('winrm: a connection failure names what the channel needs', async () => {
  const fb = fakeBin(['pwsh']);
  const restore = fb.install();
  try {
    fb.answer('pwsh', '', 1);
    await runScript(parseTarget('winrm://10.0.0.4'), script).then(
      () => assert.unreachable('should fail'),
      (e: unknown) => assert.match((e as StepError).hint ?? '', /TrustedHosts/),
    );
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
