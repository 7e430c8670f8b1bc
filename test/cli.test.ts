// Every script's --help exits 0 and prints usage (however tsx was given the path), states the
// exit codes and shows each example as one copy-pasteable line; start.ts is the npm start entry point.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('..', import.meta.url));
const scripts = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts') && f !== 'start.ts').sort();
const cli = (args: string[], cwd = root) => spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), ...args], { cwd, encoding: 'utf8', timeout: 60_000, env: { ...process.env, COLUMNS: '80' } });

const help = suite('--help');

for (const s of scripts) {
  help(`${s} --help exits 0, shows usage, the exit codes and one-line examples of at most 80 columns`, () => {
    const r = cli([join('scripts', s), '--help']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /Options:/);
    assert.match(r.stdout, /Exit codes: 0 /);
    const examples = r.stdout.split('\n\n').find((p) => p.startsWith('Examples:'));
    assert.ok(examples, 'has examples');
    const lines = examples!.split('\n').slice(1);
    const commands = lines.filter((l) => !l.startsWith('  # '));
    assert.ok(commands.length > 0);
    for (const c of commands) {
      assert.match(c, new RegExp(`^  (sudo )?npx tsx scripts/${s.replace('.', '\\.')}( |$)`), `an example is one command line: ${JSON.stringify(c)}`);
      assert.ok(c.length <= 80, `example wider than 80 columns (${c.length}): ${c}`);
    }
  });

  // tsx runs `scripts/diagnose` as scripts/diagnose.ts: a script that then did nothing and exited 0
  // would read as healthy to a cron check.
  help(`${s} runs when tsx is given its path without the extension`, () => {
    const r = cli([join('scripts', s.replace(/\.ts$/, '')), '--help']);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /Options:/);
  });
}

help('a script runs through a symlink, from another directory, and keeps its exit code', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-cli-'));
  try {
    symlinkSync(join(root, 'scripts', 'diagnose.ts'), join(dir, 'diag.ts'));
    const linked = cli([join(dir, 'diag.ts'), '--help'], dir);
    assert.is(linked.status, 0, linked.stderr);
    assert.match(linked.stdout, /Options:/);
    const bad = cli([join(root, 'scripts', 'diagnose'), 'bad;host'], dir);
    assert.is(bad.status, 2);
    assert.match(bad.stderr, /bad;host/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

help('no value can turn into --help: "--for -1h" is a usage error naming what was typed', () => {
  const r = cli(['scripts/toggle-nla', 'disable', '--for', '-1h', '--emit']);
  assert.is(r.status, 2);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /--for got no value: "-1h" was read as an option \(to pass a value that starts with "-", write --for=-1h\)/);
  const joined = cli(['scripts/toggle-nla.ts', 'disable', '--for=-1h', '--emit']);
  assert.is(joined.status, 2);
  assert.is(joined.stdout, '');
  assert.match(joined.stderr, /invalid --for "-1h"/);
});

help('a mistyped option after a yes/no flag is named once, as typed, not blamed on the flag', () => {
  for (const args of [['--dry-run', '--regenerate-certs', '--emit'], ['--regenerate-certs', '--dry-run', '--emit'], ['--no-force', '--regenerate-certs', '--emit']]) {
    const r = cli(['scripts/restart-termserv.ts', ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.is(r.stdout, '');
    assert.match(r.stderr, /unknown argument: "--regenerate-certs"\n/, args.join(' '));
    assert.not.match(r.stderr, /regenerateCerts|got no value/);
  }
});

help('a yes/no flag takes only true or false: --json=1 is a usage error naming it, not plain text', () => {
  for (const a of ['--json=1', '--json=yes', '--no-json=no']) {
    const r = cli(['scripts/undo.ts', '--list', a, '--journal', '/nonexistent-rdpfix-journal']);
    assert.is(r.status, 2, a);
    assert.match(r.stderr, `invalid ${JSON.stringify(a)}: --json is a yes/no flag`);
  }
  const ok = cli(['scripts/probe-rdp.ts', '--help=true']);
  assert.is(ok.status, 0, ok.stderr);
  const negated = cli(['scripts/restart-termserv.ts', '--no-force=1', '--emit']);
  assert.is(negated.status, 2);
  assert.match(negated.stderr, 'write --no-force, or --force=false', 'the advice keeps what was meant');
  // --json=true asks for JSON as much as --json: the usage error is the JSON document.
  const asJson = cli(['scripts/restart-termserv.ts', '--emit', '--json=true']);
  assert.is(asJson.status, 2);
  assert.is((JSON.parse(asJson.stdout) as { status: string }).status, 'failed');
});

help('--emit with --json is refused by every script that prints PowerShell (exit 2, one JSON error, no script)', () => {
  const cases: string[][] = [
    ['inspect-server'], ['restart-termserv'], ['clear-machinekeys'], ['toggle-nla', 'disable'], ['prune-backups', '--older-than', '30', '--yes'],
    ['lower-mtu', '--interface', 'eth0', '--mtu', '1400'], ['disable-rdp-udp'], ['diagnose', '10.0.0.4'], ['run-recipe', 'azure-vm-cert', '--host', '10.0.0.4'],
  ];
  for (const [s, ...args] of cases) {
    const r = cli([`scripts/${s}.ts`, ...args, '--emit', '--json']);
    assert.is(r.status, 2, `${s}: ${r.stdout.slice(0, 200)}`);
    assert.not.match(r.stdout, /Assert-Rdp|\$P = /, `${s}: no script printed`);
    const doc = JSON.parse(r.stdout) as { status: string; summary: string };
    assert.is(doc.status, 'failed', s);
    assert.match(doc.summary, /--emit|--json/, s);
  }
});

help('a number option names the text typed: --parallel abc, --parallel \'\'', () => {
  for (const [args, typed] of [[['--parallel', 'abc'], 'abc'], [['--parallel', ''], ''], [['--parallel='], '']] as const) {
    const r = cli(['scripts/diagnose.ts', '--hosts', 'x.txt', ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, new RegExp(`invalid --parallel ${JSON.stringify(typed)}`));
  }
});

help('a positional that looks like a number stays as typed', () => {
  const r = cli(['scripts/probe-rdp.ts', '0x7f000001']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /0x7f000001/);
  assert.not.match(r.stderr, /2130706433/);
});

// Programs a script could reach to change or inspect something; each fake leaves a mark if run.
const REACHABLE = ['pwsh', 'powershell.exe', 'powershell', 'ssh', 'az', 'ip', 'ping', 'netsh', 'ifconfig', 'reg', 'icacls', 'tracepath', 'sudo'];

help('--emit runs nothing in any script: no channel, no ping, no ip; it only prints', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdpfix-emit-'));
  try {
    const marks = join(dir, 'marks');
    mkdirSync(marks);
    for (const p of REACHABLE) writeFileSync(join(dir, p), `#!/bin/sh\ntouch "${marks}/${p}"\nexit 0\n`, { mode: 0o755 });
    const env = { ...process.env, PATH: `${dir}:${process.env.PATH}`, RDPFIX_JOURNAL: join(dir, 'journal') };
    const cases: Array<[string[], number]> = [
      [['scripts/inspect-server.ts', '--emit', '--target', 'winrm://vm1'], 0],
      [['scripts/restart-termserv.ts', '--regenerate-cert', '--emit', '--target', 'ssh://admin@vm1'], 0],
      [['scripts/clear-machinekeys.ts', '--emit', '--target', 'azure://s/rg/vm'], 0],
      [['scripts/toggle-nla.ts', 'disable', '--for', '2h', '--emit', '--target', 'winrm://vm1'], 0],
      [['scripts/disable-rdp-udp.ts', '--emit'], 0],
      [['scripts/lower-mtu.ts', '--emit', '--interface', 'Wi-Fi', '--mtu', '1400'], 0],
      [['scripts/run-recipe.ts', 'azure-vm-cert', '--host', '10.0.0.4', '--target', 'winrm://vm1', '--emit', '--yes'], 0],
      [['scripts/undo.ts', '--last', '--emit'], 1],
    ];
    for (const [args, code] of cases) {
      const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env });
      assert.is(r.status, code, `${args.join(' ')}: ${r.stderr}`);
      if (code === 0) assert.match(r.stdout, /^# rdpfix /, args.join(' '));
      else assert.is(r.stdout, '', `${args.join(' ')} prints nothing when there is nothing to emit`);
      assert.equal(readdirSync(marks), [], `${args.join(' ')} ran a program`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

help('every script is in the README table', () => {
  // The markdown table under "## Scripts": one row per file in scripts/ (start.ts included), each
  // row's first cell naming `scripts/NAME.ts`. A mention elsewhere in the README does not count.
  const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n');
  const heading = lines.indexOf('## Scripts');
  assert.ok(heading >= 0, 'README has a "## Scripts" section');
  const next = lines.findIndex((l, i) => i > heading && /^#{1,2} /.test(l));
  const section = lines.slice(heading + 1, next < 0 ? undefined : next);
  const first = section.findIndex((l) => l.startsWith('|'));
  assert.ok(first >= 0, 'the "## Scripts" section has a table');
  const end = section.findIndex((l, i) => i > first && !l.startsWith('|'));
  const table = section.slice(first, end < 0 ? undefined : end);
  assert.ok(table.length >= 2 && /^\|(\s*:?-+:?\s*\|)+\s*$/.test(table[1]!), `the table has a header and a separator row: ${table[1]}`);
  const rows = table.slice(2).map((l) => l.split('|')[1]!.trim());
  const named = rows.map((cell) => {
    const m = /^`scripts\/([a-z0-9-]+\.ts)`$/.exec(cell);
    assert.ok(m, `a row's first cell names one script as \`scripts/NAME.ts\`: ${JSON.stringify(cell)}`);
    return m![1]!;
  });
  const all = readdirSync(join(root, 'scripts')).filter((f) => f.endsWith('.ts')).sort();
  for (const f of new Set(named)) assert.is(named.filter((n) => n === f).length, 1, `one row for scripts/${f}`);
  assert.equal([...named].sort(), all, 'the rows name exactly the scripts in scripts/');
});

// ---

const start = suite('npm start');

start('start.ts runs and exits 0', () => {
  const r = cli(['scripts/start.ts']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(r.stdout.length > 0);
});

help.run();
start.run();
