<#
.SYNOPSIS
  Installs (or upgrades) the erp-edge agent as a Windows service (nssm).
.DESCRIPTION
  Run as Administrator from the folder `npm run package` made (dist\package\win-x64\). The work is
  done by install.cmd beside this script (the one the Wine test runs): this wrapper checks for
  Administrator, passes the parameters on and shows the service's state. See install.cmd for
  what is installed where; the README's "Install at a site" for the service account.
.EXAMPLE
  .\install.ps1 -Site WH1 -Broker mqtts://mqtt.example.com:8883
.EXAMPLE
  .\install.ps1    # upgrade: config, outbox and the service's account are kept
.EXAMPLE
  .\install.ps1 -Account 'CORP\svc-erp-edge' -Password (Read-Host -AsSecureString)
#>
[CmdletBinding()]
param(
  [string]$Site,
  [string]$Agent,
  [string]$Broker,
  [string]$Account,
  [SecureString]$Password,
  [switch]$NoStart
)
$ErrorActionPreference = 'Stop'
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  throw 'install.ps1 must run as Administrator (it installs a service)'
}
$cmdArgs = @()
if ($Site) { $cmdArgs += '--site', $Site }
if ($Agent) { $cmdArgs += '--agent', $Agent }
if ($Broker) { $cmdArgs += '--broker', $Broker }
if ($Account) { $cmdArgs += '--account', $Account }
if ($Password) { $cmdArgs += '--password', [Net.NetworkCredential]::new('', $Password).Password }
if ($NoStart) { $cmdArgs += '--no-start' }
& (Join-Path $PSScriptRoot 'install.cmd') @cmdArgs
if ($LASTEXITCODE -ne 0) { throw "install.cmd failed (exit $LASTEXITCODE)" }
Get-Service erp-edge-agent | Format-Table -AutoSize Name, Status, StartType
