# backup.ps1: The backup folders on the target (readable only by SYSTEM and Administrators), the copies made into
# them, and their retention (the prune-backups step).
# requires: windows, sddl, result

function Assert-RdpBackupFolderSafe {
    # An existing folder rdpfix is about to keep backups in: refuse a file, a reparse point (a junction or symbolic
    # link could send key copies anywhere) and an owner other than SYSTEM, Administrators or the account running
    # the step (anyone may create folders in ProgramData, and an owner can always change the ACL). Returns the
    # folder's SDDL; throws, having changed nothing, otherwise.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Path)
    $item = Get-Item -LiteralPath $Path -Force
    if (-not $item.PSIsContainer) { throw ('the backup folder {0} is a file, not a folder; nothing was changed' -f $Path) }
    if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
        throw ('refusing the backup folder {0}: it is a reparse point (a junction or symbolic link), so backups written there could land anywhere; nothing was changed' -f $Path)
    }
    $sddl = Get-RdpPathSddl -Path $Path -Directory
    if (-not $sddl) { throw ('refusing the backup folder {0}: its security descriptor cannot be read; nothing was changed' -f $Path) }
    $owner = (ConvertFrom-RdpSddl -Sddl $sddl).owner
    if (@('S-1-5-18', 'S-1-5-32-544', (Get-RdpRunAs)) -notcontains $owner) {
        throw ('refusing the backup folder {0}: it is owned by {1}, not by SYSTEM or Administrators (someone without administrator rights may have created it to read the backups); nothing was changed. Find out who made it, then remove it or make Administrators its owner (icacls "{0}" /setowner *S-1-5-32-544) and run again' -f $Path, $owner)
    }
    return $sddl
}

function Initialize-RdpBackupRoot {
    # The backup root (default C:\ProgramData\rdpfix\backup, and then C:\ProgramData\rdpfix too): each level that
    # is missing is created protected (SYSTEM and Administrators only, New-RdpProtectedDirectory); each that
    # exists is checked (Assert-RdpBackupFolderSafe: a refusal changes nothing) and, when its DACL is wider than
    # that (another SID allowed, or inheritance on), tightened to it, which closes the backups an older rdpfix
    # left under it too (they inherit from it). tightened says what the DACL was.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([AllowEmptyString()][string]$Root = '')
    if (-not $Root) {
        $parent = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix'
        $Root = Join-Path -Path $parent -ChildPath 'backup'
        $levels = @($parent, $Root)
    } else {
        # The folders above a custom root that do not exist yet are rdpfix's to create: protected too.
        $levels = @($Root)
        $up = Split-Path -Path $Root -Parent
        while ($up -and -not (Test-Path -LiteralPath $up)) {
            $levels = @($up) + $levels
            $up = Split-Path -Path $up -Parent
        }
    }
    $result = [ordered]@{ path = $Root; created = $false; tightened = $null }
    # Every existing level is judged before anything is tightened or created.
    $found = @()
    foreach ($level in $levels) {
        if (Test-Path -LiteralPath $level) { $found += [ordered]@{ path = $level; sddl = (Assert-RdpBackupFolderSafe -Path $level) } }
    }
    $notes = @()
    foreach ($level in $found) {
        $problems = @(Get-RdpBackupAclProblem -Sddl $level.sddl -Protected)
        if ($problems.Count -eq 0) { continue }
        if ($PSCmdlet.ShouldProcess($level.path, ('Tighten the ACL to SYSTEM and Administrators only ({0})' -f ($problems -join '; ')))) {
            Set-RdpPathSddl -Path $level.path -Sddl 'D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)' -Directory
            $left = @(Get-RdpBackupAclProblem -Sddl ([string](Get-RdpPathSddl -Path $level.path -Directory)) -Protected)
            if ($left.Count -gt 0) { throw ('the backup folder {0} could not be restricted to SYSTEM and Administrators ({1}); nothing was backed up' -f $level.path, ($left -join '; ')) }
        }
        if ($level.path -eq $Root) { $notes = @('was: ' + $level.sddl) + $notes } else { $notes += ('{0} was: {1}' -f $level.path, $level.sddl) }
    }
    if ($notes.Count -gt 0) { $result.tightened = $notes -join '; ' }
    foreach ($level in $levels) {
        if (Test-Path -LiteralPath $level) { continue }
        if ($PSCmdlet.ShouldProcess($level, 'Create the backup folder, readable only by SYSTEM and Administrators')) {
            New-RdpProtectedDirectory -Path $level
            $problems = @(Get-RdpBackupAclProblem -Sddl ([string](Assert-RdpBackupFolderSafe -Path $level)) -Protected)
            if ($problems.Count -gt 0) { throw ('the new backup folder {0} is not restricted to SYSTEM and Administrators ({1}); nothing was backed up' -f $level, ($problems -join '; ')) }
            if ($level -eq $Root) { $result.created = $true }
        }
    }
    return $result
}

function New-RdpBackupFolder {
    # <root>\<yyyyMMdd-HHmmss-fff>-<step>-<6 hex>, created before anything changes, protected from its first
    # moment (New-RdpProtectedDirectory) under a checked root (Initialize-RdpBackupRoot). The random suffix keeps
    # two runs in the same millisecond apart. Returns the folder's path.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [AllowEmptyString()][string]$Root = '',
        [Parameter(Mandatory = $true)][string]$Step
    )
    $rootInfo = Initialize-RdpBackupRoot -Root $Root
    $name = '{0}-{1}-{2}' -f (Get-Date).ToString('yyyyMMdd-HHmmss-fff'), $Step, [guid]::NewGuid().ToString('N').Substring(0, 6)
    $path = Join-Path -Path $rootInfo.path -ChildPath $name
    if ($PSCmdlet.ShouldProcess($path, 'Create the backup folder, readable only by SYSTEM and Administrators')) {
        New-RdpProtectedDirectory -Path $path
        $problems = @(Get-RdpBackupAclProblem -Sddl ([string](Assert-RdpBackupFolderSafe -Path $path)) -Protected)
        if ($problems.Count -gt 0) { throw ('backup failed: the backup folder {0} is not restricted to SYSTEM and Administrators ({1}); nothing was changed' -f $path, ($problems -join '; ')) }
    }
    return $path
}

function Copy-RdpFile {
    # Copy one file into a folder; when its ACL refuses even this account a read (the broken-key
    # case), fall back to robocopy /B, which reads with the backup privilege. A copy INTO a backup
    # folder is Copy-RdpBackupFile's; this alone is for putting a key back, whose ACL the restore sets.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Source,
        [Parameter(Mandatory = $true)][string]$Destination
    )
    if ($PSCmdlet.ShouldProcess($Source, ('Copy to {0}' -f $Destination))) {
        try {
            Copy-Item -LiteralPath $Source -Destination $Destination -Force
        } catch {
            Write-Verbose -Message ('Copy-Item failed ({0}); retrying with robocopy /B' -f $_.Exception.Message)
            $null = Invoke-RdpNative -FilePath 'robocopy.exe' -ArgumentList @((Split-Path -Path $Source -Parent), $Destination, (Split-Path -Path $Source -Leaf), '/B', '/COPY:DAT', '/R:0', '/W:0', '/NP', '/NJH', '/NJS') -MaxExitCode 7
        }
    }
}

function Copy-RdpBackupFile {
    # Copy a file (a private key container) into a backup folder and give the copy its own protected DACL,
    # SYSTEM and Administrators only, read back at once: the copy of a key never keeps a grant of the original
    # (NETWORK SERVICE, SessionEnv) nor takes one from where it lands. Administrators keep access so an
    # elevated undo can read it back.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Source,
        [Parameter(Mandatory = $true)][string]$Folder
    )
    $copy = Join-Path -Path $Folder -ChildPath (Split-Path -Path $Source -Leaf)
    if ($PSCmdlet.ShouldProcess($Source, ('Copy to {0}, readable only by SYSTEM and Administrators' -f $Folder))) {
        Copy-RdpFile -Source $Source -Destination $Folder
        Set-RdpPathSddl -Path $copy -Sddl 'D:PAI(A;;FA;;;SY)(A;;FA;;;BA)'
        $problems = @(Get-RdpBackupAclProblem -Sddl ([string](Get-RdpPathSddl -Path $copy)) -Protected)
        if ($problems.Count -gt 0) { throw ('backup failed: the copy {0} is not restricted to SYSTEM and Administrators ({1}); nothing was changed' -f $copy, ($problems -join '; ')) }
    }
}

function Assert-RdpBackupFile {
    # Refuse to continue when a backup file is missing or empty, or when its DACL lets anyone but SYSTEM and
    # Administrators in: nothing may change without a backup, and a backup must not leak what it holds.
    # -SkipAclCheck is for reading back a backup made earlier (an undo restores from it whatever its ACL).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string[]]$Path, [switch]$SkipAclCheck)
    foreach ($file in $Path) {
        if (-not (Test-Path -LiteralPath $file -PathType Leaf) -or (Get-Item -LiteralPath $file).Length -eq 0) {
            throw ('backup failed: {0} was not written; nothing was changed' -f $file)
        }
        if (-not $SkipAclCheck) {
            $problems = @(Get-RdpBackupAclProblem -Sddl ([string](Get-RdpPathSddl -Path $file)))
            if ($problems.Count -gt 0) { throw ('backup failed: {0} is open beyond SYSTEM and Administrators ({1}); nothing was changed' -f $file, ($problems -join '; ')) }
        }
    }
}

function Measure-RdpBackupFolder {
    # Bytes and files under a folder, never entering a reparse point (they are counted instead), and whether
    # the folder holds a record.json.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Path)
    $m = [ordered]@{ bytes = [long]0; files = 0; reparsePoints = 0; record = (Test-Path -LiteralPath (Join-Path -Path $Path -ChildPath 'record.json') -PathType Leaf) }
    $pending = @($Path)
    while ($pending.Count -gt 0) {
        $next = @()
        foreach ($folder in $pending) {
            foreach ($item in @(Get-ChildItem -LiteralPath $folder -Force)) {
                if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) { $m.reparsePoints++ }
                elseif ($item.PSIsContainer) { $next += $item.FullName }
                else { $m.bytes += $item.Length; $m.files++ }
            }
        }
        $pending = $next
    }
    return $m
}

function Get-RdpBackupInventory {
    # Every folder directly under the backup root (default C:\ProgramData\rdpfix\backup): name, full path, when
    # it was made (from its <yyyyMMdd-HHmmss-fff> name, the time rdpfix wrote; else the file system's creation
    # time), size in bytes, file count, whether a record.json is in it; a reparse point is listed, not entered.
    # A root that is a reparse point or owned by someone else is refused (Assert-RdpBackupFolderSafe).
    [CmdletBinding()]
    param([AllowEmptyString()][string]$Root = '')
    $check = @()
    if (-not $Root) {
        $check += Join-Path -Path $env:ProgramData -ChildPath 'rdpfix'
        $Root = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\backup'
    }
    $check += $Root
    if (-not (Test-Path -LiteralPath $Root)) { return @() }
    foreach ($level in $check) { $null = Assert-RdpBackupFolderSafe -Path $level }
    $now = (Get-Date).ToUniversalTime()
    $list = @()
    foreach ($item in @(Get-ChildItem -LiteralPath $Root -Directory -Force | Sort-Object -Property Name)) {
        $stamp = [datetime]::MinValue
        $entry = [ordered]@{ name = $item.Name; path = $item.FullName; created = $null; createdFrom = 'name'; ageDays = $null; bytes = $null; files = $null; record = $false; reparsePoint = $false; reparsePoints = 0 }
        $named = $item.Name.Length -ge 19 -and [datetime]::TryParseExact($item.Name.Substring(0, 19), 'yyyyMMdd-HHmmss-fff', [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::AssumeLocal, [ref]$stamp)
        if ($named) { $created = $stamp.ToUniversalTime() } else { $created = $item.CreationTimeUtc; $entry.createdFrom = 'filesystem' }
        $entry.created = $created.ToString('o')
        $entry.ageDays = [math]::Round(($now - $created).TotalDays, 2)
        if ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) {
            $entry.reparsePoint = $true
        } else {
            $m = Measure-RdpBackupFolder -Path $item.FullName
            $entry.bytes = $m.bytes; $entry.files = $m.files; $entry.record = $m.record; $entry.reparsePoints = $m.reparsePoints
        }
        $list += $entry
    }
    return $list
}

function Remove-RdpOldBackup {
    # The prune-backups step: remove the backup folders under the root made more than -Days days ago (the age
    # Get-RdpBackupInventory gives). -WhatIf is the dry run: it lists them and removes nothing. Only folders
    # directly under the root go, never one that is or holds a reparse point (listed as skipped: rdpfix makes
    # none, and removing through one could reach outside the root).
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][ValidateRange(1, 3650)][int]$Days,
        [AllowEmptyString()][string]$Root = ''
    )
    if (-not $Root) { $Root = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\backup' }
    $result = [ordered]@{ step = 'prune-backups'; status = 'failed'; error = $null; root = $Root; days = $Days; cutoff = $null; removed = @(); wouldRemove = @(); skipped = @(); kept = 0; keptBytes = 0; bytesRemoved = 0; problems = @() }
    try {
        $cutoff = (Get-Date).ToUniversalTime().AddDays(-$Days)
        $result.cutoff = $cutoff.ToString('o')
        $inventory = @(Get-RdpBackupInventory -Root $Root)
        $rootFull = $null
        if ($inventory.Count -gt 0) { $rootFull = (Get-Item -LiteralPath $Root -Force).FullName.TrimEnd('\', '/') }
        foreach ($entry in $inventory) {
            $summary = [ordered]@{ name = $entry.name; path = $entry.path; created = $entry.created; bytes = $entry.bytes; files = $entry.files; record = $entry.record }
            if ([datetime]::Parse($entry.created).ToUniversalTime() -ge $cutoff) {
                $result.kept++
                if ($null -ne $entry.bytes) { $result.keptBytes += $entry.bytes }
                continue
            }
            if ($entry.reparsePoint -or $entry.reparsePoints -gt 0) {
                $summary.reason = 'it is or holds a reparse point (junction or symbolic link): not followed, not removed'
                $result.skipped += $summary
                continue
            }
            if ((Split-Path -Path $entry.path -Parent).TrimEnd('\', '/') -ne $rootFull) {
                $summary.reason = 'not directly under the backup root'
                $result.skipped += $summary
                continue
            }
            if ($PSCmdlet.ShouldProcess($entry.path, ('Remove the backup folder ({0} bytes in {1} files, made {2})' -f $entry.bytes, $entry.files, $entry.created))) {
                Remove-Item -LiteralPath $entry.path -Recurse -Force
                if (Test-Path -LiteralPath $entry.path) { $result.problems += ('{0} is still there after its removal' -f $entry.path) }
                else { $result.removed += $summary; $result.bytesRemoved += $entry.bytes }
            } else {
                $result.wouldRemove += $summary
            }
        }
        if ($result.wouldRemove.Count -gt 0) { $result.status = 'would-change' }
        elseif ($result.removed.Count -gt 0 -or $result.problems.Count -gt 0) { Set-RdpStepOutcome -Result $result }
        else { $result.status = 'ok' }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    return $result
}
