# Runs Pester test files in ONE pwsh process and writes a flat JSON array of rows for Node
# (test/windows/pester.test.ts), one row per test plus one per failure that is not a test:
#   { file, path, kind, result, ms, error }
#   kind 'test'      a test (path = its ExpandedPath; a test that failed because its block's
#                    BeforeAll threw has no error of its own: the block's error is quoted)
#   kind 'block'     a Describe/Context whose own BeforeAll/AfterAll threw (Result Failed)
#   kind 'container' a file that failed to run at all: a syntax error, a throw at discovery or in
#                    a top-level BeforeAll; or a file that does not exist (Pester drops such a path
#                    silently, checked on 6.2.0, so it is checked here)
# Exit 0 only when Pester's Result is Passed and at least one test ran; 1 otherwise (and 1 with a
# single 'harness' row when Pester itself cannot be loaded or run).
# Run it with pwsh -NoLogo -NoProfile -NonInteractive -File (a mandatory-parameter prompt must fail,
# not hang). Pester's own Minimal report goes to stderr (what the tests themselves write to the host,
# such as a "What if:" line, stays on stdout).
param(
    [string]$Pester,
    [string]$Out,
    # The test files; the remaining arguments, because pwsh -File passes every value as a string.
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$Path
)
$ErrorActionPreference = 'Stop'

$rows = New-Object System.Collections.ArrayList
$relative = {
    param([string]$p)
    try { [System.IO.Path]::GetRelativePath((Get-Location).Path, $p) } catch { $p }
}
$errorText = {
    param($records)
    $texts = foreach ($e in @($records)) {
        if ($null -eq $e) { continue }
        $msg = if ($e.PSObject.Properties['DisplayErrorMessage'] -and $e.DisplayErrorMessage) { "$($e.DisplayErrorMessage)" } else { "$e" }
        $at = if ($e.PSObject.Properties['DisplayStackTrace'] -and $e.DisplayStackTrace) { "$($e.DisplayStackTrace)" } else { "$($e.ScriptStackTrace)" }
        # A parse error's trace points into this file (where Pester was called): drop it.
        if ($at -and $at -notlike "*$PSCommandPath*") { "$msg`n$at" } else { $msg }
    }
    if ($texts) { @($texts) -join "`n" } else { $null }
}
$write = {
    $json = ConvertTo-Json -InputObject @($rows.ToArray()) -Depth 5
    [System.IO.File]::WriteAllText($Out, $json, (New-Object System.Text.UTF8Encoding $false))
}

try {
    if (-not $Out) { throw 'run.ps1 needs -Out <file for the JSON rows>' }
    if (-not $Pester -or -not (Test-Path -LiteralPath $Pester -PathType Leaf)) { throw "Pester.psd1 not found: '$Pester' (see .ci/run)" }
    $module = Import-Module -Name $Pester -Force -PassThru
    if ($module.Version -ne [version]'6.2.0') { throw "wrong Pester: $($module.Version) from $Pester (the tests are written for 6.2.0)" }

    $files = New-Object System.Collections.ArrayList
    foreach ($p in @($Path)) {
        if (-not $p) { continue }
        if (Test-Path -LiteralPath $p -PathType Leaf) { [void]$files.Add((Resolve-Path -LiteralPath $p).ProviderPath) }
        else { [void]$rows.Add([ordered]@{ file = (& $relative $p); path = ''; kind = 'container'; result = 'Failed'; ms = 0; error = "no such test file: $p" }) }
    }
    if ($files.Count -eq 0) { throw 'no test file to run (-Path)' }

    $c = New-PesterConfiguration
    $c.Run.Path = [string[]]$files.ToArray()
    $c.Run.PassThru = $true
    $c.Output.Verbosity = 'Minimal'
    $c.Output.RenderMode = 'Plaintext'
    # Pester writes its report with Write-Host (the information stream): send that to stderr so that
    # stdout carries nothing and the result object is the only thing in the pipeline.
    $result = $null
    Invoke-Pester -Configuration $c 6>&1 | ForEach-Object {
        if ($_ -is [System.Management.Automation.InformationRecord]) {
            $m = $_.MessageData
            if ($m -is [System.Management.Automation.HostInformationMessage] -and $m.NoNewLine) { [Console]::Error.Write("$m") } else { [Console]::Error.WriteLine("$m") }
        }
        elseif ($_.PSObject.TypeNames -contains 'Pester.Run') { $result = $_ }
        else { [Console]::Error.WriteLine("$_") }
    }
    if ($null -eq $result) { throw 'Invoke-Pester returned no result object' }

    foreach ($ct in @($result.Containers)) {
        $own = & $errorText $ct.ErrorRecord
        if ($ct.Result -eq 'Failed' -and $own) {
            [void]$rows.Add([ordered]@{ file = (& $relative "$($ct.Item)"); path = ''; kind = 'container'; result = 'Failed'; ms = [int]$ct.Duration.TotalMilliseconds; error = $own })
        }
    }
    foreach ($b in @($result.FailedBlocks)) {
        $own = & $errorText $b.ErrorRecord
        [void]$rows.Add([ordered]@{ file = (& $relative "$($b.BlockContainer.Item)"); path = "$($b.ExpandedPath)"; kind = 'block'; result = 'Failed'; ms = [int]$b.Duration.TotalMilliseconds; error = $(if ($own) { $own } else { 'the block failed without an error record' }) })
    }
    foreach ($t in @($result.Tests)) {
        $err = & $errorText $t.ErrorRecord
        if (-not $err -and $t.Result -eq 'Failed') {
            # No error of its own: the nearest block (or the file) whose setup failed says why.
            $why = $null
            for ($blk = $t.Block; $null -ne $blk -and -not $why; $blk = $blk.Parent) {
                $e = & $errorText $blk.ErrorRecord
                if ($e) { $why = "not run: $(if ($blk.IsRoot) { 'the file' } else { "block '$($blk.ExpandedPath)'" }) failed: $e" }
            }
            if (-not $why) { $why = & $errorText $t.Block.BlockContainer.ErrorRecord }
            $err = if ($why) { $why } else { 'failed without an error record' }
        }
        [void]$rows.Add([ordered]@{ file = (& $relative "$($t.Block.BlockContainer.Item)"); path = "$($t.ExpandedPath)"; kind = 'test'; result = "$($t.Result)"; ms = [int]$t.Duration.TotalMilliseconds; error = $err })
    }
    & $write
    $notTests = @($rows | Where-Object { $_.kind -ne 'test' }).Count
    if ($result.Result -ne 'Passed' -or $result.TotalCount -eq 0 -or $notTests -gt 0) { exit 1 }
    exit 0
} catch {
    [void]$rows.Add([ordered]@{ file = 'test/windows/run.ps1'; path = ''; kind = 'harness'; result = 'Failed'; ms = 0; error = "$($_.Exception.Message)`n$($_.ScriptStackTrace)" })
    if ($Out) { & $write }
    [Console]::Error.WriteLine("run.ps1: $($_.Exception.Message)")
    exit 1
}
