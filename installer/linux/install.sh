#!/bin/sh
# Installs (or upgrades) the erp-edge agent as a systemd service. Run it from the folder
# `npm run package` made (dist/package/linux-x64/), which holds the executable beside this script.
#
#   sudo ./install.sh --site WH1 --broker mqtts://mqtt.example.com:8883 [--agent ID]
#   sudo ./install.sh                        # upgrade: same command, config and outbox are kept
#
# Options:
#   --site S --agent A --broker URL   for the starter /etc/erp-edge/agent.yaml (`edge-agent init`),
#                                     written only when there is none; --agent defaults to the host name
#   --rw-path DIR                     a drop folder outside /var/lib/erp-edge (repeatable): written to
#                                     the unit's ReadWritePaths= drop-in (the rest of / is read-only)
#   --root DIR                        install into DIR as if it were / (packaging, tests): no systemctl
#   --from DIR                        where the executable and unit are (default: this script's folder)
#   --no-start                        enable but do not (re)start the service
#
# Idempotent: a second run with the same files changes nothing. An upgrade replaces the executable
# (atomically: a running agent keeps its old file until it restarts), keeps /etc/erp-edge and
# /var/lib/erp-edge (the outbox), and restarts the service.
set -eu

ROOT=/
FROM=$(cd "$(dirname "$0")" && pwd)
SITE= AGENT= BROKER= RW_PATHS= START=yes
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --site) SITE=$2; shift 2 ;;
    --agent) AGENT=$2; shift 2 ;;
    --broker) BROKER=$2; shift 2 ;;
    --rw-path) RW_PATHS="$RW_PATHS $2"; shift 2 ;;
    --root) ROOT=$2; shift 2 ;;
    --from) FROM=$2; shift 2 ;;
    --no-start) START=no; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done
ROOT=${ROOT%/}
say() { echo "install.sh: $*"; }

for f in edge-agent better_sqlite3.node erp-edge-agent.service erp-edge.sysusers uninstall.sh; do
  [ -f "$FROM/$f" ] || { echo "install.sh: $FROM/$f is missing (run this from the folder npm run package made)" >&2; exit 1; }
done

# Copies only when the content or mode differs, through a temporary name and a rename: an
# unchanged install touches nothing, and a running executable is never written in place.
put() { # put MODE SRC DEST
  if [ -f "$3" ] && cmp -s "$2" "$3" && [ "0$(stat -c %a "$3")" = "$1" ]; then return 0; fi
  install -m "$1" "$2" "$3.new.$$"
  mv -f "$3.new.$$" "$3"
  say "installed $3"
}

# 1. The service user, from the sysusers.d file (systemd-sysusers creates it once).
install -d -m 0755 "$ROOT/usr/lib/sysusers.d"
put 0644 "$FROM/erp-edge.sysusers" "$ROOT/usr/lib/sysusers.d/erp-edge.conf"
if [ -n "$ROOT" ]; then
  install -d -m 0755 "$ROOT/etc"
  systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/erp-edge.conf"
else
  systemd-sysusers /usr/lib/sysusers.d/erp-edge.conf
fi
# Numeric ids from the (possibly fake) root's own files: the host may not know the user.
uid=$(awk -F: '$1 == "erp-edge" { print $3 }' "$ROOT/etc/passwd")
gid=$(awk -F: '$1 == "erp-edge" { print $3 }' "$ROOT/etc/group")
[ -n "$uid" ] && [ -n "$gid" ] || { echo "install.sh: user erp-edge was not created" >&2; exit 1; }

# 2. The executable and its native module (the SQLite binding, loaded from beside it).
install -d -m 0755 "$ROOT/opt/erp-edge" "$ROOT/opt/erp-edge/bin" "$ROOT/usr/local/bin"
put 0755 "$FROM/edge-agent" "$ROOT/opt/erp-edge/bin/edge-agent"
put 0644 "$FROM/better_sqlite3.node" "$ROOT/opt/erp-edge/bin/better_sqlite3.node"
# So that the installed `edge-agent uninstall-service` finds it.
put 0755 "$FROM/uninstall.sh" "$ROOT/opt/erp-edge/bin/uninstall.sh"
[ "$(readlink "$ROOT/usr/local/bin/edge-agent" 2>/dev/null || true)" = /opt/erp-edge/bin/edge-agent ] ||
  ln -sfn /opt/erp-edge/bin/edge-agent "$ROOT/usr/local/bin/edge-agent"

# 3. Folders: state (the outbox) owned by the service user; config readable by its group only.
install -d -m 0750 -o "$uid" -g "$gid" "$ROOT/var/lib/erp-edge"
install -d -m 0750 -o 0 -g "$gid" "$ROOT/etc/erp-edge"

# 4. The starter config, only when there is none (an upgrade keeps the site's).
CONFIG="$ROOT/etc/erp-edge/agent.yaml"
if [ ! -f "$CONFIG" ]; then
  set -- init --config "$CONFIG" --data-dir /var/lib/erp-edge
  [ -n "$SITE" ] && set -- "$@" --site "$SITE"
  [ -n "$AGENT" ] && set -- "$@" --agent "$AGENT"
  [ -n "$BROKER" ] && set -- "$@" --broker "$BROKER"
  "$ROOT/opt/erp-edge/bin/edge-agent" "$@"
  chown 0:"$gid" "$CONFIG"
  chmod 0640 "$CONFIG"
fi

# 5. The unit, and the drop-in for drop folders outside the state folder.
install -d -m 0755 "$ROOT/etc/systemd/system"
put 0644 "$FROM/erp-edge-agent.service" "$ROOT/etc/systemd/system/erp-edge-agent.service"
if [ -n "$RW_PATHS" ]; then
  install -d -m 0755 "$ROOT/etc/systemd/system/erp-edge-agent.service.d"
  tmp=$(mktemp)
  printf '# Written by install.sh --rw-path: drop folders the agent reads and moves files out of.\n[Service]\nReadWritePaths=%s\n' "${RW_PATHS# }" > "$tmp"
  put 0644 "$tmp" "$ROOT/etc/systemd/system/erp-edge-agent.service.d/rw-paths.conf"
  rm -f "$tmp"
fi

# 6. Enable and (re)start: only on a machine booted with systemd, never into a fake root.
if [ -n "$ROOT" ]; then
  say "installed into $ROOT (no systemctl calls for a fake root)"
elif [ ! -d /run/systemd/system ]; then
  say "systemd is not running here: start it yourself with $ROOT/opt/erp-edge/bin/edge-agent run --config /etc/erp-edge/agent.yaml"
else
  systemctl daemon-reload
  systemctl enable erp-edge-agent.service
  if [ "$START" = yes ]; then
    systemctl restart erp-edge-agent.service
    say "erp-edge-agent is $(systemctl is-active erp-edge-agent.service); logs: journalctl -u erp-edge-agent"
  fi
fi
