# TwinHost.ps1: the Windows twin as a host that outlives its processes. The ssh lab host's
# `powershell` (test/lab/twin-ssh.ts) runs this file with the channel's own arguments
# (-NoProfile -NonInteractive -EncodedCommand BASE64, the loader in UTF-16LE) and the script on
# stdin, as powershell.exe would get them. It
#   1. loads the twin from the state file named by $env:RDPFIX_TWIN_STATE (WindowsTwin.psm1
#      Import-TwinState, which also finishes a file operation a kill interrupted),
#   2. routes every function of scripts/ps/windows.ps1 (the Windows boundary) to the twin's
#      Invoke-Twin<Name>, and Rename-Item/Remove-Item/Copy-Item/Move-Item to the real cmdlet plus the twin's ACL
#      bookkeeping, Start-Sleep to nothing, WITHOUT Pester: each is an alias in this script's scope
#      to a routing function here. An alias wins over a function of the same name (PowerShell looks
#      for aliases before functions, in every scope), so the boundary functions the generated script
#      defines itself never run; the self-test (-SelfTest) and test/lab/faults.lab.test.ts prove it.
#      The WindowsTwin module's own Copy-Item/Remove-Item calls do not see these aliases (a module's
#      scopes lead to the global scope, not to this script's), as under Pester's mocks.
#   3. saves the twin after every routed call that changed it (write-through), before the call's
#      output goes on, so a process killed at any point leaves the twin exactly as far as it got;
#   4. decodes the loader and runs it exactly as given (it reads the script from stdin and runs it).
# With RDPFIX_TWIN_TERMSERVICE (a lab TermService listener's control socket) the twin's TermService
# starts and restarts that real listener, and Test-RdpHandshake is not routed: the check is real.
# Everything else is the real pwsh running the real generated script: its files (backups, the
# target's records) are real files under the twin's ProgramData, on whatever disk is mounted there.
Set-StrictMode -Off
$ErrorActionPreference = 'Stop'
$script:TwinHostRoot = (Resolve-Path -LiteralPath (Join-Path -Path $PSScriptRoot -ChildPath '../..')).ProviderPath
$script:StatePath = $env:RDPFIX_TWIN_STATE
if (-not $script:StatePath) { [Console]::Error.WriteLine('TwinHost: RDPFIX_TWIN_STATE names no state file'); exit 97 }

# ---- the channel's arguments, as powershell.exe takes them
$encoded = $null
$selfTest = $false
for ($i = 0; $i -lt $args.Count; $i++) {
    $a = [string]$args[$i]
    if ($a -eq '-EncodedCommand' -or $a -eq '-e' -or $a -eq '-ec') { $encoded = [string]$args[$i + 1]; $i++ }
    elseif ($a -eq '-SelfTest') { $selfTest = $true }
    elseif ($a -eq '-NoProfile' -or $a -eq '-NonInteractive' -or $a -eq '-NoLogo') { }
    else { [Console]::Error.WriteLine(('TwinHost: unexpected argument {0}' -f $a)); exit 98 }
}
if (-not $encoded -and -not $selfTest) { [Console]::Error.WriteLine('TwinHost: no -EncodedCommand'); exit 98 }

Import-Module (Join-Path -Path $PSScriptRoot -ChildPath 'WindowsTwin.psm1') -Force -DisableNameChecking
Import-TwinState -Path $script:StatePath
$script:LastSaved = Get-TwinSerialized
# C:\ is the twin's root, as in the Pester tests: a default C:\ProgramData\... path lands in the twin.
$null = New-PSDrive -Name C -PSProvider FileSystem -Root (Split-Path -Path $env:ProgramData -Parent) -Scope Global
# ... and the script sees ProgramData where Windows has it: every path it builds (backups, key files,
# the records) is a C:\ path in Windows' form, as rdpfix journals them (the twin keeps its own paths).
$env:ProgramData = 'C:\ProgramData'

function Save-TwinHostState {
    # Write the twin only when the call changed it (most calls only read).
    $text = Get-TwinSerialized
    if ($text -ne $script:LastSaved) {
        Export-TwinState -Path $script:StatePath -Text $text
        $script:LastSaved = $text
    }
}

$script:CommonParameters = @([System.Management.Automation.PSCmdlet]::CommonParameters) + @([System.Management.Automation.PSCmdlet]::OptionalCommonParameters)
function ConvertTo-TwinHostPath {
    # A C:\... value as the twin's disk (the C: drive above): the twin's functions hand paths to .NET
    # ([IO.File]), which knows no PowerShell drive, where Windows would have a real C:.
    param($Value)
    if ($Value -is [string] -and $Value -match '^[A-Za-z]:[\\/]') { return $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Value) }
    if ($Value -is [string[]] -or ($Value -is [object[]] -and @($Value | Where-Object -FilterScript { $_ -isnot [string] }).Count -eq 0)) {
        return [string[]]@($Value | ForEach-Object -Process { ConvertTo-TwinHostPath $_ })
    }
    return $Value
}

function Get-TwinHostArguments {
    # The caller's bound parameters without the common ones (the twin's functions are simple ones),
    # C:\ paths resolved on the twin's disk.
    param([System.Collections.IDictionary]$Bound)
    $out = @{}
    foreach ($k in $Bound.Keys) { if ($script:CommonParameters -notcontains $k) { $out[$k] = ConvertTo-TwinHostPath $Bound[$k] } }
    return $out
}

# ---- the boundary: one routing function per function of windows.ps1, with its real parameters
$boundaryFile = Join-Path -Path $script:TwinHostRoot -ChildPath 'scripts/ps/windows.ps1'
$boundary = @([System.Management.Automation.Language.Parser]::ParseFile($boundaryFile, [ref]$null, [ref]$null).FindAll({ param($n) $n -is [System.Management.Automation.Language.FunctionDefinitionAst] }, $false))
$script:RoutedNames = New-Object System.Collections.Generic.List[string]
foreach ($f in $boundary) {
    # A lab whose TermService is a real listener (RDPFIX_TWIN_TERMSERVICE, test/lab/termservice.ts):
    # the in-server handshake check is the real Test-RdpHandshake, connecting to that listener.
    if ($env:RDPFIX_TWIN_TERMSERVICE -and $f.Name -eq 'Test-RdpHandshake') { continue }
    $twin = 'Invoke-Twin' + ($f.Name -replace '-', '')
    if (-not (Get-Command -Name $twin -ErrorAction SilentlyContinue)) { [Console]::Error.WriteLine(('TwinHost: the twin has no {0} for the boundary function {1}' -f $twin, $f.Name)); exit 99 }
    $paramBlock = ''
    if ($f.Body.ParamBlock) { $paramBlock = $f.Body.ParamBlock.Extent.Text }
    $route = 'TwinRoute-' + $f.Name
    $body = @"
$paramBlock
`$twinArgs = Get-TwinHostArguments -Bound `$PSBoundParameters
try { $twin @twinArgs } finally { Save-TwinHostState }
"@
    Set-Item -Path ('function:script:{0}' -f $route) -Value ([scriptblock]::Create($body))
    Set-Alias -Name $f.Name -Value $route -Scope Script -Force
    $script:RoutedNames.Add($f.Name)
}

# ---- Rename-Item, Remove-Item, Copy-Item, Move-Item: the real cmdlet, then NTFS's ACL rule on the twin. The
# operation is saved as pending first; Import-TwinState completes it if a kill falls in between.
function New-TwinHostProxy {
    param([string]$Cmdlet, [string]$Body)
    $meta = New-Object System.Management.Automation.CommandMetadata -ArgumentList (Get-Command -Name ('Microsoft.PowerShell.Management\' + $Cmdlet))
    $text = [System.Management.Automation.ProxyCommand]::GetCmdletBindingAttribute($meta) + "`nparam(" + [System.Management.Automation.ProxyCommand]::GetParamBlock($meta) + ")`n" + $Body
    Set-Item -Path ('function:script:TwinRoute-{0}' -f $Cmdlet) -Value ([scriptblock]::Create($text))
    Set-Alias -Name $Cmdlet -Value ('TwinRoute-{0}' -f $Cmdlet) -Scope Script -Force
}
New-TwinHostProxy -Cmdlet 'Rename-Item' -Body @'
$from = (Get-Item -LiteralPath $(if ($LiteralPath) { $LiteralPath } else { $Path }) -Force).FullName
$to = Join-Path -Path (Split-Path -Path $from -Parent) -ChildPath $NewName
Set-TwinPending ([ordered]@{ kind = 'rename'; from = $from; to = $to }); Save-TwinHostState
Microsoft.PowerShell.Management\Rename-Item @PSBoundParameters
Move-TwinAcl -From $from -To $to
Set-TwinPending $null; Save-TwinHostState
'@
New-TwinHostProxy -Cmdlet 'Remove-Item' -Body @'
$paths = @(@($LiteralPath) + @($Path) | Where-Object -FilterScript { $_ } | ForEach-Object -Process { $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($_) })
Set-TwinPending ([ordered]@{ kind = 'remove'; paths = $paths }); Save-TwinHostState
try { Microsoft.PowerShell.Management\Remove-Item @PSBoundParameters }
finally {
    foreach ($p in $paths) { if (-not (Test-Path -LiteralPath $p)) { Clear-TwinAcl -Path $p } }
    Set-TwinPending $null; Save-TwinHostState
}
'@
New-TwinHostProxy -Cmdlet 'Copy-Item' -Body @'
$source = $(if ($LiteralPath) { @($LiteralPath)[0] } else { @($Path)[0] })
$target = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Destination)
if (Test-Path -LiteralPath $target -PathType Container) { $target = Join-Path -Path $target -ChildPath (Split-Path -Path $source -Leaf) }
Set-TwinPending ([ordered]@{ kind = 'copy'; to = $target }); Save-TwinHostState
Microsoft.PowerShell.Management\Copy-Item @PSBoundParameters
Clear-TwinAcl -Path $target
Set-TwinPending $null; Save-TwinHostState
'@
New-TwinHostProxy -Cmdlet 'Move-Item' -Body @'
$from = (Get-Item -LiteralPath $(if ($LiteralPath) { @($LiteralPath)[0] } else { @($Path)[0] }) -Force).FullName
$to = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Destination)
if (Test-Path -LiteralPath $to -PathType Container) { $to = Join-Path -Path $to -ChildPath (Split-Path -Path $from -Leaf) }
Set-TwinPending ([ordered]@{ kind = 'rename'; from = $from; to = $to }); Save-TwinHostState
Microsoft.PowerShell.Management\Move-Item @PSBoundParameters
Clear-TwinAcl -Path $to
Move-TwinAcl -From $from -To $to
Set-TwinPending $null; Save-TwinHostState
'@
# Join-Path and Split-Path: on Windows a path on C: is written with backslashes, and rdpfix journals a backup path
# only in that form (validateWindowsPath); pwsh on Linux joins with '/'. The real cmdlet, then a
# C:... result in Windows' form (pwsh reads either separator).
New-TwinHostProxy -Cmdlet 'Join-Path' -Body @'
foreach ($r in @(Microsoft.PowerShell.Management\Join-Path @PSBoundParameters)) {
    if ($r -is [string] -and $r -match '^[A-Za-z]:[\\/]') { $r -replace '/', '\' } else { $r }
}
'@
New-TwinHostProxy -Cmdlet 'Split-Path' -Body @'
foreach ($r in @(Microsoft.PowerShell.Management\Split-Path @PSBoundParameters)) {
    if ($r -is [string] -and $r -match '^[A-Za-z]:[\\/]') { $r -replace '/', '\' } else { $r }
}
'@
function TwinRoute-Start-Sleep { }
Set-Alias -Name 'Start-Sleep' -Value 'TwinRoute-Start-Sleep' -Scope Script -Force

if ($selfTest) {
    # A function of the same name defined later in a child scope (as the generated script does)
    # must lose to the alias: the twin answers, the real boundary function does not run.
    $probe = & {
        function Get-RdpRunAs { return 'the real boundary function ran' }
        function Start-Sleep { return 'the real Start-Sleep ran' }
        [ordered]@{ runAs = (Get-RdpRunAs); sleep = (Start-Sleep -Seconds 30); routed = $script:RoutedNames.Count; pid = $PID }
    }
    [Console]::Out.WriteLine(($probe | ConvertTo-Json -Compress))
    exit 0
}

# ---- run the channel's loader exactly as given, in this script's scope (the aliases are visible)
$loader = [System.Text.Encoding]::Unicode.GetString([Convert]::FromBase64String($encoded))
. ([scriptblock]::Create($loader))
