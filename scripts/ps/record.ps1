# record.ps1: The target-side journal. Every changing run writes record.json in its backup folder
# (C:\ProgramData\rdpfix\backup\<id>\, protected like the backups) BEFORE its first change and
# completes it at the end, so a run whose client died, whose channel dropped, or that was pasted
# still leaves, on the target, what it changed and what undoing it needs. A record is data, never a
# program: rdpfix builds the undo from it with the same code that builds a client journal's undo.
# Phases: 'intent' (the run is changing things: `result` is what is done so far, `assume` is the
# result as if the change in flight had happened, which is what an undo must cover), 'complete'.
# requires: backup, windows

function New-RdpTargetRecord {
    # The run's backup folder and its record, before anything changes. A second call in the same run
    # (clear-machinekeys' regeneration calls Restart-RdpService) does not start another record: its
    # result is kept in the same record as `nested`. Returns the backup folder.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [AllowEmptyString()][string]$Root = '',
        [Parameter(Mandatory = $true)][string]$Step,
        [AllowEmptyString()][string]$Label = '',
        [AllowEmptyString()][string]$Tag = '',
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result,
        [System.Collections.IDictionary]$Options = @{}
    )
    if (-not $PSCmdlet.ShouldProcess($Step, 'Create the backup folder and the target record')) { return '' }
    if (-not $Label) { $Label = $Step }
    if ($null -ne (Get-RdpHeldRecord)) {
        $folder = New-RdpBackupFolder -Root $Root -Step $Label
        (Get-RdpHeldRecord).record.nested = [ordered]@{ step = $Step; backup = $folder; result = $Result; assume = $Result }
        Save-RdpTargetRecord -Result $Result
        return $folder
    }
    $rootState = Initialize-RdpBackupRoot -Root $Root
    if ($rootState.tightened -and $Result.Contains('warnings')) {
        $Result['warnings'] = @($Result['warnings']) + @(('the backup root {0} was readable by more than SYSTEM and Administrators ({1}); rdpfix tightened it' -f $rootState.path, $rootState.tightened))
    }
    $folder = New-RdpBackupFolder -Root $Root -Step $Label
    $now = (Get-Date).ToUniversalTime().ToString('o')
    $started = ''
    try { $started = (Get-Process -Id $PID).StartTime.ToUniversalTime().ToString('o') } catch { $started = '' }
    $id = Split-Path -Path $folder -Leaf
    $Result['record'] = $id
    $script:RdpTargetRecord = [ordered]@{
        path = (Join-Path -Path $folder -ChildPath 'record.json')
        record = [ordered]@{
            schema = 'rdpfix-target-record/1'; id = $id; step = $Step; tag = $Tag
            computer = [string]$env:COMPUTERNAME; user = [string](Get-RdpRunAs)
            pid = $PID; processStarted = $started; started = $now; updated = $now; finished = $null
            phase = 'intent'; backup = $folder; options = $Options
            result = $Result; assume = $Result; nested = $null; undone = $null
        }
    }
    Save-RdpTargetRecord -Result $Result
    return $folder
}

function Get-RdpHeldRecord {
    # This run's record, if it started one ($null otherwise; strict mode forbids reading an unset variable).
    [CmdletBinding()]
    param()
    return (Get-Variable -Name 'RdpTargetRecord' -Scope Script -ValueOnly -ErrorAction SilentlyContinue)
}

function Save-RdpTargetRecord {
    # Write the record again before the next change: -Pending names what that change adds to the
    # result (a list field gets the item appended, any other field is set), so an undo built from
    # `assume` covers it even when the run dies half-way through it. A record that cannot be
    # written stops the run before the change (nothing changes without a record).
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result,
        [System.Collections.IDictionary]$Pending = @{}
    )
    $held = Get-RdpHeldRecord
    if ($null -eq $held) { return }
    $assume = $Result
    if ($Pending.Count -gt 0) {
        $assume = [ordered]@{}
        foreach ($key in @($Result.Keys)) { $assume[$key] = $Result[$key] }
        foreach ($key in @($Pending.Keys)) {
            if ($assume.Contains($key) -and $assume[$key] -is [array]) { $assume[$key] = @($assume[$key]) + @($Pending[$key]) } else { $assume[$key] = $Pending[$key] }
        }
    }
    if ($null -ne $held.record.nested -and [object]::ReferenceEquals($held.record.nested.result, $Result)) {
        $held.record.nested.assume = $assume
    } elseif ([object]::ReferenceEquals($held.record.result, $Result)) {
        $held.record.assume = $assume
    } else {
        # A nested step that started no part of the record (a plain restart inside another step):
        # the record holds what the outer step says; only the time moves.
        $held.record.updated = (Get-Date).ToUniversalTime().ToString('o')
        Write-RdpRecordFile -Path $held.path -Record $held.record
        return
    }
    $held.record.updated = (Get-Date).ToUniversalTime().ToString('o')
    Write-RdpRecordFile -Path $held.path -Record $held.record
}

function Complete-RdpTargetRecord {
    # The run ended with a result: the record says so (phase 'complete'). Without a record (nothing
    # was about to change) there is nothing to complete.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][System.Collections.IDictionary]$Result)
    $held = Get-RdpHeldRecord
    if ($null -eq $held) { return }
    $held.record.result = $Result
    $held.record.assume = $Result
    $held.record.phase = 'complete'
    $held.record.finished = (Get-Date).ToUniversalTime().ToString('o')
    $held.record.updated = $held.record.finished
    try {
        Write-RdpRecordFile -Path $held.path -Record $held.record
    } catch {
        # The change is made and the result still goes to the caller; the record stays 'intent',
        # which a reconcile reads as interrupted (its undo covers what the result says).
        if ($Result.Contains('warnings')) { $Result['warnings'] = @($Result['warnings']) + @(('the target record {0} could not be completed: {1}' -f $held.path, $_.Exception.Message)) }
    }
}

function Write-RdpRecordFile {
    # Whole or not at all: a temporary file in the same folder, then moved over the record.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Path, [Parameter(Mandatory = $true)]$Record)
    if ($PSCmdlet.ShouldProcess($Path, 'Write the target record')) {
        $json = $Record | ConvertTo-Json -Depth 12 -Compress
        $tmp = $Path + '.tmp'
        Set-Content -LiteralPath $tmp -Value $json -Encoding UTF8
        # A full disk can leave a short file without an error: read it back before it replaces the record.
        $back = [string](Get-Content -LiteralPath $tmp -Raw -Encoding UTF8)
        if ($back.TrimEnd() -ne $json) {
            Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue
            throw ('the target record {0} could not be written whole (is the disk full?)' -f $Path)
        }
        Move-Item -LiteralPath $tmp -Destination $Path -Force
    }
}

function Get-RdpTargetRecord {
    # Every record under the backup root (or the one -Id names), newest first, each with whether the
    # process that wrote an unfinished one still runs, and its folder's size; files that are not
    # records are listed as damaged, by name and why. Read-only.
    [CmdletBinding()]
    param(
        [AllowEmptyString()][string]$Root = '',
        [AllowEmptyString()][string]$Id = ''
    )
    if (-not $Root) { $Root = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\backup' }
    $result = [ordered]@{ step = 'target-records'; status = 'ok'; error = $null; root = $Root; records = @(); damaged = @() }
    if (-not (Test-Path -LiteralPath $Root -PathType Container)) { return $result }
    $folders = @(Get-ChildItem -LiteralPath $Root -Directory -Force | Where-Object -FilterScript { -not ($_.Attributes -band [System.IO.FileAttributes]::ReparsePoint) } | Sort-Object -Property Name -Descending)
    foreach ($folder in $folders) {
        if ($Id -and $folder.Name -ne $Id) { continue }
        $file = Join-Path -Path $folder.FullName -ChildPath 'record.json'
        if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { continue }
        try {
            $record = Get-Content -LiteralPath $file -Raw -Encoding UTF8 | ConvertFrom-Json
            if ($record.schema -ne 'rdpfix-target-record/1' -or $record.id -ne $folder.Name) { throw ('not an rdpfix target record for {0}' -f $folder.Name) }
        } catch {
            $result.damaged += [ordered]@{ file = $file; why = $_.Exception.Message }
            continue
        }
        $running = $false
        if ($record.phase -ne 'complete' -and $record.pid) {
            $process = Get-Process -Id ([int]$record.pid) -ErrorAction SilentlyContinue
            if ($null -ne $process) {
                $started = ''
                try { $started = $process.StartTime.ToUniversalTime().ToString('o') } catch { $started = '' }
                $running = ($started -eq [string]$record.processStarted)
            }
        }
        $size = 0
        foreach ($f in @(Get-ChildItem -LiteralPath $folder.FullName -File -Recurse -Force -ErrorAction SilentlyContinue)) { $size += $f.Length }
        $result.records += [ordered]@{ record = $record; running = $running; size = $size; folder = $folder.FullName }
    }
    return $result
}

function Set-RdpTargetRecordUndone {
    # Mark a record undone (after its undo reported changed or ok), with who and when; the record
    # stays, as its backup does.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [AllowEmptyString()][string]$Root = '',
        [Parameter(Mandatory = $true)][string]$Id,
        [Parameter(Mandatory = $true)][string]$Status,
        [AllowEmptyString()][string]$By = ''
    )
    if (-not $Root) { $Root = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\backup' }
    $result = [ordered]@{ step = 'target-record-undone'; status = 'failed'; error = $null; id = $Id; undone = $null }
    $file = Join-Path -Path (Join-Path -Path $Root -ChildPath $Id) -ChildPath 'record.json'
    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) {
        $result.error = ('no target record {0} under {1}' -f $Id, $Root)
        return $result
    }
    $record = Get-Content -LiteralPath $file -Raw -Encoding UTF8 | ConvertFrom-Json
    if ($null -ne $record.undone) {
        $result.status = 'ok'
        $result.undone = $record.undone
        return $result
    }
    if ($PSCmdlet.ShouldProcess($file, 'Mark the record undone')) {
        $undone = [ordered]@{ time = (Get-Date).ToUniversalTime().ToString('o'); status = $Status; by = $By; user = [string](Get-RdpRunAs) }
        $record.undone = $undone
        Write-RdpRecordFile -Path $file -Record $record
        $result.undone = $undone
        $result.status = 'changed'
    } else {
        $result.status = 'would-change'
    }
    return $result
}
