// Windows PowerShell 5.1 is the target (every supported Windows Server ships it; Azure Run Command
// and `powershell -EncodedCommand` use it), but the tests run pwsh 7.6, which accepts more. This
// test walks PowerShell's own AST of every scripts/ps/*.ps1 file, every example of
// test/examples/*.ts and every pasted recipe stage, and rejects the syntax and the parameters 5.1
// does not have. Gated by test/helpers/pwsh.ts: one skip line without pwsh, a failure in CI.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pwshGate } from './helpers/pwsh.ts';
import { exampleScripts, psFiles, recipeScripts, runPwshOver, type PsText } from './helpers/ps-corpus.ts';

// Each rule: one construct 5.1 lacks. The driver prints, per script, its parse errors and each
// finding as "rule line N: text".
const CHECK_51 = String.raw`
$BT = [string][char]96
$NL = [string][char]10
# Parameters 5.1 does not have: command (aliases resolved below), parameter, shortest prefix PowerShell
# would accept for it. '*' = any command.
$BadParams = @(
    @('ForEach-Object', 'Parallel', 3), @('ForEach-Object', 'ThrottleLimit', 2), @('ForEach-Object', 'AsJob', 3),
    @('ConvertFrom-Json', 'AsHashtable', 3), @('ConvertFrom-Json', 'Depth', 1), @('ConvertFrom-Json', 'NoEnumerate', 3),
    @('ConvertTo-Json', 'AsArray', 3), @('ConvertTo-Json', 'EnumsAsStrings', 2), @('ConvertTo-Json', 'EscapeHandling', 2),
    @('*', 'AsByteStream', 3), @('*', 'SkipCertificateCheck', 5), @('*', 'SkipHttpErrorCheck', 5),
    @('*', 'SkipHeaderValidation', 5), @('*', 'SslProtocol', 2), @('*', 'StatusCodeVariable', 3),
    @('*', 'ResponseHeadersVariable', 3),
    @('Get-Date', 'AsUTC', 3), @('Get-Date', 'UnixTimeSeconds', 2),
    @('Split-Path', 'LeafBase', 5), @('Split-Path', 'Extension', 2),
    @('Test-Connection', 'TargetName', 2), @('Test-Connection', 'TcpPort', 2),
    @('Start-Process', 'Environment', 3), @('Select-String', 'Raw', 2), @('Select-String', 'NoEmphasis', 3)
)
# Cmdlets that are not in Windows PowerShell 5.1.
$BadCommands = @('Join-String', 'Get-Error', 'Test-Json', 'ConvertFrom-Markdown', 'Show-Markdown', 'Get-MarkdownOption',
    'Set-MarkdownOption', 'Get-Uptime', 'Remove-Alias', 'Remove-Service', 'ConvertTo-CliXml', 'ConvertFrom-CliXml',
    'Get-PSSubsystem', 'Enable-ExperimentalFeature', 'Disable-ExperimentalFeature', 'Get-ExperimentalFeature')
# -Encoding values 5.1 does not know (it has Unicode, UTF7, UTF8 (with BOM), UTF32, ASCII, BigEndianUnicode,
# Default, OEM, String, Unknown, Byte).
$BadEncodings = @('utf8NoBOM', 'utf8BOM', 'ansi', 'latin1', 'bigendianutf32')
# Automatic variables that do not exist in 5.1: under Set-StrictMode -Version Latest reading one throws.
$BadVariables = @('IsWindows', 'IsLinux', 'IsMacOS', 'IsCoreCLR', 'PSStyle')
$Aliases = @{ '%' = 'ForEach-Object'; 'foreach' = 'ForEach-Object'; 'ft' = 'Format-Table'; 'sls' = 'Select-String' }

function Get-Finding51 {
    param($Ast)
    $Found = New-Object System.Collections.Generic.List[string]
    $Add = { param($Rule, $Node) $Found.Add(('{0} line {1}: {2}' -f $Rule, $Node.Extent.StartLineNumber, (($Node.Extent.Text -split $NL)[0]).Trim())) }
    foreach ($N in $Ast.FindAll({ $true }, $true)) {
        $T = $N.GetType().Name
        switch ($T) {
            'TernaryExpressionAst' { & $Add 'ternary ?:' $N }
            'PipelineChainAst' { & $Add ('pipeline chain ' + $N.Operator) $N }
            'BinaryExpressionAst' { if ("$($N.Operator)" -eq 'QuestionQuestion') { & $Add 'null-coalescing ??' $N } }
            'AssignmentStatementAst' { if ("$($N.Operator)" -eq 'QuestionQuestionEquals') { & $Add 'null-coalescing assignment ??=' $N } }
            'MemberExpressionAst' { if ($N.NullConditional) { & $Add 'null-conditional ?.' $N } }
            'InvokeMemberExpressionAst' { if ($N.NullConditional) { & $Add 'null-conditional ?.' $N } }
            'IndexExpressionAst' { if ($N.NullConditional) { & $Add 'null-conditional ?[]' $N } }
            'ScriptBlockAst' { if ($null -ne $N.CleanBlock) { & $Add 'clean block' $N.CleanBlock } }
            'PipelineAst' { if ($N.Background) { & $Add 'background operator &' $N } }
            'VariableExpressionAst' { if ($BadVariables -contains $N.VariablePath.UserPath) { & $Add ('automatic variable $' + $N.VariablePath.UserPath + ' (not in 5.1)') $N } }
            'ExpandableStringExpressionAst' { if ($N.Extent.Text.Contains($BT + 'u{')) { & $Add ('unicode escape ' + $BT + 'u{}') $N } }
            'StringConstantExpressionAst' {
                if ("$($N.StringConstantType)" -like 'DoubleQuoted*' -and $N.Extent.Text.Contains($BT + 'u{')) { & $Add ('unicode escape ' + $BT + 'u{}') $N }
            }
            'CommandAst' {
                $Name = $N.GetCommandName()
                if ($null -eq $Name) { break }
                if ($Aliases.ContainsKey($Name)) { $Name = $Aliases[$Name] }
                if ($BadCommands -contains $Name) { & $Add ('command ' + $Name) $N }
                $Elements = @($N.CommandElements)
                for ($i = 1; $i -lt $Elements.Count; $i++) {
                    $E = $Elements[$i]
                    if ($E -isnot [System.Management.Automation.Language.CommandParameterAst]) { continue }
                    $P = $E.ParameterName
                    foreach ($B in $BadParams) {
                        # '*' is about cmdlets: rdpfix's own Verb-RdpNoun functions have their own parameters.
                        if ((($B[0] -eq '*' -and $Name -notlike '*-Rdp*') -or $B[0] -eq $Name) -and $P.Length -ge $B[2] -and $B[1].StartsWith($P, [System.StringComparison]::OrdinalIgnoreCase)) {
                            & $Add ('parameter ' + $Name + ' -' + $B[1]) $E
                        }
                    }
                    if ('Encoding'.StartsWith($P, [System.StringComparison]::OrdinalIgnoreCase) -and $P.Length -ge 2) {
                        $Arg = $E.Argument
                        if ($null -eq $Arg -and $i + 1 -lt $Elements.Count) { $Arg = $Elements[$i + 1] }
                        if ($null -ne $Arg) {
                            $V = if ($Arg -is [System.Management.Automation.Language.StringConstantExpressionAst]) { $Arg.Value } else { $Arg.Extent.Text }
                            if ($BadEncodings -contains $V -or $V -match '^\d+$') { & $Add ('-Encoding ' + $V) $E }
                        }
                    }
                }
            }
        }
    }
    $Found.ToArray()
}

$Out = foreach ($F in $Files) {
    $Text = [System.IO.File]::ReadAllText($F.path, [System.Text.Encoding]::UTF8)
    $Tokens = $null; $Errors = $null
    $Ast = [System.Management.Automation.Language.Parser]::ParseInput($Text, [ref]$Tokens, [ref]$Errors)
    [ordered]@{
        label = $F.label
        errors = @($Errors | ForEach-Object { $_.Message })
        findings = @(Get-Finding51 -Ast $Ast)
    }
}
ConvertTo-Json -InputObject @($Out) -Depth 4 -Compress
`;

type Result = { label: string; errors: string[]; findings: string[] };

// One sample per construct, and the rule each must raise. ${x}?.y: in 7.x `$x?` is a variable name.
const SAMPLES: Array<[string, string, string]> = [
  ['ternary', '$a = $true ? 1 : 2', 'ternary ?:'],
  ['coalesce', '$a = $null ?? 2', 'null-coalescing ??'],
  ['coalesce-assign', '$a = $null; $a ??= 2', 'null-coalescing assignment ??='],
  ['chain-and', 'Get-Item -Path . && Get-Item -Path .', 'pipeline chain AndAnd'],
  ['chain-or', 'Get-Item -Path . || Get-Item -Path .', 'pipeline chain OrOr'],
  ['parallel', '1..3 | ForEach-Object -Parallel { $_ }', 'parameter ForEach-Object -Parallel'],
  ['parallel-alias', '1..3 | % -Parallel { $_ }', 'parameter ForEach-Object -Parallel'],
  ['parallel-prefix', '1..3 | ForEach-Object -Para { $_ }', 'parameter ForEach-Object -Parallel'],
  ['hashtable', "'{}' | ConvertFrom-Json -AsHashtable", 'parameter ConvertFrom-Json -AsHashtable'],
  ['bytestream', 'Get-Content -Path x -AsByteStream', 'parameter Get-Content -AsByteStream'],
  ['bytestream-set', 'Set-Content -Path x -Value 1 -AsByteStream', 'parameter Set-Content -AsByteStream'],
  ['utf8nobom', 'Set-Content -Path x -Value 1 -Encoding utf8NoBOM', '-Encoding utf8NoBOM'],
  ['utf8bom-colon', 'Out-File -FilePath x -Encoding:utf8BOM', '-Encoding utf8BOM'],
  ['utf8nobom-quoted', "Out-File -FilePath x -Encoding 'utf8NoBOM'", '-Encoding utf8NoBOM'],
  ['join-string', '1, 2 | Join-String -Separator ","', 'command Join-String'],
  ['skipcert', 'Invoke-WebRequest -Uri https://x -SkipCertificateCheck', 'parameter Invoke-WebRequest -SkipCertificateCheck'],
  ['null-conditional-member', '$x = $null; ${x}?.Name', 'null-conditional ?.'],
  ['null-conditional-method', '$x = $null; ${x}?.ToString()', 'null-conditional ?.'],
  ['null-conditional-index', '$x = $null; ${x}?[0]', 'null-conditional ?[]'],
  ['clean-block', 'function Get-X {\n    process { 1 }\n    clean { 2 }\n}', 'clean block'],
  ['background', 'Get-Item -Path . &', 'background operator &'],
  ['is-windows', 'if ($IsWindows) { 1 }', 'automatic variable $IsWindows (not in 5.1)'],
  ['unicode-escape', '$a = "`u{2019}"', 'unicode escape `u{}'],
  ['unicode-escape-expanding', '$a = "$env:X`u{2019}"', 'unicode escape `u{}'],
  ['get-date-utc', 'Get-Date -AsUTC', 'parameter Get-Date -AsUTC'],
  ['to-json-asarray', '1 | ConvertTo-Json -AsArray', 'parameter ConvertTo-Json -AsArray'],
];

// Constructs 5.1 has, written the way scripts/ps does: none may be flagged.
const CLEAN_51 = `function Get-X {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([string]$Path)
    $a = if ($Path) { 1 } else { 2 }
    $b = @(1, 2) | ForEach-Object -Process { $_ } | Where-Object { $_ -gt 1 }
    $c = '{}' | ConvertFrom-Json
    $d = Get-Content -LiteralPath $Path -Encoding UTF8 -Raw
    Set-Content -LiteralPath $Path -Value 'x' -Encoding Byte
    $e = @{ a = 1 }.GetEnumerator() | Group-Object -Property Name -AsHashTable
    $f = Split-Path -Path $Path -Leaf
    $g = $null; if ($null -ne $g) { $g.Name }
    $h = $a -and $b -or $c
    Get-Item -Path . | Out-Null
    [ordered]@{ a = $a; b = $b; c = $c; d = $d; e = $e; f = $f; h = $h }
}`;

const v51 = suite('Windows PowerShell 5.1 on the AST');

let corpus: PsText[] = [];

v51('the check flags each 5.1-only construct on its own, and nothing in plain 5.1 code', () => {
  if (!pwshGate('5.1 AST check self-test')) return;
  const texts = [...SAMPLES.map(([label, text]) => ({ label, text })), { label: 'clean', text: CLEAN_51 }];
  const results = runPwshOver<Result[]>(texts, CHECK_51);
  assert.is(results.length, texts.length);
  SAMPLES.forEach(([label, , rule], i) => {
    const r = results[i]!;
    assert.equal(r.errors, [], `${label}: the sample parses under 7.6`);
    assert.equal(r.findings.map((f) => f.replace(/ line \d+: .*$/s, '')), [rule], `${label}: ${JSON.stringify(r.findings)}`);
  });
  assert.equal(results.at(-1)!.errors, []);
  assert.equal(results.at(-1)!.findings, [], 'plain 5.1 code is not flagged');
});

v51('every scripts/ps file, every example and every pasted recipe stage uses only what 5.1 has', async () => {
  if (!pwshGate('5.1 AST check on the generated scripts')) return;
  const files = psFiles();
  const examples = await exampleScripts();
  const recipes = (await recipeScripts()).scripts;
  corpus = [...files, ...examples, ...recipes];
  assert.ok(files.length >= 10 && examples.length >= 30 && recipes.length >= 5, `${files.length} files, ${examples.length} examples, ${recipes.length} recipe stages`);
  const t0 = Date.now();
  const results = runPwshOver<Result[]>(corpus, CHECK_51);
  console.log(`  checked ${corpus.length} scripts (${files.length} .ps1 files, ${examples.length} examples, ${recipes.length} recipe stages) in one pwsh run, ${Date.now() - t0} ms`);
  assert.equal(results.map((r) => r.label), corpus.map((c) => c.label), 'one result per script, in order');
  const broken = results.filter((r) => r.errors.length).map((r) => `${r.label}: ${r.errors.join('; ')}`);
  assert.equal(broken, [], 'every script parses');
  const bad = results.filter((r) => r.findings.length).map((r) => `${r.label}:\n    ${r.findings.join('\n    ')}`);
  assert.equal(bad, [], `5.1 lacks:\n${bad.join('\n')}`);
});

v51.run();
