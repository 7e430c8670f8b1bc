// PowerShell's own parser ([System.Management.Automation.Language.Parser]::ParseInput, pwsh 7.6)
// on everything rdpfix generates, and on the quoting fuzz. Unlike tree-sitter (test/lib/ps.test.ts,
// kept for machines without pwsh) this parser ends a verbatim string at U+2018..U+201B as Windows
// PowerShell does. Gated by test/helpers/pwsh.ts: one skip line without pwsh, a failure in CI.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzString, rng } from './helpers/fuzz.ts';
import { psQuote } from '../scripts/lib/ps.ts';
import { pwshGate } from './helpers/pwsh.ts';
import { exampleScripts, psFiles, recipeScripts, runPwshOver } from './helpers/ps-corpus.ts';

const PARSE_ALL = `
foreach ($F in $Files) {
    $Text = [System.IO.File]::ReadAllText($F.path, [System.Text.Encoding]::UTF8)
    $Tokens = $null; $Errors = $null
    $null = [System.Management.Automation.Language.Parser]::ParseInput($Text, [ref]$Tokens, [ref]$Errors)
    [ordered]@{
        label = $F.label
        chars = $Text.Length
        errors = @($Errors | ForEach-Object { 'line {0}: {1} ({2})' -f $_.Extent.StartLineNumber, $_.Message, $_.ErrorId })
    }
}
`;

const generated = suite('PowerShell parser: every generated script');

generated('every example, every pasted recipe stage and every scripts/ps file parses without error', async () => {
  if (!pwshGate('PowerShell parser on the generated scripts')) return;
  const examples = await exampleScripts();
  const recipes = await recipeScripts();
  const files = psFiles();
  // The corpus is real: every example module contributes, the shipped recipes emit, the files exist.
  assert.ok(examples.length >= 30, `examples: ${examples.length}`);
  assert.ok(recipes.scripts.some((s) => s.label === 'recipe azure-vm-cert stage 1'), 'azure-vm-cert stage 1 is emitted');
  assert.ok(files.length >= 10, `scripts/ps files: ${files.length}`);
  const all = [...examples, ...recipes.scripts, ...files];
  const t0 = Date.now();
  const results = [runPwshOver<Array<{ label: string; chars: number; errors: string[] }>>(all, `@(${PARSE_ALL}) | ConvertTo-Json -Depth 4 -Compress`)].flat();
  console.log(`  parsed ${all.length} scripts (${examples.length} examples, ${recipes.scripts.length} recipe stages, ${files.length} .ps1 files) in one pwsh run, ${Date.now() - t0} ms; recipes refused by --emit: ${recipes.refused.length ? recipes.refused.join('; ') : 'none'}`);
  assert.equal(results.map((r) => r.label), all.map((s) => s.label), 'one result per script, in order');
  results.forEach((r, i) => assert.is(r.chars, all[i]!.text.length, `${r.label}: pwsh read the whole text`));
  const bad = results.filter((r) => r.errors.length).map((r) => `${r.label}:\n    ${r.errors.join('\n    ')}`);
  assert.equal(bad, [], `parse errors:\n${bad.join('\n')}`);
});

generated('the parse check can fail: a broken script is reported with its error', () => {
  if (!pwshGate('PowerShell parser self-test')) return;
  const results = [runPwshOver<Array<{ label: string; errors: string[] }>>(
    [
      { label: 'good', text: "function Get-X {\n    'x'\n}\n" },
      { label: 'smart-quote-ends-string', text: "Write-Output 'a\u2019 b'\n" },
      { label: 'unclosed', text: 'function Get-X {\n    if ($true) {\n' },
    ],
    `@(${PARSE_ALL}) | ConvertTo-Json -Depth 4 -Compress`,
  )].flat();
  assert.equal(results[0]!.errors, []);
  assert.ok(results[1]!.errors.length > 0, 'U+2019 ends the verbatim string, the rest does not parse');
  assert.ok(results[2]!.errors.length > 0, 'missing closing braces are errors');
});

generated.run();

// --- The quoting fuzz under the real parser ---

const fuzz = suite('PowerShell parser: psQuote fuzz');

fuzz('10,000 hostile strings: each quoted literal is exactly one single-quoted string whose value is the input', () => {
  if (!pwshGate('PowerShell parser on the psQuote fuzz')) return;
  const r = rng(0x904);
  const inputs = Array.from({ length: 10_000 }, (_, i) => fuzzString(r, i));
  assert.ok(inputs.every((s) => !s.includes('\0')));
  // One line of base64 (UTF-8) per literal: the transport cannot bend a newline or a quote.
  const b64 = inputs.map((s) => Buffer.from(psQuote(s), 'utf8').toString('base64')).join('\n');
  const t0 = Date.now();
  const out = runPwshOver<string[]>([{ label: 'literals', text: b64 }], `
$Utf8 = New-Object System.Text.UTF8Encoding($false)
$Lines = [System.IO.File]::ReadAllText($Files[0].path, $Utf8) -split "\`n"
$Out = New-Object System.Collections.Generic.List[string]
foreach ($Line in $Lines) {
    $Literal = $Utf8.GetString([System.Convert]::FromBase64String($Line))
    $Tokens = $null; $Errors = $null
    $Ast = [System.Management.Automation.Language.Parser]::ParseInput($Literal, [ref]$Tokens, [ref]$Errors)
    $Problem = ''
    $Statements = @($Ast.EndBlock.Statements)
    $Str = $null
    if ($Errors.Count -gt 0) { $Problem = 'parse error: ' + $Errors[0].Message }
    elseif ($Tokens.Count -ne 2 -or $Tokens[0].Kind -ne 'StringLiteral') { $Problem = 'tokens: ' + (($Tokens | ForEach-Object { $_.Kind }) -join ' ') }
    elseif ($Statements.Count -ne 1 -or @($Statements[0].PipelineElements).Count -ne 1) { $Problem = 'not one expression' }
    else {
        $Str = $Statements[0].PipelineElements[0].Expression
        if ($Str -isnot [System.Management.Automation.Language.StringConstantExpressionAst] -or $Str.StringConstantType -ne 'SingleQuoted') { $Problem = 'not a single-quoted constant: ' + $Str.GetType().Name }
        elseif ($Str.Extent.Text -cne $Literal) { $Problem = 'the literal is not the whole text' }
    }
    if ($Problem) { $Out.Add('!' + $Problem) } else { $Out.Add([System.Convert]::ToBase64String($Utf8.GetBytes($Str.Value))) }
}
ConvertTo-Json -InputObject $Out.ToArray() -Compress
`);
  console.log(`  pwsh parsed ${inputs.length} literals (${b64.length} bytes of base64) in ${Date.now() - t0} ms`);
  assert.is(out.length, inputs.length, 'one answer per literal');
  for (let i = 0; i < inputs.length; i++) {
    const a = out[i]!;
    if (a.startsWith('!')) assert.unreachable(`case ${i}: ${JSON.stringify(inputs[i]).slice(0, 200)}: ${a.slice(1)}`);
    const value = Buffer.from(a, 'base64').toString('utf8');
    if (value !== inputs[i]) assert.unreachable(`case ${i}: value ${JSON.stringify(value).slice(0, 200)} != input ${JSON.stringify(inputs[i]).slice(0, 200)}`);
  }
});

fuzz('the fuzz check can fail: a literal with an undoubled U+2019 is not one string', () => {
  if (!pwshGate('PowerShell parser fuzz self-test')) return;
  const out = runPwshOver<Array<{ n: number; errors: number; value: string }>>([{ label: 'x', text: "'a\u2019; Invoke-Evil; \u2019b'" }], `
$T = [System.IO.File]::ReadAllText($Files[0].path, [System.Text.Encoding]::UTF8)
$Tk = $null; $E = $null
$Ast = [System.Management.Automation.Language.Parser]::ParseInput($T, [ref]$Tk, [ref]$E)
$S = @($Ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.StringConstantExpressionAst] }, $true))
ConvertTo-Json -Compress -InputObject @([ordered]@{ n = @($Ast.EndBlock.Statements).Count; errors = $E.Count; value = $S[0].Value })
`);
  const r = [out].flat()[0]!;
  assert.is(r.value, 'a', 'U+2019 ends the literal');
  assert.ok(r.n > 1, 'the injected command is a statement of its own');
});

fuzz.run();
