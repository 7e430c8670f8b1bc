import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pwshGate, runPwsh } from '../helpers/pwsh.ts';
import { buildScript, extractResult, psQuote, psUnquote, psValue, RESULT_BEGIN, RESULT_END } from '../../scripts/lib/ps.ts';
import { parseProblems, psParser, walk } from '../helpers/powershell.ts';

// Deterministic PRNG so a failure is reproducible from the printed index.
function rng(seed: number) {
  return () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
}

const NASTY = ["'", '\u2018', '\u2019', '\u201a', '\u201b', '"', '\u201c', '\u201d', '`', '$', '$(', ')', '${', '}', ';', '|', '&', '\n', '\r\n', '#', '<#', '#>', '@', "@'", "'@", '\t', ' ', '-', '--%', 'Invoke-Evil', '\u0085', '\u2028', '\ufeff', '\\'];

function fuzzString(r: () => number, i: number): string {
  if (i % 2500 === 7) return ("x'\u2019$(evil)`;|\n").repeat(Math.ceil(65536 / 14)).slice(0, 65536); // 64 KiB
  const n = Math.floor(r() * 40);
  let s = '';
  for (let k = 0; k < n; k++) {
    const pick = r();
    if (pick < 0.5) s += NASTY[Math.floor(r() * NASTY.length)];
    else if (pick < 0.8) s += String.fromCharCode(32 + Math.floor(r() * 95));
    else {
      // Random Unicode scalar (skip lone surrogates: they are not valid in a UTF-8 script file).
      let cp = Math.floor(r() * 0x10ffff);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x4e2d;
      s += String.fromCodePoint(cp);
    }
  }
  // One case in fifty carries a NUL, which must be rejected rather than emitted.
  if (i % 50 === 3) s = s.slice(0, n >> 1) + '\0' + s.slice(n >> 1);
  return s;
}

const quote = suite('psQuote');

quote('fuzz: 10,000 hostile strings each parse as exactly one string literal with the same value', async () => {
  const parser = await psParser();
  const r = rng(0x904);
  let rejected = 0;
  for (let i = 0; i < 10_000; i++) {
    const input = fuzzString(r, i);
    if (input.includes('\0')) {
      // Rejected, never emitted: NUL would end the script text early.
      assert.throws(() => psQuote(input), /NUL/);
      rejected++;
      continue;
    }
    const literal = psQuote(input);
    // PowerShell's own rule: five quote characters, doubled = one, lone = end of string.
    assert.is(psUnquote(literal), input, `case ${i}: decode by PowerShell's rule`);
    const script = `Write-Output ${literal}`;
    const tree = parser.parse(script)!;
    const strings = [...walk(tree.rootNode)].filter((n) => n.type === 'string_literal');
    const ok = !tree.rootNode.hasError && strings.length === 1 && strings[0]!.text === literal;
    tree.delete();
    if (!ok) assert.unreachable(`case ${i}: ${JSON.stringify(input).slice(0, 200)} did not parse as one literal`);
  }
  // Most cases must really be parsed, not waved through as rejections.
  assert.is(rejected, 200, 'only the NUL cases are rejected');
});

quote('doubles all five single-quote characters', () => {
  assert.is(psQuote("a'b"), "'a''b'");
  assert.is(psQuote('\u2018\u2019\u201a\u201b'), "'\u2018\u2018\u2019\u2019\u201a\u201a\u201b\u201b'");
  assert.is(psQuote(''), "''");
  assert.is(psQuote('$(Remove-Item C:\\)'), "'$(Remove-Item C:\\)'");
});

quote('psUnquote rejects a literal that a smart quote would end early', () => {
  // tree-sitter does not end strings at U+2019, real PowerShell does: this is the injection the
  // decoder exists to catch.
  assert.is(psUnquote("'x\u2019; Invoke-Evil; \u2019y'"), null);
  assert.is(psUnquote("'unterminated"), null);
  assert.is(psUnquote("'a''b'"), "a'b");
});

// ---

const value = suite('psValue');

value('renders scalars, arrays and ordered hashtables', () => {
  assert.is(psValue(null), '$null');
  assert.is(psValue(true), '$true');
  assert.is(psValue(1400), '1400');
  assert.is(psValue(['a', 1]), "@('a', 1)");
  assert.is(psValue({ "k'": "v'" }), "[ordered]@{ 'k''' = 'v''' }");
});

value('refuses NaN and Infinity', () => {
  assert.throws(() => psValue(NaN));
  assert.throws(() => psValue(Infinity));
});

// ---

const build = suite('buildScript');

build('a built script parses cleanly and carries hostile parameters only as literals', async () => {
  const script = buildScript({
    name: 'demo',
    summary: 'demo\nwith newline',
    params: { Name: "x'; Remove-Item -Recurse C:\\ #", DryRun: true, Mtu: 1400 },
    body: "$Result = [ordered]@{ step = 'demo'; status = 'ok'; name = $P.Name }",
  });
  assert.equal(await parseProblems(script), []);
  assert.ok(script.includes("$ErrorActionPreference = 'Stop'"));
  assert.ok(script.includes('Set-StrictMode -Version Latest'));
  assert.ok(script.includes("Name = 'x''; Remove-Item -Recurse C:\\ #'"));
  assert.ok(script.includes(`Write-Output '${RESULT_END}'`));
});

build('a pasted script ends by saying where its backup is and the exact command that restores it', () => {
  if (!pwshGate('buildScript epilogue under pwsh')) return;
  const script = buildScript({
    name: 'demo',
    summary: 'demo',
    params: {},
    body: "$Result.status = 'changed'\n$Result.backup = 'C:\\ProgramData\\rdpfix\\backup\\1'\n$Result.restore = @('reg import \"C:\\b\\a.reg\"', 'icacls C:\\x /restore C:\\b\\x.acl')",
  });
  const r = runPwsh(script);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(extractResult(r.stdout), { step: 'demo', status: 'changed', backup: 'C:\\ProgramData\\rdpfix\\backup\\1', restore: ['reg import "C:\\b\\a.reg"', 'icacls C:\\x /restore C:\\b\\x.acl'] });
  assert.equal(lines.slice(-3), [
    'rdpfix: backup on this server: C:\\ProgramData\\rdpfix\\backup\\1',
    'rdpfix: to restore it, run: reg import "C:\\b\\a.reg"',
    'rdpfix: to restore it, run: icacls C:\\x /restore C:\\b\\x.acl',
  ]);
});

build('a script that backed nothing up ends with its result and prints no restore line', () => {
  if (!pwshGate('buildScript epilogue under pwsh')) return;
  const r = runPwsh(buildScript({ name: 'demo', summary: 'demo', params: {}, body: "$Result.status = 'ok'" }));
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trimEnd().split('\n').at(-1), RESULT_END);
  assert.not.match(r.stdout, /rdpfix: /);
});

build('rejects parameter names that are not plain identifiers', () => {
  assert.throws(() => buildScript({ name: 'x', summary: 's', params: { 'a;b': 1 }, body: '' }));
});

// ---

const extract = suite('extractResult');

extract('finds the JSON between the markers in noisy output', () => {
  const noisy = `Windows PowerShell\r\nCopyright (C) Microsoft\r\nWARNING: something\r\n#< CLIXML\r\n${RESULT_BEGIN}\r\n{"status":"ok","n":1}\r\n${RESULT_END}\r\n[stderr]\r\n`;
  assert.equal(extractResult(noisy), { status: 'ok', n: 1 });
});

extract('takes the last result when a script printed the markers twice', () => {
  const out = `${RESULT_BEGIN}\n{"n":1}\n${RESULT_END}\n${RESULT_BEGIN}\n{"n":2}\n${RESULT_END}\n`;
  assert.equal(extractResult(out), { n: 2 });
});

extract('says the output was cut off when no end marker is present', () => {
  assert.throws(() => extractResult(`${RESULT_BEGIN}\n{"n":1`), /cut off/);
});

quote.run();
value.run();
build.run();
extract.run();
