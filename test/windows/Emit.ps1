# The PowerShell side of the emit bridge (test/windows/emit.ts). Dot-source it in a test file's
# BeforeAll, then ask for every script the file needs in ONE batch (one node process, about a
# second):
#   $a = @(Invoke-RdpfixEmit -Request @(
#       @{ build = 'buildNlaScript'; args = @(@{ mode = 'disable' }, $false) },
#       @{ undo = 'toggle-nla'; raw = $raw; options = @{ mode = 'disable' } })
#   $a[0].script          the real generated text
#   $a[1].changes[0].undo the UndoSpec the journal would record (.script is its PowerShell)
# An error answer throws, naming the request. New-RdpfixScriptFile saves a text as a .ps1 file
# (pure ASCII, as the scripts are) to run with & $path.

function Invoke-RdpfixEmit {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][object[]]$Request,
        [int]$TimeoutSeconds = 300
    )
    $node = Get-Command -Name node -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if (-not $node) { throw 'Invoke-RdpfixEmit: node is not on PATH (test/windows/emit.ts runs under node --import tsx)' }
    # $PSScriptRoot in a function is the folder of the file that defines it (test/windows).
    $root = (Resolve-Path -LiteralPath (Join-Path $PSScriptRoot '../..')).ProviderPath
    $json = ConvertTo-Json -InputObject @($Request) -Depth 32 -Compress

    $psi = New-Object System.Diagnostics.ProcessStartInfo
    $psi.FileName = $node.Source
    foreach ($a in @('--import', 'tsx', (Join-Path $root 'test/windows/emit.ts'))) { [void]$psi.ArgumentList.Add($a) }
    $psi.WorkingDirectory = $root
    $psi.UseShellExecute = $false
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $utf8 = New-Object System.Text.UTF8Encoding $false
    $psi.StandardInputEncoding = $utf8
    $psi.StandardOutputEncoding = $utf8
    $psi.StandardErrorEncoding = $utf8

    $p = [System.Diagnostics.Process]::Start($psi)
    try {
        # Read both streams while writing, so a full pipe never blocks either side.
        $stdout = $p.StandardOutput.ReadToEndAsync()
        $stderr = $p.StandardError.ReadToEndAsync()
        $p.StandardInput.Write($json)
        $p.StandardInput.Close()
        if (-not $p.WaitForExit($TimeoutSeconds * 1000)) {
            $p.Kill($true)
            throw "Invoke-RdpfixEmit: emit.ts did not finish within $TimeoutSeconds s"
        }
        $p.WaitForExit()
        $out = $stdout.GetAwaiter().GetResult()
        $err = $stderr.GetAwaiter().GetResult()
        if ($p.ExitCode -ne 0) { throw "Invoke-RdpfixEmit: emit.ts exited $($p.ExitCode): $($err.Trim())" }
    } finally {
        $p.Dispose()
    }
    $answers = @(ConvertFrom-Json -InputObject $out -Depth 64)
    if ($answers.Count -ne @($Request).Count) { throw "Invoke-RdpfixEmit: $(@($Request).Count) request(s) but $($answers.Count) answer(s)" }
    for ($i = 0; $i -lt $answers.Count; $i++) {
        if ($answers[$i].PSObject.Properties['error']) {
            $r = @($Request)[$i]
            $what = if ($r.build) { "build $($r.build)" } elseif ($r.undo) { "undo $($r.undo)" } else { 'request' }
            throw "Invoke-RdpfixEmit: request $i ($what): $($answers[$i].error)"
        }
    }
    $answers
}

function New-RdpfixScriptFile {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Script,
        [Parameter(Mandatory = $true)][string]$Folder,
        [Parameter(Mandatory = $true)][string]$Name
    )
    # Refuse rather than let the ASCII encoder turn a stray character into '?'.
    $bad = [regex]::Match($Script, '[^\x00-\x7F]')
    if ($bad.Success) { throw "New-RdpfixScriptFile: $Name is not pure ASCII (U+$(([int][char]$bad.Value).ToString('X4')) at offset $($bad.Index))" }
    if (-not $Name.EndsWith('.ps1')) { $Name = "$Name.ps1" }
    if (-not (Test-Path -LiteralPath $Folder -PathType Container)) { [void](New-Item -ItemType Directory -Path $Folder -Force) }
    $path = Join-Path $Folder $Name
    [System.IO.File]::WriteAllText($path, $Script, [System.Text.Encoding]::ASCII)
    $path
}
