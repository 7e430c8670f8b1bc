function Get-RdpRegistryValue {
[CmdletBinding()]
param(
[Parameter(Mandatory = $true)][string]$Path,
[Parameter(Mandatory = $true)][string[]]$Name
)
$values = [ordered]@{}
if (-not (Test-Path -LiteralPath $Path)) { return $values }
$key = Get-Item -LiteralPath $Path
foreach ($valueName in $Name) {
$value = $key.GetValue($valueName, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
if ($null -ne $value) { $values[$valueName] = $value }
}
return $values
}
function ConvertTo-RdpLiteral {
[CmdletBinding()]
param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Value)
return "'" + ($Value -replace "['\u2018\u2019\u201A\u201B]", '$0$0') + "'"
}
function Get-RdpSecurityState {
[CmdletBinding()]
param([Parameter(Mandatory = $true)][string]$TaskName)
$names = @('UserAuthentication', 'SecurityLayer', 'MinEncryptionLevel')
$state = [ordered]@{
local = Get-RdpRegistryValue -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name $names
policy = Get-RdpRegistryValue -Path 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name ($names + @('fAllowSecProtocolNegotiation'))
task = $null
domainJoined = $null
}
if (Get-Command -Name 'Get-ScheduledTask' -ErrorAction SilentlyContinue) {
$task = Get-ScheduledTask -TaskName $TaskName -TaskPath '\rdpfix\' -ErrorAction SilentlyContinue
if ($null -ne $task) {
$next = $null
$info = Get-ScheduledTaskInfo -InputObject $task -ErrorAction SilentlyContinue
if ($null -ne $info -and $null -ne $info.NextRunTime) { $next = $info.NextRunTime.ToUniversalTime().ToString('o') }
$state.task = [ordered]@{ name = $TaskName; state = [string]$task.State; nextRun = $next }
}
}
$computer = Get-CimInstance -ClassName Win32_ComputerSystem -ErrorAction SilentlyContinue
if ($null -ne $computer) { $state.domainJoined = [bool]$computer.PartOfDomain }
return $state
}
function Get-RdpMember {
[CmdletBinding()]
param([AllowNull()]$InputObject)
if ($null -eq $InputObject) { return @() }
if ($InputObject -is [System.Collections.IDictionary]) {
return @($InputObject.Keys | ForEach-Object -Process { [pscustomobject]@{ Name = [string]$_; Value = $InputObject[$_] } })
}
return @($InputObject.PSObject.Properties | ForEach-Object -Process { [pscustomobject]@{ Name = $_.Name; Value = $_.Value } })
}
function Set-RdpListenerValue {
[CmdletBinding(SupportsShouldProcess = $true)]
param([Parameter(Mandatory = $true)][string]$Name, [AllowNull()]$Value)
$methods = @{ UserAuthentication = @('SetUserAuthenticationRequired', 'UserAuthenticationRequired'); SecurityLayer = @('SetSecurityLayer', 'SecurityLayer'); MinEncryptionLevel = @('SetEncryptionLevel', 'MinEncryptionLevel') }
$via = $null
if ($PSCmdlet.ShouldProcess(('RDP-Tcp\{0}' -f $Name), ('Set to {0}' -f $Value))) {
if ($null -eq $Value) {
Remove-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name $Name -Confirm:$false
return 'registry'
}
try {
$setting = Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName 'Win32_TSGeneralSetting' -Filter "TerminalName='RDP-Tcp'" -ErrorAction Stop
$call = Invoke-CimMethod -InputObject $setting -MethodName $methods[$Name][0] -Arguments @{ $methods[$Name][1] = [uint32]$Value } -Confirm:$false
if ($call.ReturnValue -eq 0) { $via = 'wmi' }
else { Write-Verbose -Message ('{0} returned {1}; writing the registry' -f $methods[$Name][0], $call.ReturnValue) }
} catch {
Write-Verbose -Message ('WMI failed ({0}); writing the registry' -f $_.Exception.Message)
}
if (-not $via) {
$null = New-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp' -Name $Name -PropertyType DWord -Value ([int]$Value) -Force
$via = 'registry'
}
}
return $via
}
function Set-RdpPolicyValue {
[CmdletBinding(SupportsShouldProcess = $true)]
param([Parameter(Mandatory = $true)][string]$Name, [AllowNull()]$Value)
if ($PSCmdlet.ShouldProcess(('Terminal Services policy\{0}' -f $Name), ('Set to {0}' -f $Value))) {
if ($null -eq $Value) { Remove-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name $Name -Confirm:$false }
else { $null = New-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services' -Name $Name -PropertyType DWord -Value ([int]$Value) -Force }
return 'policy'
}
return $null
}
function Remove-RdpExpiryTask {
[CmdletBinding(SupportsShouldProcess = $true)]
param([Parameter(Mandatory = $true)][string]$TaskName)
if ($PSCmdlet.ShouldProcess($TaskName, 'Remove the scheduled re-enable task')) {
Unregister-ScheduledTask -TaskName $TaskName -TaskPath '\rdpfix\' -Confirm:$false
return $true
}
return $false
}
function Get-RdpRestoreOrder {
[CmdletBinding()]
param([object[]]$Plan = @())
$toTls = @($Plan | Where-Object -FilterScript { $_.name -eq 'SecurityLayer' -and $_.value -eq 2 }).Count -gt 0
if ($toTls) { return @('MinEncryptionLevel', 'SecurityLayer', 'UserAuthentication') }
return @('SecurityLayer', 'MinEncryptionLevel', 'UserAuthentication')
}
function Get-RdpValueRestoreLine {
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
function Restore-RdpSecuritySetting {
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
$now = $null
if ($state[$scope].Contains($entry.Name)) { $now = [int]$state[$scope][$entry.Name] }
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
$after = Get-RdpSecurityState -TaskName $TaskName
$result.after = $after
foreach ($item in $plan) {
$now = $null
if ($after[$item.scope].Contains($item.name)) { $now = [int]$after[$item.scope][$item.name] }
if ($now -ne $item.value) { $result.problems += ('{0} {1} reads {2}, expected {3}' -f $item.scope, $item.name, $now, $item.value) }
}
if ($result.problems.Count -gt 0) { $result.status = 'failed' } else { $result.status = 'changed' }
} else {
$result.status = 'would-change'
}
} catch {
$result.status = 'failed'
$result.error = $_.Exception.Message
}
return $result
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
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
try {
$rdpfixResult = Restore-RdpSecuritySetting -Values ($rdpfixValuesJson | ConvertFrom-Json) -BackupPath $rdpfixBackupPath -TaskName 'rdpfix-reenable-nla' -RemoveTask
$rdpfixLine = '{0} rdpfix toggle-nla expiry: {1}; restored {2}; kept {3}; {4}' -f (Get-Date).ToString('o'), $rdpfixResult.status, (@($rdpfixResult.restored | ForEach-Object -Process { '{0} {1}={2}' -f $_.scope, $_.name, $_.after }) -join ', '), (@($rdpfixResult.skipped) -join '; '), $rdpfixResult.error
} catch {
$rdpfixLine = '{0} rdpfix toggle-nla expiry failed: {1}' -f (Get-Date).ToString('o'), $_.Exception.Message
}
Write-RdpExpiryLog -Line $rdpfixLine