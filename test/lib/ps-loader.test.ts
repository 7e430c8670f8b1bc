// The loader of scripts/ps/*.ps1: functions split exactly as PowerShell's own parser sees them,
// requirements first and once, only what the entry reaches, every function included verbatim.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePsFile, PS_DIR, psCall, psStep, psStepParts, reachableFunctions, readPsFile, resolvePsFiles, type PsFile } from '../../scripts/lib/ps-loader.ts';
import { pwshGate, runPwsh } from '../helpers/pwsh.ts';

const file = (name: string, text: string): PsFile => parsePsFile(name, text);

const split = suite('parsePsFile');

split('functions end at the first column-0 "}" outside a here-string; comments and requires are kept apart', () => {
  const f = file('demo', `# demo.ps1: a demo\n# requires: a, b\n\nfunction Get-RdpA {\n    $s = @'\n}\n'@\n    Get-RdpB\n}\n\n# between\nfunction Get-RdpB {\n    1\n}\n`);
  assert.equal(f.requires, ['a', 'b']);
  assert.equal(f.functions.map((x) => x.name), ['Get-RdpA', 'Get-RdpB']);
  assert.is(f.functions[0]!.text, `function Get-RdpA {\n    $s = @'\n}\n'@\n    Get-RdpB\n}`);
});

split('code at the top level, or a function without its closing brace, is refused with file:line', () => {
  assert.throws(() => file('bad', 'function Get-RdpA {\n}\nRemove-Item x\n'), /bad\.ps1:3: only functions/);
  assert.throws(() => file('open', 'function Get-RdpA {\n    1\n'), /open\.ps1: function Get-RdpA has no closing/);
});

const resolve = suite('requirements and reachability');

resolve('a file comes after the files it requires, each once; a circle is refused', () => {
  const order = resolvePsFiles(['backup', 'facts']).map((f) => f.name);
  assert.ok(order.indexOf('native') < order.indexOf('backup'));
  assert.ok(order.indexOf('registry') < order.indexOf('facts'));
  assert.is(new Set(order).size, order.length);
});

resolve('only the functions the entry reaches are included, in file order; unknown and duplicate names are errors', () => {
  const a = file('a', 'function Get-RdpOne {\n    get-rdptwo\n}\n\nfunction Get-RdpTwo {\n    2\n}\n\nfunction Get-RdpUnused {\n    3\n}\n');
  assert.equal(reachableFunctions([a], ['Get-RdpOne']).map((f) => f.name), ['Get-RdpOne', 'Get-RdpTwo']);
  assert.equal(reachableFunctions([a], ['Get-RdpTwo']).map((f) => f.name), ['Get-RdpTwo']);
  assert.throws(() => reachableFunctions([a], ['Get-RdpNone']), /no PowerShell function Get-RdpNone/);
  const b = file('b', 'function Get-RdpTwo {\n    0\n}\n');
  assert.throws(() => reachableFunctions([a, b], ['Get-RdpOne']), /Get-RdpTwo is defined in a\.ps1 and in b\.ps1/);
});

resolve('the call passes every $P value by name and DryRun as -WhatIf: no value is written into it', () => {
  assert.is(psCall('Restart-RdpService', { TimeoutSeconds: 60, OnlyThumbprint: "x'; calc", RemoveKey: false, DryRun: true }), '$Result = Restart-RdpService -TimeoutSeconds $P.TimeoutSeconds -OnlyThumbprint $P.OnlyThumbprint -RemoveKey:$P.RemoveKey -WhatIf:$P.DryRun');
});

resolve('a step script carries each included function byte for byte as it stands in its file', () => {
  const spec = { name: 'demo', summary: 'demo', file: 'facts', entry: 'Get-RdpPort', params: {} };
  const script = psStep(spec);
  const parts = psStepParts(spec);
  assert.equal(parts.functions.map((f) => f.name), ['Assert-RdpHost', 'Get-RdpRegistryValue', 'Get-RdpPort']);
  for (const fn of parts.functions) assert.ok(script.includes(`\n${fn.text}\n`), fn.name);
  // The host check comes first: on anything but an elevated Windows PowerShell the one result says why.
  assert.ok(script.includes('\n    Assert-RdpHost -Elevated\n$Result = Get-RdpPort\n') || script.includes('\nAssert-RdpHost -Elevated\n$Result = Get-RdpPort\n'));
  assert.ok(psStep({ ...spec, elevated: false }).includes('\nAssert-RdpHost\n$Result = Get-RdpPort\n'), 'a read-only step checks only for Windows');
});

const files = suite('scripts/ps/*.ps1');
const names = readdirSync(PS_DIR).filter((f) => f.endsWith('.ps1')).map((f) => f.replace(/\.ps1$/, ''));

files('every file loads, names only files that exist, and defines each function once across all files', () => {
  assert.ok(names.length > 0);
  const all = resolvePsFiles(names);
  for (const f of all) for (const r of f.requires) assert.ok(names.includes(r), `${f.name}.ps1 requires ${r}, which does not exist`);
  reachableFunctions(all, all.flatMap((f) => f.functions.map((fn) => fn.name)));
});

// PowerShell's own parser is the judge of the file format the loader relies on.
const AST = `param([string]$Dir)
$out = foreach ($f in Get-ChildItem -LiteralPath $Dir -Filter '*.ps1') {
    $tokens = $null; $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseFile($f.FullName, [ref]$tokens, [ref]$errors)
    [ordered]@{
        file = $f.BaseName
        errors = @($errors | ForEach-Object { '{0}: {1}' -f $_.Extent.StartLineNumber, $_.Message })
        statements = @($ast.EndBlock.Statements | ForEach-Object {
            [ordered]@{ type = $_.GetType().Name; name = $(if ($_ -is [System.Management.Automation.Language.FunctionDefinitionAst]) { $_.Name } else { '' }); text = $_.Extent.Text }
        })
        begin = ($null -ne $ast.BeginBlock); params = ($null -ne $ast.ParamBlock)
    }
}
$out | ConvertTo-Json -Depth 5 -Compress`;

files('PowerShell parses every file without error, sees only function definitions, and splits them as the loader does', () => {
  if (!pwshGate('scripts/ps format under PowerShell\'s parser')) return;
  const r = runPwsh(AST.replace('param([string]$Dir)', `$Dir = '${PS_DIR.replace(/'/g, "''")}'`));
  assert.is(r.code, 0, r.stderr);
  const parsed = [JSON.parse(r.stdout)].flat() as Array<{ file: string; errors: string[]; statements: Array<{ type: string; name: string; text: string }>; begin: boolean; params: boolean }>;
  assert.equal(parsed.map((p) => p.file).sort(), [...names].sort());
  for (const p of parsed) {
    assert.equal(p.errors, [], `${p.file}.ps1 parses`);
    assert.not.ok(p.begin || p.params, `${p.file}.ps1 has no param or begin block`);
    assert.equal(p.statements.map((s) => s.type), p.statements.map(() => 'FunctionDefinitionAst'), `${p.file}.ps1 holds only functions`);
    const loaded = readPsFile(p.file);
    assert.equal(loaded.functions.map((f) => f.name), p.statements.map((s) => s.name), `${p.file}.ps1 function names`);
    loaded.functions.forEach((f, i) => assert.is(f.text.replace(/\r\n/g, '\n'), p.statements[i]!.text.replace(/\r\n/g, '\n'), `${p.file}.ps1 ${f.name} text`));
  }
});

files('result.ps1 ends a step as written once for all: changed, failed with problems, failed with the message', () => {
  if (!pwshGate('result.ps1 under pwsh')) return;
  const script = `${readPsFile('result').functions.map((f) => f.text).join('\n\n')}
$a = [ordered]@{ status = 'ok'; problems = @() }; Set-RdpStepOutcome -Result $a
$b = [ordered]@{ status = 'ok'; problems = @('x did not read back') }; Set-RdpStepOutcome -Result $b
$c = [ordered]@{ status = 'ok'; done = 1 }; try { throw 'disk full' } catch { Set-RdpStepFailure -Result $c -ErrorRecord $_ }
@($a, $b, $c) | ConvertTo-Json -Compress`;
  const r = runPwsh(script);
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), [
    { status: 'changed', problems: [] },
    { status: 'failed', problems: ['x did not read back'] },
    { status: 'failed', done: 1, error: 'disk full' },
  ]);
});

files('each file is plain ASCII so Windows PowerShell 5.1 reads it right without a byte-order mark', () => {
  for (const n of names) {
    const bytes = readFileSync(join(PS_DIR, `${n}.ps1`));
    const bad = bytes.findIndex((b) => b > 0x7e || (b < 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09));
    assert.is(bad, -1, `${n}.ps1 byte ${bad}`);
  }
});

split.run();
resolve.run();
files.run();
