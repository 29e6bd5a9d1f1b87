@echo off
rem Removes the erp-edge agent service (nssm) and its executable. Run it as Administrator.
rem
rem   uninstall.cmd            keeps %ProgramData%\erp-edge (config, outbox, logs)
rem   uninstall.cmd --purge    removes that too
rem
rem The service is stopped first (Ctrl+C: the agent closes its outbox), then removed.
setlocal EnableExtensions
set "SVC=erp-edge-agent"
set "PROG=%ProgramFiles%\erp-edge"
set "DATA=%ProgramData%\erp-edge"
set "PURGE=no"
:parse
if "%~1"=="" goto parsed
if "%~1"=="--purge" (set "PURGE=yes" & shift & goto parse)
echo uninstall.cmd: unknown option %1 1>&2
exit /b 2
:parsed

rem The installed copy of this script is inside the folder it removes, and cmd reads a batch file
rem as it runs: that copy hands over to one in %TEMP% (running another batch file does not return).
if /i "%~dp0"=="%PROG%\" (
  copy /y "%~f0" "%TEMP%\erp-edge-uninstall.cmd" >nul
  "%TEMP%\erp-edge-uninstall.cmd" %*
)

set "NSSM=%PROG%\nssm.exe"
if not exist "%NSSM%" set "NSSM=%~dp0nssm.exe"
sc query %SVC% >nul 2>&1
if not errorlevel 1 (
  net stop %SVC% >nul 2>&1
  "%NSSM%" remove %SVC% confirm >nul
  if errorlevel 1 (
    echo uninstall.cmd: could not remove the service %SVC% 1>&2
    exit /b 1
  )
  echo uninstall.cmd: service %SVC% removed
) else (
  echo uninstall.cmd: no service %SVC%
)
if "%PURGE%"=="yes" (
  if exist "%DATA%" rd /s /q "%DATA%"
  echo uninstall.cmd: removed %DATA%
) else (
  echo uninstall.cmd: kept %DATA% ^(config, outbox, logs; --purge removes it^)
)
if exist "%PROG%" rd /s /q "%PROG%" 2>nul
rem The folder itself can outlive its files while the script that started this one still holds it.
if exist "%PROG%\*.exe" (
  echo uninstall.cmd: could not remove %PROG% ^(a file in it is in use^) 1>&2
  exit /b 1
)
if exist "%PROG%" (
  echo uninstall.cmd: removed the files of %PROG%; the empty folder stays while a program has it open ^(as its current folder^)
) else (
  echo uninstall.cmd: removed %PROG%
)
exit /b 0
