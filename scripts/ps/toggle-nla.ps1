# toggle-nla.ps1: The toggle-nla step: show, change (with a backup and an optional expiry task) and put back the RDP security values.
# requires: security, backup, literal, result, record, handshake
# Entry functions (one per script rdpfix builds): Get-RdpNlaStatus (status), Set-RdpSecuritySetting
# (enable, disable, --security-layer, --min-encryption-level), Restore-RdpLatestSetting (--restore),
# Restore-RdpSecuritySetting (the journal's undo) and Restore-RdpExpiredSetting (the expiry task).

function Get-RdpNlaStatus {
    # toggle-nla status: the local and Group Policy values and the expiry task (read-only).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$TaskName)
    return [ordered]@{ step = 'toggle-nla'; mode = 'status'; status = 'ok'; before = (Get-RdpSecurityState -TaskName $TaskName); after = $null }
}

function Set-RdpSecuritySetting {
    # Change the values that differ, where they take effect: refuses when a Group Policy value would
    # override the change (unless -Policy) and when the result is an invalid combination. Backs up,
    # registers the expiry task first (so a weakening can never be left without one), changes,
    # reads back.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$Desired,
        [Parameter(Mandatory = $true)][string[]]$Order,
        [switch]$Policy,
        [int]$ExpirySeconds = 0,
        [switch]$RemoveTask,
        [Parameter(Mandatory = $true)][string]$TaskName,
        [Parameter(Mandatory = $true)][string]$TaskScript,
        [AllowEmptyString()][string]$BackupRoot = '',
        [AllowEmptyString()][string]$RecordTag = ''
    )
    $before = Get-RdpSecurityState -TaskName $TaskName
    $result = [ordered]@{ step = 'toggle-nla'; mode = 'set'; status = 'failed'; error = $null; refused = $null; warnings = @(); before = $before; after = $null; plan = @(); changed = @(); backup = $null; task = $null; taskRemoved = $false; problems = @(); handshake = $null }
    try {
        $projected = [ordered]@{ local = [ordered]@{}; policy = [ordered]@{} }
        foreach ($scope in @('local', 'policy')) { foreach ($key in @($before[$scope].Keys)) { $projected[$scope][$key] = $before[$scope][$key] } }
        $plan = @()
        foreach ($name in $Order) {
            if (-not $Desired.Contains($name)) { continue }
            $want = [int]$Desired[$name]
            $policyHolds = $before.policy.Contains($name)
            if ($policyHolds -and [int]$before.policy[$name] -ne $want) {
                if (-not $Policy) {
                    $result.refused = 'policy-override'
                    throw ('Group Policy sets {0} = {1}, which overrides the local value: the change would not take effect. Pass --policy to change the policy value too' -f $name, $before.policy[$name])
                }
                $plan += [ordered]@{ scope = 'policy'; name = $name; before = [int]$before.policy[$name]; after = $want }
                $projected.policy[$name] = $want
            }
            $localNow = Get-RdpStateValue -State $before -Scope 'local' -Name $name
            if ($localNow -ne $want -and (-not $policyHolds -or $Policy)) {
                $plan += [ordered]@{ scope = 'local'; name = $name; before = $localNow; after = $want }
                $projected.local[$name] = $want
            }
        }
        $layer = Get-RdpProjectedValue -Projected $projected -Name 'SecurityLayer'
        $level = Get-RdpProjectedValue -Projected $projected -Name 'MinEncryptionLevel'
        if ($layer -eq 2 -and $level -eq 1) {
            $result.refused = 'invalid-combination'
            throw 'SecurityLayer 2 (TLS) is not valid with MinEncryptionLevel 1 (Low): pass --min-encryption-level 2 (or higher) as well'
        }
        if ((Get-RdpProjectedValue -Projected $projected -Name 'UserAuthentication') -eq 1 -and $layer -eq 0) {
            $result.warnings += 'NLA is required but SecurityLayer is RDP security: CredSSP needs TLS'
        }
        $result.plan = $plan
        $dropTask = ($RemoveTask -and $null -ne $before.task)
        if ($plan.Count -eq 0 -and -not $dropTask) {
            $result.status = 'ok'
            $result.after = $before
            return $result
        }
        if ($PSCmdlet.ShouldProcess('RDP security settings', ('Back up, then set {0}' -f (@($plan | ForEach-Object -Process { '{0} {1}={2}' -f $_.scope, $_.name, $_.after }) -join ', ')))) {
            $folder = New-RdpTargetRecord -Root $BackupRoot -Step 'toggle-nla' -Tag $RecordTag -Result $result -Options ([ordered]@{ policy = [bool]$Policy; expirySeconds = $ExpirySeconds; removeTask = [bool]$RemoveTask })
            $result.backup = $folder
            $files = @((Join-Path -Path $folder -ChildPath 'rdp-tcp.reg'), (Join-Path -Path $folder -ChildPath 'values.json'))
            $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp', $files[0], '/y')
            if (Test-RdpRegistryKey -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services') {
                $files += Join-Path -Path $folder -ChildPath 'policy.reg'
                $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', 'HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services', $files[2], '/y')
            }
            $values = [ordered]@{ local = [ordered]@{}; policy = [ordered]@{} }
            foreach ($item in $plan) { $values[$item.scope][$item.name] = [ordered]@{ before = $item.before; after = $item.after } }
            $valuesJson = $values | ConvertTo-Json -Compress -Depth 4
            Set-Content -LiteralPath $files[1] -Value $valuesJson -Encoding ASCII
            Assert-RdpBackupFile -Path $files
            Save-RdpTargetRecord -Result $result
            if ($ExpirySeconds -gt 0 -and $plan.Count -gt 0) {
                $result.task = Register-RdpExpiryTask -TaskName $TaskName -TaskScript $TaskScript -ValuesJson $valuesJson -BackupPath $folder -Seconds $ExpirySeconds
            }
            if ($dropTask) { $result.taskRemoved = Remove-RdpExpiryTask -TaskName $TaskName }
            foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'policy' })) {
                Save-RdpTargetRecord -Result $result -Pending @{ changed = [ordered]@{ scope = 'policy'; name = $item.name; before = $item.before; after = $item.after; via = 'policy' } }
                $null = Set-RdpPolicyValue -Name $item.name -Value $item.after
                $result.changed += [ordered]@{ scope = 'policy'; name = $item.name; before = $item.before; after = $item.after; via = 'policy' }
            }
            foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'local' })) {
                Save-RdpTargetRecord -Result $result -Pending @{ changed = [ordered]@{ scope = 'local'; name = $item.name; before = $item.before; after = $item.after; via = $null } }
                $via = Set-RdpListenerValue -Name $item.name -Value $item.after
                $result.changed += [ordered]@{ scope = 'local'; name = $item.name; before = $item.before; after = $item.after; via = $via }
            }
            $registered = ''
            if ($null -ne $result.task) { $registered = $TaskName }
            $result.restore = @(Get-RdpValueRestoreLine -Change $result.changed -TaskName $registered)
            $result.after = Get-RdpSecurityState -TaskName $TaskName
            $result.problems = @(Get-RdpReadBackProblem -State $result.after -Plan $plan -Expected 'after')
            # The values read back; a client's handshake must now complete too (checked from the
            # server itself). Standard RDP Security in force afterwards is its answer when this change
            # asked for it, or when NLA is not required then (a default client falls back to it and
            # connects); with NLA required over RDP security the handshake is still broken.
            $accept = @()
            $askedRdp = ($Desired.Contains('SecurityLayer') -and [int]$Desired['SecurityLayer'] -eq 0)
            if ($layer -eq 0 -and ($askedRdp -or (Get-RdpProjectedValue -Projected $projected -Name 'UserAuthentication') -ne 1)) { $accept = @('security-layer-mismatch') }
            if ($result.problems.Count -eq 0) { Test-RdpStepHandshake -Result $result -Accept $accept }
            Set-RdpStepOutcome -Result $result
        } else {
            $result.status = 'would-change'
        }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    return $result
}

function Get-RdpReadBackProblem {
    # The planned values that do not read back as planned, one line each; -Expected names the
    # plan's property that holds the value wanted ('after' for a change, 'value' for a restore).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$State, [object[]]$Plan = @(), [Parameter(Mandatory = $true)][string]$Expected)
    $problems = @()
    foreach ($item in $Plan) {
        $now = Get-RdpStateValue -State $State -Scope $item.scope -Name $item.name
        $want = $item.$Expected
        if ($now -ne $want) { $problems += ('{0} {1} reads {2}, expected {3}' -f $item.scope, $item.name, $now, $want) }
    }
    return $problems
}

function Get-RdpProjectedValue {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Projected, [Parameter(Mandatory = $true)][string]$Name)
    if ($Projected.policy.Contains($Name)) { return [int]$Projected.policy[$Name] }
    if ($Projected.local.Contains($Name)) { return [int]$Projected.local[$Name] }
    return $null
}

function Register-RdpExpiryTask {
    # A one-time task, as SYSTEM, that puts the recorded values back when the time is up.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$TaskName,
        [Parameter(Mandatory = $true)][string]$TaskScript,
        [Parameter(Mandatory = $true)][string]$ValuesJson,
        [Parameter(Mandatory = $true)][string]$BackupPath,
        [Parameter(Mandatory = $true)][int]$Seconds
    )
    $due = (Get-Date).AddSeconds($Seconds)
    $script = '$rdpfixValuesJson = ' + (ConvertTo-RdpLiteral -Value $ValuesJson) + [Environment]::NewLine + '$rdpfixBackupPath = ' + (ConvertTo-RdpLiteral -Value $BackupPath) + [Environment]::NewLine + $TaskScript
    $encoded = ConvertTo-RdpTaskCommand -Script $script
    if ($PSCmdlet.ShouldProcess($TaskName, ('Register a one-time SYSTEM task at {0} that puts the settings back' -f $due))) {
        Register-RdpScheduledTask -TaskName $TaskName -TaskPath '\rdpfix\' -EncodedCommand $encoded -At $due -Description 'rdpfix: puts the RDP security settings back when a temporary weakening expires (toggle-nla --for)'
        if ($null -eq (Get-RdpScheduledTask -TaskName $TaskName -TaskPath '\rdpfix\')) { throw 'the expiry task was not registered; nothing was changed' }
    }
    return [ordered]@{ name = $TaskName; due = $due.ToUniversalTime().ToString('o') }
}

function ConvertTo-RdpTaskCommand {
    # The -EncodedCommand of a task that runs Script: the script gzip-compressed and base64-encoded
    # inside a one-line loader that decompresses and dot-sources it, so the whole command line stays
    # far under Windows' 32,767 characters (the plain script, UTF-16 and base64, would not).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Script)
    $memory = New-Object -TypeName System.IO.MemoryStream
    $gzip = New-Object -TypeName System.IO.Compression.GZipStream -ArgumentList $memory, ([System.IO.Compression.CompressionMode]::Compress)
    $bytes = [System.Text.Encoding]::UTF8.GetBytes($Script)
    $gzip.Write($bytes, 0, $bytes.Length)
    $gzip.Close()
    $packed = [Convert]::ToBase64String($memory.ToArray())
    $loader = '$rdpfixReader = New-Object -TypeName System.IO.StreamReader -ArgumentList (New-Object -TypeName System.IO.Compression.GZipStream -ArgumentList (New-Object -TypeName System.IO.MemoryStream -ArgumentList (,[Convert]::FromBase64String(''' + $packed + '''))), ([System.IO.Compression.CompressionMode]::Decompress)), ([System.Text.Encoding]::UTF8)' + [Environment]::NewLine + '. ([scriptblock]::Create($rdpfixReader.ReadToEnd()))'
    return [Convert]::ToBase64String([System.Text.Encoding]::Unicode.GetBytes($loader))
}

function Remove-RdpExpiryTask {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$TaskName)
    if ($PSCmdlet.ShouldProcess($TaskName, 'Remove the scheduled re-enable task')) {
        Unregister-RdpScheduledTask -TaskName $TaskName -TaskPath '\rdpfix\'
        return $true
    }
    return $false
}

function Restore-RdpLatestSetting {
    # --restore: the newest toggle-nla backup on this machine that was not restored yet.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([AllowEmptyString()][string]$BackupRoot = '', [Parameter(Mandatory = $true)][string]$TaskName)
    if (-not $BackupRoot) { $BackupRoot = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\backup' }
    # Folders are <time>-toggle-nla-<6 hex> (older rdpfix: <time>-toggle-nla).
    $candidates = @(Get-ChildItem -LiteralPath $BackupRoot -Directory -ErrorAction SilentlyContinue | Where-Object -FilterScript { $_.Name -match '-toggle-nla(-[0-9a-f]{6})?$' } | Sort-Object -Property Name -Descending |
        Where-Object -FilterScript { (Test-Path -LiteralPath (Join-Path -Path $_.FullName -ChildPath 'values.json')) -and -not (Test-Path -LiteralPath (Join-Path -Path $_.FullName -ChildPath 'restored.json')) })
    if ($candidates.Count -eq 0) {
        $state = Get-RdpSecurityState -TaskName $TaskName
        return [ordered]@{ step = 'toggle-nla'; mode = 'restore'; status = 'ok'; error = $null; note = ('no toggle-nla backup left to restore under {0}' -f $BackupRoot); before = $state; after = $state; restoredFrom = $null }
    }
    $folder = $candidates[0].FullName
    $values = Get-Content -LiteralPath (Join-Path -Path $folder -ChildPath 'values.json') -Raw | ConvertFrom-Json
    $restored = Restore-RdpSecuritySetting -Values $values -BackupPath $folder -TaskName $TaskName -RemoveTask
    $restored['restoredFrom'] = $folder
    return $restored
}

function Restore-RdpSecuritySetting {
    # Put recorded values back, only those still as rdpfix left them; anything changed since is
    # reported and kept. Removes the expiry task; marks the backup folder restored.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)]$Values,
        [AllowEmptyString()][string]$BackupPath = '',
        [Parameter(Mandatory = $true)][string]$TaskName,
        [switch]$RemoveTask
    )
    $state = Get-RdpSecurityState -TaskName $TaskName
    $result = [ordered]@{ step = 'toggle-nla'; mode = 'restore'; status = 'failed'; error = $null; before = $state; after = $null; restored = @(); skipped = @(); taskRemoved = $false; problems = @() }
    try {
        $plan = @()
        foreach ($scope in @('local', 'policy')) {
            foreach ($entry in @(Get-RdpMember -InputObject $Values.$scope)) {
                $now = Get-RdpStateValue -State $state -Scope $scope -Name $entry.Name
                $was = $entry.Value.before
                $left = $entry.Value.after
                if ($now -eq $was) { continue }
                if ($now -ne $left) { $result.skipped += ('{0} {1} is {2} now, not {3} as rdpfix left it: kept' -f $scope, $entry.Name, $now, $left); continue }
                $plan += [pscustomobject]@{ scope = $scope; name = $entry.Name; value = $was; from = $now }
            }
        }
        $dropTask = ($RemoveTask -and $null -ne $state.task)
        if ($plan.Count -eq 0 -and -not $dropTask) {
            $result.status = 'ok'
            $result.after = $state
            return $result
        }
        if ($PSCmdlet.ShouldProcess('RDP security settings', 'Restore the recorded values')) {
            foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'policy' })) {
                $null = Set-RdpPolicyValue -Name $item.name -Value $item.value
                $result.restored += [ordered]@{ scope = 'policy'; name = $item.name; before = $item.from; after = $item.value; via = 'policy' }
            }
            foreach ($name in @(Get-RdpRestoreOrder -Plan $plan)) {
                foreach ($item in @($plan | Where-Object -FilterScript { $_.scope -eq 'local' -and $_.name -eq $name })) {
                    $via = Set-RdpListenerValue -Name $item.name -Value $item.value
                    $result.restored += [ordered]@{ scope = 'local'; name = $item.name; before = $item.from; after = $item.value; via = $via }
                }
            }
            if ($dropTask) { $result.taskRemoved = Remove-RdpExpiryTask -TaskName $TaskName }
            $result.restore = @(Get-RdpValueRestoreLine -Change $result.restored)
            if ($BackupPath -and (Test-Path -LiteralPath $BackupPath)) {
                Set-Content -LiteralPath (Join-Path -Path $BackupPath -ChildPath 'restored.json') -Value ((Get-Date).ToUniversalTime().ToString('o')) -Encoding ASCII
            }
            $result.after = Get-RdpSecurityState -TaskName $TaskName
            $result.problems = @(Get-RdpReadBackProblem -State $result.after -Plan $plan -Expected 'value')
            Set-RdpStepOutcome -Result $result
        } else {
            $result.status = 'would-change'
        }
    } catch {
        Set-RdpStepFailure -Result $result -ErrorRecord $_
    }
    return $result
}

function Get-RdpRestoreOrder {
    # Leaving or entering TLS in an order WMI accepts (see rdpfix toggle-nla applyOrder).
    [CmdletBinding()]
    param([object[]]$Plan = @())
    $toTls = @($Plan | Where-Object -FilterScript { $_.name -eq 'SecurityLayer' -and $_.value -eq 2 }).Count -gt 0
    if ($toTls) { return @('MinEncryptionLevel', 'SecurityLayer', 'UserAuthentication') }
    return @('SecurityLayer', 'MinEncryptionLevel', 'UserAuthentication')
}

function Get-RdpMember {
    # Name/value pairs of a hashtable or of an object read back from JSON.
    [CmdletBinding()]
    param([AllowNull()]$InputObject)
    if ($null -eq $InputObject) { return @() }
    if ($InputObject -is [System.Collections.IDictionary]) {
        return @($InputObject.Keys | ForEach-Object -Process { [pscustomobject]@{ Name = [string]$_; Value = $InputObject[$_] } })
    }
    return @($InputObject.PSObject.Properties | ForEach-Object -Process { [pscustomobject]@{ Name = $_.Name; Value = $_.Value } })
}

function Restore-RdpExpiredSetting {
    # What the expiry task runs (as SYSTEM, unattended, when a temporary weakening is up): the
    # recorded values back through Restore-RdpSecuritySetting, and one line in
    # C:\ProgramData\rdpfix\log\toggle-nla-expiry.log. The task's script starts with two lines that
    # set $rdpfixValuesJson and $rdpfixBackupPath (written as literals when the task is registered);
    # its last line passes them here.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$rdpfixValuesJson,
        [AllowEmptyString()][string]$rdpfixBackupPath = ''
    )
    $ErrorActionPreference = 'Stop'
    Set-StrictMode -Version Latest
    try {
        $result = Restore-RdpSecuritySetting -Values ($rdpfixValuesJson | ConvertFrom-Json) -BackupPath $rdpfixBackupPath -TaskName 'rdpfix-reenable-nla' -RemoveTask
        $line = '{0} rdpfix toggle-nla expiry: {1}; restored {2}; kept {3}; {4}' -f (Get-Date).ToString('o'), $result.status, (@($result.restored | ForEach-Object -Process { '{0} {1}={2}' -f $_.scope, $_.name, $_.after }) -join ', '), (@($result.skipped) -join '; '), $result.error
    } catch {
        $line = '{0} rdpfix toggle-nla expiry failed: {1}' -f (Get-Date).ToString('o'), $_.Exception.Message
    }
    Write-RdpExpiryLog -Line $line
}

function Write-RdpExpiryLog {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Line)
    $folder = Join-Path -Path $env:ProgramData -ChildPath 'rdpfix\log'
    if ($PSCmdlet.ShouldProcess($folder, 'Append to toggle-nla-expiry.log')) {
        $null = New-Item -ItemType Directory -Path $folder -Force
        Add-Content -LiteralPath (Join-Path -Path $folder -ChildPath 'toggle-nla-expiry.log') -Value $Line -Encoding UTF8
    }
}
