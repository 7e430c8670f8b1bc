$ErrorActionPreference = 'Stop'
[Console]::InputEncoding = New-Object System.Text.UTF8Encoding $false
$rdpfixScript = [Console]::In.ReadToEnd()
Invoke-Command -ComputerName 'vm1' -ScriptBlock ([scriptblock]::Create($rdpfixScript))