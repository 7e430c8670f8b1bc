// The Windows boundary holds (issue 11): every Windows-only cmdlet, native program, .NET type and
// provider drive that rdpfix's steps use is reached only through scripts/ps/windows.ps1, so the
// Windows twin (test/windows/WindowsTwin.psm1), which stands in for exactly those functions, leaves
// nothing else untested. Read on PowerShell's own AST ([System.Management.Automation.Language.Parser]
// ::ParseFile in one pwsh run that prints JSON), not with regular expressions on the text: a restore
// line or a ShouldProcess message that merely mentions Remove-ItemProperty or HKLM:\ is a string,
// not a call. Also: every windows.ps1 function has its Invoke-Twin<Name> in the twin. Gated by
// test/helpers/pwsh.ts (one skip line without pwsh, a failure in CI).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pwshGate } from './helpers/pwsh.ts';
import { PS_DIR, runPwshOver, type PsText } from './helpers/ps-corpus.ts';

const ROOT = join(PS_DIR, '..', '..');
const TWIN = join(ROOT, 'test', 'windows', 'WindowsTwin.psm1');

/** What the driver reports of one file: its functions, its commands with their literal arguments, the type names it uses. */
interface Facts {
  label: string;
  parseErrors: string[];
  functions: string[];
  commands: Array<{ name: string; line: number; literals: string[] }>;
  types: Array<{ name: string; line: number }>;
}

// Each text is parsed from its file with ParseFile. A command's literal arguments are its string
// arguments (bare words included) and, for an argument built with + (in parentheses or not), the
// string it starts with.
const DRIVER = `
function Get-Literal($Ast) {
    while ($true) {
        if ($Ast -is [System.Management.Automation.Language.BinaryExpressionAst]) { $Ast = $Ast.Left }
        elseif ($Ast -is [System.Management.Automation.Language.ParenExpressionAst] -and $Ast.Pipeline -is [System.Management.Automation.Language.PipelineAst] -and $Ast.Pipeline.PipelineElements.Count -eq 1 -and $Ast.Pipeline.PipelineElements[0] -is [System.Management.Automation.Language.CommandExpressionAst]) { $Ast = $Ast.Pipeline.PipelineElements[0].Expression }
        else { break }
    }
    if ($Ast -is [System.Management.Automation.Language.StringConstantExpressionAst] -or $Ast -is [System.Management.Automation.Language.ExpandableStringExpressionAst]) { return [string]$Ast.Value }
    return $null
}
@(foreach ($F in $Files) {
    $Tokens = $null; $Errors = $null
    $Ast = [System.Management.Automation.Language.Parser]::ParseFile($F.path, [ref]$Tokens, [ref]$Errors)
    $functions = @($Ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.FunctionDefinitionAst] }, $true) | ForEach-Object { $_.Name })
    $commands = @($Ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.CommandAst] }, $true) | ForEach-Object {
        $name = $_.GetCommandName()
        if ($null -eq $name) { return }
        $literals = @($_.CommandElements | Select-Object -Skip 1 | ForEach-Object { Get-Literal $_ } | Where-Object { $null -ne $_ })
        [ordered]@{ name = $name; line = $_.Extent.StartLineNumber; literals = $literals }
    })
    $types = @($Ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.TypeExpressionAst] -or $n -is [System.Management.Automation.Language.TypeConstraintAst] }, $true) | ForEach-Object {
        [ordered]@{ name = $_.TypeName.FullName; line = $_.Extent.StartLineNumber }
    })
    [ordered]@{ label = $F.label; parseErrors = @($Errors | ForEach-Object { 'line {0}: {1}' -f $_.Extent.StartLineNumber, $_.Message }); functions = $functions; commands = $commands; types = $types }
}) | ConvertTo-Json -Depth 6 -Compress
`;

// ------------------------------------------------------------------ the rules

const WINDOWS_CMDLETS: RegExp[] = [
  /^(get|set|restart|start|stop)-service$/,
  /^get-ciminstance$/, /^invoke-cimmethod$/, /^get-wmiobject$/,
  /^[a-z]+-scheduledtask/,
  /^get-winevent$/, /^get-nettcpconnection$/, /^get-netipinterface$/, /^set-netipinterface$/, /^find-netroute$/,
  /^get-netadapter$/, /^get-netfirewallrule$/, /^export-certificate$/, /^get-acl$/, /^set-acl$/, /^add-type$/,
  /^[a-z]+-itemproperty(value)?$/,
];
const NATIVE = new Set(['icacls', 'reg', 'robocopy', 'netsh']);
const WINDOWS_TYPES = ['system.security.accesscontrol.', 'system.security.principal.', 'microsoft.win32.', 'system.security.cryptography.', 'system.serviceprocess.', 'system.net.networkinformation.'];
// Join-Path, Split-Path and Resolve-Path resolve the drive of their path too (off Windows: "Cannot
// find drive. A drive with the name 'HKLM' does not exist", as inspect-server's SCHANNEL keys did).
const PATH_CMDLETS = new Set(['test-path', 'get-item', 'get-childitem', 'remove-item', 'new-item', 'set-item', 'rename-item', 'copy-item', 'join-path', 'split-path', 'resolve-path']);
const PROVIDER = /^(hklm|hkcu|cert):/i;

/** A type name as .NET resolves it: PowerShell lets the leading System. be left out. */
function fullType(name: string): string {
  const n = name.toLowerCase().replace(/^\[|\]$/g, '');
  return n.startsWith('system.') || n.startsWith('microsoft.') ? n : `system.${n}`;
}
const windowsType = (name: string) => WINDOWS_TYPES.some((p) => fullType(name).startsWith(p));

/** Every reach of a Windows-only API in one file, as "label:line: what". */
export function violations(f: Facts): string[] {
  const out: string[] = [];
  for (const c of f.commands) {
    const name = c.name.toLowerCase();
    const native = name.replace(/\.exe$/, '');
    if (WINDOWS_CMDLETS.some((r) => r.test(name))) out.push(`${f.label}:${c.line}: Windows-only cmdlet ${c.name}`);
    else if (NATIVE.has(native)) out.push(`${f.label}:${c.line}: native program ${c.name}`);
    if (name === 'new-object') for (const l of c.literals) if (windowsType(l)) out.push(`${f.label}:${c.line}: New-Object of the Windows-only type ${l}`);
    if (PATH_CMDLETS.has(name)) for (const l of c.literals) if (PROVIDER.test(l)) out.push(`${f.label}:${c.line}: ${c.name} on the provider path ${l}`);
  }
  for (const t of f.types) if (windowsType(t.name)) out.push(`${f.label}:${t.line}: Windows-only type [${t.name}]`);
  return out;
}

// ------------------------------------------------------------------ one pwsh run for everything

const SAMPLES: Array<{ label: string; text: string; expect: RegExp }> = [
  { label: 'sample service', text: "Get-Service -Name 'TermService'\n", expect: /Windows-only cmdlet Get-Service/ },
  { label: 'sample restart', text: 'Restart-Service TermService -Force\n', expect: /Windows-only cmdlet Restart-Service/ },
  { label: 'sample cim', text: "Get-CimInstance -ClassName Win32_Service\nInvoke-CimMethod -InputObject $x -MethodName M\n", expect: /Get-CimInstance/ },
  { label: 'sample wmi', text: 'Get-WmiObject Win32_OperatingSystem\n', expect: /Get-WmiObject/ },
  { label: 'sample task', text: 'Register-ScheduledTask -TaskName x\n', expect: /Register-ScheduledTask/ },
  { label: 'sample event', text: 'Get-WinEvent -LogName System\n', expect: /Get-WinEvent/ },
  { label: 'sample net', text: 'Get-NetIPInterface -AddressFamily IPv4\n', expect: /Get-NetIPInterface/ },
  { label: 'sample route', text: 'Find-NetRoute -RemoteIPAddress 1.2.3.4\n', expect: /Find-NetRoute/ },
  { label: 'sample firewall', text: 'Get-NetFirewallRule -Group g\n', expect: /Get-NetFirewallRule/ },
  { label: 'sample acl', text: 'Get-Acl -Path C:\\x | Set-Acl -Path C:\\y\n', expect: /Get-Acl/ },
  { label: 'sample add-type', text: "Add-Type -TypeDefinition 'public class A {}'\n", expect: /Add-Type/ },
  { label: 'sample itemproperty', text: "Set-ItemProperty -LiteralPath $k -Name n -Value 1\n", expect: /Set-ItemProperty/ },
  { label: 'sample get-itemproperty', text: "Get-ItemProperty -Path $k\n", expect: /Get-ItemProperty/ },
  { label: 'sample export-certificate', text: 'Export-Certificate -Cert $c -FilePath x.cer\n', expect: /Export-Certificate/ },
  { label: 'sample icacls', text: 'icacls.exe C:\\x /save y\n', expect: /native program icacls\.exe/ },
  { label: 'sample reg', text: 'reg export HKLM\\X y.reg\n', expect: /native program reg$/ },
  { label: 'sample robocopy call', text: "& 'robocopy.exe' a b c\n", expect: /native program robocopy\.exe/ },
  { label: 'sample netsh', text: 'netsh interface ipv4 show subinterfaces\n', expect: /native program netsh/ },
  { label: 'sample principal', text: '$i = [System.Security.Principal.WindowsIdentity]::GetCurrent()\n', expect: /type \[System\.Security\.Principal\.WindowsIdentity\]/ },
  { label: 'sample short type', text: '$s = [Security.AccessControl.FileSecurity]::new()\n', expect: /type \[Security\.AccessControl\.FileSecurity\]/ },
  { label: 'sample win32', text: '$v = [Microsoft.Win32.Registry]::LocalMachine\n', expect: /Microsoft\.Win32\.Registry/ },
  { label: 'sample crypto cast', text: 'if ($k -is [System.Security.Cryptography.RSACng]) { }\n', expect: /RSACng/ },
  { label: 'sample serviceprocess', text: 'function F { param([System.ServiceProcess.ServiceControllerStatus]$S) }\n', expect: /ServiceControllerStatus/ },
  { label: 'sample networkinformation', text: '[System.Net.NetworkInformation.IPGlobalProperties]::GetIPGlobalProperties()\n', expect: /IPGlobalProperties/ },
  { label: 'sample new-object', text: 'New-Object -TypeName System.Security.Principal.NTAccount -ArgumentList a, b\n', expect: /New-Object of the Windows-only type System\.Security\.Principal\.NTAccount/ },
  { label: 'sample new-object positional', text: "New-Object 'System.Security.AccessControl.DirectorySecurity'\n", expect: /New-Object of the Windows-only type/ },
  { label: 'sample hklm', text: "Test-Path -LiteralPath 'HKLM:\\SOFTWARE\\X'\n", expect: /Test-Path on the provider path HKLM:/ },
  { label: 'sample cert', text: "Get-ChildItem -Path \"Cert:\\LocalMachine\\$Store\"\n", expect: /Get-ChildItem on the provider path Cert:/ },
  { label: 'sample hkcu concat', text: "Remove-Item -LiteralPath ('HKCU:\\Software\\' + $Name)\n", expect: /Remove-Item on the provider path HKCU:/ },
  { label: 'sample join-path', text: "$k = Join-Path -Path 'HKLM:\\SYSTEM\\X' -ChildPath $v\n", expect: /Join-Path on the provider path HKLM:/ },
  { label: 'sample hkcu plus', text: "New-Item -Path 'HKCU:\\Software\\' + $Name\n", expect: /New-Item on the provider path HKCU:/ },
];

/** Clean: strings that only MENTION the Windows APIs, and ordinary cross-platform code. */
const CLEAN = `function Get-Clean {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([string]$Key)
    $restore = 'Remove-ItemProperty -LiteralPath ''HKLM:\\SOFTWARE\\X'' -Name ''v'''
    $cmd = "netsh.exe interface ipv4 set subinterface 6 mtu=1500"
    if ($PSCmdlet.ShouldProcess('HKLM:\\SOFTWARE\\X', 'Get-Service and icacls are words here')) { Write-Output $restore }
    $list = New-Object -TypeName System.Collections.Generic.List[string]
    $null = New-Item -ItemType Directory -Path (Join-Path -Path $env:ProgramData -ChildPath 'rdpfix') -Force
    Test-Path -LiteralPath $Key
    [System.Text.Encoding]::UTF8.GetBytes($cmd) | Out-Null
    return [ordered]@{ list = $list; sid = 'S-1-5-18' }
}
`;

test('no scripts/ps file but windows.ps1 reaches a Windows-only API; windows.ps1 does, and every function of it has a twin; the rules catch each sample', () => {
  if (!pwshGate('Windows boundary on the PowerShell AST')) return;
  // runPwshOver writes each text (as it is on disk) to a file for ParseFile.
  const real: PsText[] = readdirSync(PS_DIR).filter((n) => n.endsWith('.ps1')).sort().map((n) => ({ label: `scripts/ps/${n}`, text: readFileSync(join(PS_DIR, n), 'utf8') }));
  const twin = { label: 'test/windows/WindowsTwin.psm1', text: readFileSync(TWIN, 'utf8') };
  const samples = SAMPLES.map((s) => ({ label: s.label, text: s.text }));
  const all = [...real, twin, ...samples, { label: 'sample clean', text: CLEAN }];
  const facts = [runPwshOver<Facts[]>(all, DRIVER)].flat();
  assert.equal(facts.map((f) => f.label), all.map((t) => t.label), 'one answer per text, in order');
  for (const f of facts) assert.equal(f.parseErrors, [], `${f.label} parses`);
  const byLabel = new Map(facts.map((f) => [f.label, f]));

  assert.ok(real.length >= 15, `scripts/ps files: ${real.length}`);
  const outside = real.filter((f) => f.label !== 'scripts/ps/windows.ps1').flatMap((f) => violations(byLabel.get(f.label)!));
  assert.equal(outside, [], `Windows-only API outside scripts/ps/windows.ps1:\n${outside.join('\n')}`);

  // The rules are not vacuous on the real boundary: windows.ps1 uses every kind of thing they look for.
  const inside = violations(byLabel.get('scripts/ps/windows.ps1')!);
  for (const kind of [/cmdlet Get-Service/, /cmdlet Get-CimInstance/, /cmdlet New-ItemProperty/, /cmdlet Add-Type/, /type \[System\.Security\.Principal\./, /type \[Microsoft\.Win32\./, /New-Object of the Windows-only type System\.Security\.AccessControl\./, /Test-Path on the provider path Cert:/]) {
    assert.ok(inside.some((v) => kind.test(v)), `windows.ps1 is seen to use ${kind}: ${inside.length} uses found`);
  }

  // Every boundary function has its twin (Use-WindowsTwin would throw at run time; this says which, up front).
  const boundary = byLabel.get('scripts/ps/windows.ps1')!.functions;
  const twins = new Set(byLabel.get(twin.label)!.functions);
  assert.ok(boundary.length >= 30, `windows.ps1 functions: ${boundary.length}`);
  const missing = boundary.filter((n) => !twins.has(`Invoke-Twin${n.replace(/-/g, '')}`));
  assert.equal(missing, [], `boundary functions without an Invoke-Twin<Name> in WindowsTwin.psm1: ${missing.join(', ')}`);

  // Self-test: each sample is flagged for what it shows, the clean text is not.
  for (const s of SAMPLES) {
    const v = violations(byLabel.get(s.label)!);
    assert.ok(v.some((x) => s.expect.test(x)), `${s.label} is flagged (${s.expect}): got ${JSON.stringify(v)}`);
  }
  assert.equal(violations(byLabel.get('sample clean')!), [], 'strings that only mention Windows APIs, and portable code, are not flagged');
});

test.run();
