#!/bin/sh
# Removes the erp-edge agent service. Keeps /etc/erp-edge (the config), /var/lib/erp-edge (the
# outbox: events not yet delivered are still there) and the erp-edge user, unless --purge.
#
#   sudo ./uninstall.sh [--purge] [--root DIR]
#
#   --purge      also delete the config, the state folder with the outbox, and the user
#   --root DIR   act on DIR as if it were / (tests): no systemctl
set -eu

ROOT=/
PURGE=no
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) PURGE=yes; shift ;;
    --root) ROOT=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
ROOT=${ROOT%/}
say() { echo "uninstall.sh: $*"; }

if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl disable --now erp-edge-agent.service 2>/dev/null || true
fi

rm -f "$ROOT/etc/systemd/system/erp-edge-agent.service"
rm -rf "$ROOT/etc/systemd/system/erp-edge-agent.service.d"
rm -rf "$ROOT/opt/erp-edge"
[ "$(readlink "$ROOT/usr/local/bin/edge-agent" 2>/dev/null || true)" = /opt/erp-edge/bin/edge-agent ] && rm -f "$ROOT/usr/local/bin/edge-agent"
say "removed the service and the executable"

if [ "$PURGE" = yes ]; then
  rm -rf "$ROOT/etc/erp-edge" "$ROOT/var/lib/erp-edge"
  rm -f "$ROOT/usr/lib/sysusers.d/erp-edge.conf"
  if grep -q '^erp-edge:' "$ROOT/etc/passwd" 2>/dev/null; then
    if [ -n "$ROOT" ]; then userdel --prefix "$ROOT" erp-edge; else userdel erp-edge; fi
  fi
  if grep -q '^erp-edge:' "$ROOT/etc/group" 2>/dev/null; then
    if [ -n "$ROOT" ]; then groupdel --prefix "$ROOT" erp-edge; else groupdel erp-edge; fi
  fi
  say "purged the config, the outbox and the erp-edge user"
else
  say "kept $ROOT/etc/erp-edge (config), $ROOT/var/lib/erp-edge (outbox) and the erp-edge user; --purge removes them"
fi

if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
