# serial-console.ps1: The Azure Serial Console form of a generated script (`--emit --serial-console`, lib/serial-console.ts).
# The Serial Console's PowerShell takes at most 2,048 characters a paste, so the script travels as numbered chunks of
# its GZip+base64 text, one pasted line each, appended to a file in C:\ProgramData\rdpfix\serial (SYSTEM and
# Administrators only, created protected before anything is written); the last line rebuilds the script, checks every
# chunk and the whole script's SHA-256 against what rdpfix printed, and only then runs it in a child PowerShell. These
# functions reach the console as one pasted setup (their text, GZip+base64, checked by its SHA-256); the name, the
# hashes and the chunk count reach them only as quoted literals on the pasted lines.
# requires: windows, backup

function Initialize-RdpSerialFolder {
    # C:\ProgramData\rdpfix\serial, where the chunks and the rebuilt script are kept: each level that is missing is
    # created protected (New-RdpProtectedDirectory: SYSTEM and Administrators only from its first moment), each that
    # exists is checked (owner, reparse point) and tightened to that, as the backup root is (Initialize-RdpBackupRoot).
    # Called before every write, so nothing is written into a folder that is not (or no longer) protected.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param()
    $parent = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix'
    $null = Initialize-RdpBackupRoot -Root $parent
    $folder = Join-Path -Path $parent -ChildPath 'serial'
    $null = Initialize-RdpBackupRoot -Root $folder
    return $folder
}

function Get-RdpSerialHash {
    # The SHA-256 of an ASCII text (a chunk's base64) or of bytes, as upper-case hex.
    [CmdletBinding()]
    param([AllowEmptyString()][string]$Text = '', [byte[]]$Bytes = $null)
    if ($null -eq $Bytes) { $Bytes = [System.Text.Encoding]::ASCII.GetBytes($Text) }
    $stream = New-Object -TypeName System.IO.MemoryStream -ArgumentList (, $Bytes)
    try { return (Get-FileHash -InputStream $stream -Algorithm SHA256).Hash } finally { $stream.Dispose() }
}

function Assert-RdpSerialName {
    # The name every line of one paste carries: rdpfix-<16 hex digits of the script's SHA-256>. It names files, so
    # nothing else is taken.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name)
    if ($Name -cnotmatch '^rdpfix-[0-9a-f]{16}$') { throw ('{0} is not the name of an rdpfix serial console script (rdpfix-<16 hex digits>)' -f $Name) }
}

function Add-RdpSerialChunk {
    # One pasted chunk line: its text is checked against its own SHA-256 first (a paste that lost or doubled
    # characters is refused at once and nothing is written: paste that line again), then appended as "NUMBER TEXT"
    # to <name>.chunks in the protected folder. A chunk pasted twice is appended twice; the rebuild takes identical
    # copies as one.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][int]$Number,
        [Parameter(Mandatory = $true)][int]$Count,
        [Parameter(Mandatory = $true)][string]$Sha256,
        [Parameter(Mandatory = $true)][string]$Data
    )
    $ErrorActionPreference = 'Stop'
    Assert-RdpSerialName -Name $Name
    if ($Number -lt 1 -or $Number -gt $Count) { throw ('chunk {0}: this script has chunks 1 to {1}; nothing was written' -f $Number, $Count) }
    if ($Data -cnotmatch '^[A-Za-z0-9+/]+={0,2}$' -or $Sha256 -notmatch '^[0-9A-Fa-f]{16}$' -or (Get-RdpSerialHash -Text $Data).Substring(0, 16) -ne $Sha256) {
        throw ('chunk {0} of {1} arrived altered (characters lost or doubled in the paste?): nothing was written; paste that line again' -f $Number, $Count)
    }
    $folder = Initialize-RdpSerialFolder
    $file = Join-Path -Path $folder -ChildPath ($Name + '.chunks')
    if ($PSCmdlet.ShouldProcess($file, ('Append chunk {0} of {1}' -f $Number, $Count))) {
        Add-Content -LiteralPath $file -Value ('{0} {1}' -f $Number, $Data) -Encoding Ascii
        Write-Output ('rdpfix: chunk {0} of {1} saved' -f $Number, $Count)
    }
}

function Get-RdpSerialProblem {
    # What is wrong with the chunks in a file (its lines, "NUMBER TEXT"), one line per kind, naming the chunk
    # numbers: missing, pasted twice with different content, not the one rdpfix printed (its hash is not the one in
    # -Chunk, 16 hex digits of each chunk's SHA-256, in order), a number this script does not have, a line that is no
    # chunk. Returns the problems and, when there are none, the chunks' text in order.
    [CmdletBinding()]
    param([AllowEmptyCollection()][string[]]$Line = @(), [Parameter(Mandatory = $true)][string[]]$Chunk)
    $count = $Chunk.Count
    $texts = @{}
    $damaged = @()
    $wrong = @()
    for ($i = 0; $i -lt $Line.Count; $i++) {
        $m = [regex]::Match([string]$Line[$i], '^([0-9]{1,6}) ([A-Za-z0-9+/]+={0,2})$')
        if (-not $m.Success) { $damaged += ($i + 1); continue }
        $n = [int]$m.Groups[1].Value
        if ($n -lt 1 -or $n -gt $count) { if ($wrong -notcontains $n) { $wrong += $n }; continue }
        if (-not $texts.ContainsKey($n)) { $texts[$n] = @() }
        if ($texts[$n] -cnotcontains $m.Groups[2].Value) { $texts[$n] = @($texts[$n]) + $m.Groups[2].Value }
    }
    $missing = @(); $twice = @(); $altered = @()
    $parts = New-Object -TypeName 'string[]' -ArgumentList $count
    for ($n = 1; $n -le $count; $n++) {
        if (-not $texts.ContainsKey($n)) { $missing += $n; continue }
        if (@($texts[$n]).Count -gt 1) { $twice += $n; continue }
        $text = [string]@($texts[$n])[0]
        if ((Get-RdpSerialHash -Text $text).Substring(0, 16) -ne $Chunk[$n - 1]) { $altered += $n; continue }
        $parts[$n - 1] = $text
    }
    $problems = @()
    if ($missing.Count) { $problems += ('missing: chunk {0}' -f ($missing -join ', ')) }
    if ($altered.Count) { $problems += ('not the chunk rdpfix printed: chunk {0}' -f ($altered -join ', ')) }
    if ($twice.Count) { $problems += ('pasted twice with different content: chunk {0}' -f ($twice -join ', ')) }
    if ($wrong.Count) { $problems += ('a chunk number this script does not have (it has 1 to {0}): chunk {1}' -f $count, (($wrong | Sort-Object) -join ', ')) }
    if ($damaged.Count) { $problems += ('not a chunk: line {0} of the chunk file' -f ($damaged -join ', ')) }
    return [ordered]@{ problems = $problems; parts = $parts; missing = $missing; altered = $altered; twice = $twice; wrong = $wrong }
}

function Invoke-RdpSerialScript {
    # The last pasted line: rebuild the script from its chunks and run it, only when every chunk is the one rdpfix
    # printed and the rebuilt script's SHA-256 is the one rdpfix computed of its --emit text; otherwise it says which
    # chunk numbers are wrong and runs nothing. The script runs in a CHILD PowerShell, this host's own executable
    # with -NoProfile -ExecutionPolicy Bypass -File: a generated script may end with exit, which in this process
    # would close the Serial Console's PowerShell; the child's output comes back here and its exit code is said
    # (and left in $LASTEXITCODE). Afterwards the chunks and the rebuilt file are removed.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][string]$Sha256,
        [Parameter(Mandatory = $true)][string[]]$Chunk
    )
    $ErrorActionPreference = 'Stop'
    Assert-RdpSerialName -Name $Name
    if ($Sha256 -notmatch '^[0-9A-Fa-f]{64}$') { throw ('{0} is not a SHA-256' -f $Sha256) }
    $folder = Initialize-RdpSerialFolder
    $file = Join-Path -Path $folder -ChildPath ($Name + '.chunks')
    $lines = @()
    if (Test-Path -LiteralPath $file) { $lines = @(Get-Content -LiteralPath $file -Encoding Ascii) }
    $check = Get-RdpSerialProblem -Line $lines -Chunk $Chunk
    if ($check.problems.Count) {
        $hint = 'paste the lines of those chunks again (a line pasted twice is harmless), then this line again'
        if ($check.twice.Count -or $check.wrong.Count -or $check.altered.Count) { $hint = ('start again: Remove-Item -LiteralPath ''{0}'', then paste every chunk line and this line again' -f $file) }
        $others = @(Get-ChildItem -LiteralPath $folder -Filter 'rdpfix-*.chunks' | Where-Object -FilterScript { $_.Name -ne ($Name + '.chunks') } | ForEach-Object -Process { $_.BaseName })
        if ($others.Count) { $hint += ('; the folder also holds chunks of another script ({0}): a line of another paste goes to its own script' -f ($others -join ', ')) }
        throw ('rdpfix: nothing was run: {0}; {1}' -f ($check.problems -join '; '), $hint)
    }
    $zipped = [System.Convert]::FromBase64String(($check.parts -join ''))
    $in = New-Object -TypeName System.IO.MemoryStream -ArgumentList (, $zipped)
    $gzip = New-Object -TypeName System.IO.Compression.GZipStream -ArgumentList $in, ([System.IO.Compression.CompressionMode]::Decompress)
    $out = New-Object -TypeName System.IO.MemoryStream
    try { $gzip.CopyTo($out) } finally { $gzip.Dispose() }
    $bytes = $out.ToArray()
    $actual = Get-RdpSerialHash -Bytes $bytes
    if ($actual -ne $Sha256) { throw ('rdpfix: nothing was run: the rebuilt script has SHA-256 {0}, not {1} as rdpfix printed it' -f $actual, $Sha256) }
    $script = Join-Path -Path $folder -ChildPath ($Name + '.ps1')
    # .NET takes no PowerShell drive: the path as the file system has it (on Windows the same C:\ path).
    $full = $PSCmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($script)
    if ($PSCmdlet.ShouldProcess($script, 'Write the rebuilt script and run it in a child PowerShell')) {
        [System.IO.File]::WriteAllBytes($full, $bytes)
        if ((Get-FileHash -LiteralPath $script -Algorithm SHA256).Hash -ne $Sha256) { throw ('rdpfix: nothing was run: {0} does not read back as written' -f $script) }
        # This host's executable: powershell.exe (5.1) or pwsh; a framework-dependent PowerShell runs in the .NET
        # host (dotnet), which takes the PowerShell assembly first.
        $exe = (Get-Process -Id $PID).Path
        $lead = @()
        if (@('dotnet', 'dotnet.exe') -contains (Split-Path -Path $exe -Leaf)) { $lead = @(Join-Path -Path $PSHOME -ChildPath 'pwsh.dll') }
        Write-Output ('rdpfix: the script checks out (SHA-256 {0}); running it in a child PowerShell: {1}' -f $Sha256, $exe)
        # Windows PowerShell 5.1 would turn the child's stderr into errors under Stop; only its exit code decides.
        $ErrorActionPreference = 'Continue'
        & $exe @lead -NoProfile -ExecutionPolicy Bypass -File $full
        $code = $LASTEXITCODE
        $ErrorActionPreference = 'Stop'
        Remove-Item -LiteralPath $file, $script -Force
        Write-Output ('rdpfix: the script exited with code {0}; its chunks and the rebuilt file were removed from {1}' -f $code, $folder)
    }
}
