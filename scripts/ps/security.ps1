# security.ps1: The RDP security values (UserAuthentication, SecurityLayer, MinEncryptionLevel): read locally and from Group Policy, written, and the commands that put them back.
# requires: windows, literal
# The keys are the same on every server, so they are literals here: RDP-Tcp is
# HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp, the Group Policy copy
# (which wins when set) HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services, and the
# expiry task lives in the task folder \rdpfix\ (rdpfix's lib/server-ps.ts names the same keys;
# test/toggle-nla.test.ts checks they agree).

function Get-RdpSecurityState {
    # Local (RDP-Tcp) and Group Policy values, the expiry task, and whether a domain GPO may re-apply.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$TaskName)
    $names = @('UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel')
    $state = [ordered]@{
        local = Get-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name $names
        policy = Get-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name ($names + @('fAllowSecProtocolNegotiation'))
        task = $null
        domainJoined = $null
    }
    $task = Get-RdpScheduledTask -TaskName $TaskName -TaskPath '\rdpfix\'
    if ($null -ne $task) { $state.task = [ordered]@{ name = $TaskName; state = $task.State; nextRun = $task.NextRunTime } }
    $state.domainJoined = Get-RdpDomainJoined
    return $state
}

function Get-RdpStateValue {
    # One value of a Get-RdpSecurityState result ('local' or 'policy') as a number, or $null when
    # it is not set there.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]$State,
        [Parameter(Mandatory = $true)][string]$Scope,
        [Parameter(Mandatory = $true)][string]$Name
    )
    if ($State[$Scope].Contains($Name)) { return [int]$State[$Scope][$Name] }
    return $null
}

function Set-RdpListenerValue {
    # One RDP-Tcp value through the WMI Win32_TSGeneralSetting method (which applies it to the
    # listener), or the registry when WMI refuses; $null removes the value. Returns how it was set.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Name, [AllowNull()]$Value)
    $methods = @{ UserAuthentication = @('SetUserAuthenticationRequired', 'UserAuthenticationRequired'); SecurityLayer = @('SetSecurityLayer', 'SecurityLayer'); MinEncryptionLevel = @('SetEncryptionLevel', 'MinEncryptionLevel') }
    $via = $null
    if ($PSCmdlet.ShouldProcess(('RDP-Tcp\{0}' -f $Name), ('Set to {0}' -f $Value))) {
        if ($null -eq $Value) {
            Remove-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name $Name
            return 'registry'
        }
        try {
            $returned = Invoke-RdpTsSetting -MethodName $methods[$Name][0] -ArgumentName $methods[$Name][1] -Value ([uint32]$Value)
            if ($returned -eq 0) { $via = 'wmi' }
            else { Write-Verbose -Message ('{0} returned {1}; writing the registry' -f $methods[$Name][0], $returned) }
        } catch {
            Write-Verbose -Message ('WMI failed ({0}); writing the registry' -f $_.Exception.Message)
        }
        if (-not $via) {
            Set-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name $Name -Type DWord -Value ([int]$Value)
            $via = 'registry'
        }
    }
    return $via
}

function Set-RdpPolicyValue {
    # One Group Policy value (only with --policy); $null removes it.
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Name, [AllowNull()]$Value)
    if ($PSCmdlet.ShouldProcess(('Terminal Services policy\{0}' -f $Name), ('Set to {0}' -f $Value))) {
        if ($null -eq $Value) { Remove-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name $Name }
        else { Set-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name $Name -Type DWord -Value ([int]$Value) }
        return 'policy'
    }
    return $null
}

function Get-RdpValueRestoreLine {
    # The commands an administrator can paste on this server to put changed values back (each
    # change's "before": set again, or removed when it was not set), policy values first, and to
    # remove an expiry task this run registered.
    [CmdletBinding()]
    param([object[]]$Change = @(), [AllowEmptyString()][string]$TaskName = '')
    $keys = @{ local = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'; policy = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' }
    $lines = @()
    foreach ($scope in @('policy', 'local')) {
        foreach ($item in @($Change | Where-Object -FilterScript { $_.scope -eq $scope })) {
            $key = ConvertTo-RdpLiteral -Value $keys[$scope]
            if ($null -eq $item.before) { $lines += ('Remove-ItemProperty -LiteralPath {0} -Name {1}' -f $key, (ConvertTo-RdpLiteral -Value $item.name)) }
            else { $lines += ('Set-ItemProperty -LiteralPath {0} -Name {1} -Value {2} -Type DWord' -f $key, (ConvertTo-RdpLiteral -Value $item.name), [int]$item.before) }
        }
    }
    if ($TaskName) { $lines += ('Unregister-ScheduledTask -TaskName {0} -TaskPath {1} -Confirm:$false' -f (ConvertTo-RdpLiteral -Value $TaskName), (ConvertTo-RdpLiteral -Value '\rdpfix\')) }
    return $lines
}
