import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzString as hostile, rng } from '../helpers/fuzz.ts';
import { pwshGate, runPwsh } from '../helpers/pwsh.ts';
import { buildScript, extractResult, psQuote, psUnquote, psValue, RESULT_BEGIN, RESULT_END } from '../../scripts/lib/ps.ts';
import type { PsExample, PsValue } from '../../scripts/lib/ps.ts';
import { parseProblems, psParser, walk } from '../helpers/powershell.ts';

const quote = suite('psQuote');

quote('fuzz: 10,000 hostile strings each parse as exactly one string literal with the same value', async () => {
  const parser = await psParser();
  const r = rng(0x904);
  let rejected = 0;
  for (let i = 0; i < 10_000; i++) {
    const input = hostile(r, i, { nul: true });
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

build('the header of a step that changes nothing says so instead of pointing at a backup', async () => {
  const base = { name: 'demo', summary: 'demo', params: {}, body: "$Result.status = 'ok'" };
  const changing = buildScript(base);
  assert.match(changing, /^# A change made by running this script yourself is not in your workstation's rdpfix journal/m);
  const reading = buildScript({ ...base, readOnly: 'It changes nothing:\nit only reads.' });
  assert.not.match(reading, /rdpfix journal|where the backup is/);
  assert.match(reading, /^# It changes nothing: it only reads\.$/m);
  assert.equal(await parseProblems(reading), []);
  const dry = buildScript({ ...base, params: { DryRun: true } });
  assert.match(dry, /^# A dry run: it changes nothing and reports what it would change\.$/m);
  assert.not.match(dry, /where the backup is/);
});

build('rejects parameter names that are not plain identifiers', () => {
  assert.throws(() => buildScript({ name: 'x', summary: 's', params: { 'a;b': 1 }, body: '' }));
});

// ---

const ascii = suite('pure ASCII');

/** Values Windows PowerShell 5.1 would mangle in a .ps1 saved without a byte-order mark. */
const HOSTILE = {
  Adapter: 'Conexi\u00f3n de \u00e1rea local',
  Path: 'C:\\Users\\\u00c4rger\\it\u2019s $(calc) `x \'q\'',
  Umlaut: '\u00c4',
  Emoji: 'fix \u{1f525} now',
  Quote: '\u2019',
  Mark: '\u200e',
  Mixed: "x'\u2019; Invoke-Evil; \u2019y\r\n\u0085\u2028\ufeff",
  Plain: "a'b $(c)",
  List: ['\u00e9', 'plain', '\u{1f600}\u{1f600}', ''],
  Table: { name: 'Ethernet \u00d8', nested: { v: '\u4e2d\u6587' }, n: 3, off: false, none: null },
} satisfies Record<string, PsValue>;

/** The first byte of the UTF-8 text that is not ASCII, or -1. */
function firstNonAscii(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! > 0x7f) return i;
  return -1;
}

async function allExamples(): Promise<Array<{ name: string; ex: PsExample }>> {
  const dir = fileURLToPath(new URL('../examples', import.meta.url));
  const out: Array<{ name: string; ex: PsExample }> = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()) {
    const mod = (await import(join(dir, f))) as { examples: () => PsExample[] | Promise<PsExample[]> };
    for (const ex of await mod.examples()) out.push({ name: `${f.replace(/\.ts$/, '')}/${ex.label}`, ex });
  }
  return out;
}

ascii('every example script in test/examples is pure ASCII, byte by byte', async () => {
  const all = await allExamples();
  assert.ok(all.length >= 20, `only ${all.length} examples found`);
  for (const { name, ex } of all) assert.is(firstNonAscii(ex.script), -1, `${name}: non-ASCII byte`);
});

ascii('a built script with non-ASCII values is pure ASCII and parses cleanly', async () => {
  const script = buildScript({ name: 'demo', summary: 'demo', params: { ...HOSTILE, DryRun: false }, body: "$Result.status = 'ok'" });
  assert.is(firstNonAscii(script), -1);
  assert.equal(await parseProblems(script), []);
  // Each non-ASCII value is a decoding expression, each ASCII one the same literal as before.
  assert.ok(script.includes("    Umlaut = ([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('w4Q=')))"));
  assert.ok(script.includes(`    Plain = ${psQuote("a'b $(c)")}`));
});

ascii('psValue: an ASCII string is exactly its psQuote literal; a non-ASCII one decodes base64 of UTF-8', () => {
  for (const v of ["a'b", '', '$(x) `y', 'C:\\ProgramData\\rdpfix']) assert.is(psValue(v), psQuote(v));
  const expr = psValue('Conexi\u00f3n');
  assert.is(firstNonAscii(expr), -1);
  const b64 = /FromBase64String\('([A-Za-z0-9+/=]+)'\)/.exec(expr)?.[1];
  assert.ok(b64, expr);
  assert.is(Buffer.from(b64!, 'base64').toString('utf8'), 'Conexi\u00f3n');
  assert.is(psValue(['\u00c4', 'a']), `@(${psValue('\u00c4')}, 'a')`);
  assert.is(psValue({ k: '\u00c4' }), `[ordered]@{ 'k' = ${psValue('\u00c4')} }`);
});

ascii('psValue refuses a non-ASCII key, a lone surrogate and NUL (in both kinds of string)', () => {
  assert.throws(() => psValue({ '\u00c4': 1 }), /key must be ASCII/);
  assert.throws(() => psValue('a\ud800b'), /lone surrogate/);
  assert.throws(() => psValue('\udc00'), /lone surrogate/);
  assert.throws(() => psValue('\u00e9\0'), /NUL/);
  assert.throws(() => psValue('e\0'), /NUL/);
});

ascii('buildScript refuses non-ASCII text of its own (body, summary), naming the character', () => {
  assert.throws(() => buildScript({ name: 'demo', summary: 'a \u2014 b', params: {}, body: '' }), /not pure ASCII: U\+2014 on line 1/);
  assert.throws(() => buildScript({ name: 'demo', summary: 's', params: {}, body: "# caf\u00e9\n$Result.status = 'ok'" }), /U\+00E9/);
});

ascii('under pwsh, a built script returns its non-ASCII $P values exactly', () => {
  if (!pwshGate('non-ASCII $P values under pwsh')) return;
  const script = buildScript({
    name: 'demo',
    summary: 'demo',
    params: HOSTILE,
    body: "$Result.status = 'ok'\n$Result.values = $P",
  });
  assert.is(firstNonAscii(script), -1);
  const r = runPwsh(script);
  assert.is(r.code, 0, r.stderr);
  assert.equal(extractResult(r.stdout), { step: 'demo', status: 'ok', values: HOSTILE });
});

ascii('under pwsh, 10,000 fuzzed strings through psValue decode back exactly', () => {
  if (!pwshGate('psValue fuzz under pwsh')) return;
  const r0 = rng(0x7);
  const inputs: string[] = [];
  for (let i = 0; i < 10_000; i++) inputs.push(hostile(r0, i));
  const script = buildScript({ name: 'demo', summary: 'demo', params: { Values: inputs }, body: "$Result.status = 'ok'\n$Result.values = $P.Values" });
  assert.is(firstNonAscii(script), -1);
  assert.ok(inputs.filter((s) => /[^\x00-\x7f]/.test(s)).length > 1000, 'many cases take the base64 path');
  const r = runPwsh(script, 120_000);
  assert.is(r.code, 0, r.stderr);
  const got = extractResult<{ values: string[] }>(r.stdout).values;
  assert.is(got.length, inputs.length);
  for (let i = 0; i < inputs.length; i++) if (got[i] !== inputs[i]) assert.unreachable(`case ${i}: ${JSON.stringify(inputs[i]).slice(0, 200)} came back as ${JSON.stringify(got[i]).slice(0, 200)}`);
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
ascii.run();
extract.run();
