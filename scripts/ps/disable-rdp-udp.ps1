# disable-rdp-udp.ps1: The Remote Desktop client's UDP transport policy, fClientDisableUDP under HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services\Client (the \Client subkey; without it the value is ignored), on the Windows client.
# requires: windows, literal, record

function Get-RdpUdpPolicy {
    # Whether the policy key exists and the value of fClientDisableUDP ($null when it is not set).
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Key)
    $state = [ordered]@{ keyExists = $false; value = $null }
    if (Test-RdpRegistryKey -Path $Key) {
        $state.keyExists = $true
        $values = Get-RdpRegistryValue -Path $Key -Name @('fClientDisableUDP')
        if ($values.Contains('fClientDisableUDP')) {
            $state.value = [long]$values['fClientDisableUDP']
        }
    }
    return $state
}

function Set-RdpUdpPolicy {
    # Set fClientDisableUDP to $Value, or remove it when $Value is $null. When it differs: back the
    # key up with reg export (when the key exists), change it, read it back. Under -WhatIf it reports
    # 'would-change' and touches nothing; a second run reports 'ok'.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param(
        [Parameter(Mandatory = $true)][string]$Key,
        [Parameter(Mandatory = $true)][string]$RegKey,
        [AllowNull()][Nullable[long]]$Value,
        [Parameter(Mandatory = $true)][string]$BackupDir,
        [AllowEmptyString()][string]$RecordTag = ''
    )
    $before = Get-RdpUdpPolicy -Key $Key
    $result = [ordered]@{
        step = 'disable-rdp-udp'
        status = 'ok'
        key = $RegKey
        before = $before.value
        after = $before.value
        keyExisted = $before.keyExists
        backup = $null
    }
    if ($before.value -eq $Value) {
        return $result
    }
    $action = 'Remove fClientDisableUDP'
    if ($null -ne $Value) {
        $action = 'Set fClientDisableUDP = {0}' -f $Value
    }
    if ($PSCmdlet.ShouldProcess($RegKey, $action)) {
        $folder = New-RdpTargetRecord -Root $BackupDir -Step 'disable-rdp-udp' -Tag $RecordTag -Result $result -Options ([ordered]@{ backupDir = $BackupDir; value = $Value })
        if ($before.keyExists) {
            $backupFile = Join-Path -Path $folder -ChildPath 'disable-rdp-udp.reg'
            $null = Invoke-RdpNative -FilePath 'reg.exe' -ArgumentList @('export', $RegKey, $backupFile, '/y')
            $result.backup = $backupFile
        }
        Save-RdpTargetRecord -Result $result -Pending @{ after = $Value }
        if ($null -eq $Value) {
            Remove-RdpRegistryValue -Path $Key -Name 'fClientDisableUDP'
        } else {
            if (-not $before.keyExists) {
                # -Force creates the missing parent keys too (Policies\...\Terminal Services).
                New-RdpRegistryKey -Path $Key
            }
            Set-RdpRegistryValue -Path $Key -Name 'fClientDisableUDP' -Type DWord -Value $Value
        }
        # What an administrator pastes on this machine to put the previous state back.
        if ($null -eq $before.value) {
            $result.restore = @(('Remove-ItemProperty -LiteralPath {0} -Name ''fClientDisableUDP''' -f (ConvertTo-RdpLiteral -Value $Key)))
        } else {
            $result.restore = @(('Set-ItemProperty -LiteralPath {0} -Name ''fClientDisableUDP'' -Type DWord -Value {1}' -f (ConvertTo-RdpLiteral -Value $Key), $before.value))
        }
        $after = Get-RdpUdpPolicy -Key $Key
        $result.after = $after.value
        if ($after.value -eq $Value) {
            $result.status = 'changed'
        } else {
            $result.status = 'failed'
            $result.error = ('fClientDisableUDP reads {0} after the change' -f $after.value)
        }
    } else {
        $result.status = 'would-change'
    }
    return $result
}
