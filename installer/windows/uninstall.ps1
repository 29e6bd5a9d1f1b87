<#
.SYNOPSIS
  Removes the erp-edge agent service and its executable; keeps C:\ProgramData\erp-edge (config,
  outbox, logs) unless -Purge.
.DESCRIPTION
  Run as Administrator. The work is done by uninstall.cmd beside this script (the one the Wine
  test runs).
#>
[CmdletBinding()]
param([switch]$Purge)
$ErrorActionPreference = 'Stop'
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  throw 'uninstall.ps1 must run as Administrator (it removes a service)'
}
$cmdArgs = @()
if ($Purge) { $cmdArgs += '--purge' }
& (Join-Path $PSScriptRoot 'uninstall.cmd') @cmdArgs
if ($LASTEXITCODE -ne 0) { throw "uninstall.cmd failed (exit $LASTEXITCODE)" }
