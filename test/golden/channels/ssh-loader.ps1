$ErrorActionPreference = 'Stop'
[Console]::InputEncoding = New-Object System.Text.UTF8Encoding $false
$rdpfixScript = [Console]::In.ReadToEnd()
& ([scriptblock]::Create($rdpfixScript))