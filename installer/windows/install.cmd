@echo off
rem Installs (or upgrades) the erp-edge agent as a Windows service, hosted by nssm. Run it as
rem Administrator from the folder `npm run package` made (dist\package\win-x64\), which holds
rem edge-agent.exe and nssm.exe beside this script.
rem
rem   install.cmd --site WH1 --broker mqtts://mqtt.example.com:8883 [--agent ID]
rem   install.cmd                         upgrade: same command; config and outbox are kept
rem
rem Options:
rem   --site S --agent A --broker URL   for the starter C:\ProgramData\erp-edge\agent.yaml
rem                                     (`edge-agent init`), written only when there is none;
rem                                     --agent defaults to the computer name
rem   --account NAME [--password P]     the service's account (default: NT AUTHORITY\LocalService;
rem                                     an upgrade keeps the account the service has); LocalSystem,
rem                                     or DOMAIN\user with its password (see the README)
rem   --no-start                        install but do not (re)start the service
rem
rem The executable goes to %ProgramFiles%\erp-edge; config, outbox (data\) and logs (logs\, rolled
rem at 10 MB) to %ProgramData%\erp-edge, which uninstall keeps. The service restarts on failure;
rem stopping it sends Ctrl+C, on which the agent closes its outbox cleanly.
rem
rem Results are checked with `if errorlevel` and `if exist`, not `||`, and nothing exits from inside
rem a `for` body: Wine's cmd (where the test runs this) leaves the error level of builtins such as
rem copy and mkdir stale, and `exit /b` in a `for` body ends only that iteration there.
setlocal EnableExtensions
set "SVC=erp-edge-agent"
set "FROM=%~dp0"
set "PROG=%ProgramFiles%\erp-edge"
set "DATA=%ProgramData%\erp-edge"
set "SITE=" & set "AGENT=" & set "BROKER=" & set "ACCOUNT=" & set "PASSWORD=" & set "START=yes" & set "UPGRADE="

:parse
if "%~1"=="" goto parsed
if "%~1"=="--site" (set "SITE=%~2" & shift & shift & goto parse)
if "%~1"=="--agent" (set "AGENT=%~2" & shift & shift & goto parse)
if "%~1"=="--broker" (set "BROKER=%~2" & shift & shift & goto parse)
if "%~1"=="--account" (set "ACCOUNT=%~2" & shift & shift & goto parse)
if "%~1"=="--password" (set "PASSWORD=%~2" & shift & shift & goto parse)
if "%~1"=="--no-start" (set "START=no" & shift & goto parse)
echo install.cmd: unknown option %1 1>&2
exit /b 2
:parsed

set "MISSING="
for %%f in (edge-agent.exe nssm.exe uninstall.cmd) do if not exist "%FROM%%%f" set "MISSING=%%f"
if defined MISSING (
  echo install.cmd: %FROM%%MISSING% is missing ^(run this from the folder npm run package made^) 1>&2
  exit /b 1
)
set "NSSM=%PROG%\nssm.exe"
set "EXE=%PROG%\edge-agent.exe"
set "CONFIG=%DATA%\agent.yaml"

rem 1. A config already there (an upgrade's, or one written before the install) is checked by the
rem    NEW executable, from this folder, before anything is stopped or replaced: if the new release
rem    refuses it, the running service and the installed executable are left as they are.
if not exist "%CONFIG%" goto checked
"%FROM%edge-agent.exe" validate --config "%CONFIG%"
if errorlevel 1 (
  echo install.cmd: %CONFIG% does not validate with this release: nothing was stopped or replaced; fix it, then run install.cmd again 1>&2
  exit /b 1
)
:checked

rem 2. An upgrade stops the running service first: Windows cannot replace a running executable.
rem    The agent closes its outbox on the stop; pending events stay in it and go out after the start.
sc query %SVC% >nul 2>&1
if not errorlevel 1 (
  set "UPGRADE=yes"
  net stop %SVC% >nul 2>&1
)
rem    A first install runs as LocalService unless --account names another; an upgrade without
rem    --account keeps the account the service has (a domain account chosen at install stays).
if not defined ACCOUNT if not "%UPGRADE%"=="yes" set "ACCOUNT=NT AUTHORITY\LocalService"
set "ACCOUNT_SHOWN=%ACCOUNT%"
if not defined ACCOUNT set "ACCOUNT_SHOWN=kept"

rem 3. The executable, nssm and the uninstaller.
rem    Each file is copied under a temporary name, then moved over the old one. After a stop the old
rem    executable can stay in use for a moment (the service host exits after reporting STOPPED):
rem    the moves are retried for up to a minute.
if not exist "%PROG%" mkdir "%PROG%"
set "TRIES=0"
:replace
set "BUSY="
for %%f in (edge-agent.exe nssm.exe uninstall.cmd uninstall.ps1) do (
  if exist "%FROM%%%f" (
    copy /y "%FROM%%%f" "%PROG%\%%f.new" >nul
    if not exist "%PROG%\%%f.new" set "BUSY=%%f"
    move /y "%PROG%\%%f.new" "%PROG%\%%f" >nul 2>&1
    if exist "%PROG%\%%f.new" set "BUSY=%%f"
  )
)
if not defined BUSY goto replaced
set /a TRIES+=1
if %TRIES% geq 60 (
  echo install.cmd: could not replace %PROG%\%BUSY%: it is still in use 1>&2
  exit /b 1
)
ping -n 2 127.0.0.1 >nul
goto replace
:replaced
echo install.cmd: installed %EXE%

rem 4. State, config and logs: the service account may change them, nobody else but SYSTEM and
rem    Administrators may read them.
for %%d in ("%DATA%" "%DATA%\data" "%DATA%\logs") do if not exist "%%~d" mkdir "%%~d"
if not exist "%DATA%\logs" (
  echo install.cmd: could not make %DATA% 1>&2
  exit /b 1
)
set "GRANT_FAILED="
if defined ACCOUNT if /i not "%ACCOUNT%"=="LocalSystem" (
  icacls "%DATA%" /grant "%ACCOUNT%:(OI)(CI)M" >nul 2>&1
  if errorlevel 1 set "GRANT_FAILED=yes"
)
if defined GRANT_FAILED (
  echo install.cmd: warning: could not grant %ACCOUNT% write access to %DATA%: its access list is left as it was 1>&2
  goto acl_done
)
rem    A new folder there inherits ProgramData's access list, which lets every local user read
rem    agent.yaml and the outbox and create files in data\. The folder gets its own instead:
rem    inheritance removed; SYSTEM and Administrators full control (by SID, so any Windows language
rem    matches); the service account keeps the Modify granted above, at install or by an earlier
rem    release (explicit entries survive /inheritance:r). Wine's icacls is a stub that changes
rem    nothing, says nothing and exits 0: the list is read back, and a warning says when it is not
rem    what was set.
icacls "%DATA%" /inheritance:r /grant:r "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F" >nul 2>&1
icacls "%DATA%" 2>nul | find "(I)" >nul
if not errorlevel 1 goto acl_unconfirmed
icacls "%DATA%" 2>nul | find "(OI)(CI)(F)" >nul
if errorlevel 1 goto acl_unconfirmed
echo install.cmd: %DATA% is reachable by SYSTEM, Administrators and the service account only
goto acl_done
:acl_unconfirmed
echo install.cmd: warning: could not confirm the access list of %DATA% (icacls shows inherited entries or none): other local users may read its config and outbox; check it with: icacls "%DATA%" 1>&2
:acl_done

rem 5. The starter config, only when there is none (an existing one was checked in step 1).
if exist "%CONFIG%" goto configured
call :init
if not exist "%CONFIG%" (
  echo install.cmd: edge-agent init did not write %CONFIG% 1>&2
  exit /b 1
)
"%EXE%" validate --config "%CONFIG%"
if errorlevel 1 (
  echo install.cmd: %CONFIG% does not validate: fix it, then run install.cmd again 1>&2
  exit /b 1
)
:configured

rem 6. The service: nssm runs `edge-agent.exe run`, restarts it on failure (5 s apart; a crash loop
rem    is throttled), stops it with Ctrl+C (30 s to close the outbox), writes its log with rotation.
if not "%UPGRADE%"=="yes" (
  "%NSSM%" install %SVC% "%EXE%" >nul
  if errorlevel 1 (
    echo install.cmd: nssm could not install the service %SVC% 1>&2
    exit /b 1
  )
)
"%NSSM%" set %SVC% Application "%EXE%" >nul
"%NSSM%" set %SVC% AppParameters "run --config ""%CONFIG%""" >nul
if errorlevel 1 (
  echo install.cmd: nssm could not configure the service %SVC% 1>&2
  exit /b 1
)
"%NSSM%" set %SVC% AppDirectory "%DATA%" >nul
"%NSSM%" set %SVC% DisplayName "erp-edge agent" >nul
"%NSSM%" set %SVC% Description "Captures ERP, file-drop and scanner changes into a durable outbox and forwards them over MQTT" >nul
"%NSSM%" set %SVC% Start SERVICE_AUTO_START >nul
"%NSSM%" set %SVC% AppExit Default Restart >nul
"%NSSM%" set %SVC% AppRestartDelay 5000 >nul
"%NSSM%" set %SVC% AppThrottle 10000 >nul
"%NSSM%" set %SVC% AppStopMethodSkip 6 >nul
"%NSSM%" set %SVC% AppStopMethodConsole 30000 >nul
"%NSSM%" set %SVC% AppStdout "%DATA%\logs\agent.log" >nul
"%NSSM%" set %SVC% AppStderr "%DATA%\logs\agent.log" >nul
"%NSSM%" set %SVC% AppRotateFiles 1 >nul
"%NSSM%" set %SVC% AppRotateOnline 1 >nul
"%NSSM%" set %SVC% AppRotateBytes 10485760 >nul
if not defined ACCOUNT goto account_set
if /i "%ACCOUNT%"=="LocalSystem" (
  "%NSSM%" set %SVC% ObjectName LocalSystem >nul
) else (
  "%NSSM%" set %SVC% ObjectName "%ACCOUNT%" "%PASSWORD%" >nul
)
if errorlevel 1 (
  echo install.cmd: nssm could not set the service account %ACCOUNT% 1>&2
  exit /b 1
)
:account_set
echo install.cmd: service %SVC% installed (account %ACCOUNT_SHOWN%; config %CONFIG%; logs %DATA%\logs)

if "%START%"=="no" exit /b 0
net start %SVC% >nul
if errorlevel 1 (
  echo install.cmd: the service did not start: see %DATA%\logs\agent.log 1>&2
  exit /b 1
)
echo install.cmd: %SVC% is running
exit /b 0

:init
set "ARGS=--config "%CONFIG%" --data-dir "%DATA%\data""
if defined SITE set ARGS=%ARGS% --site "%SITE%"
if defined AGENT set ARGS=%ARGS% --agent "%AGENT%"
if defined BROKER set ARGS=%ARGS% --broker "%BROKER%"
"%EXE%" init %ARGS%
exit /b %errorlevel%
