#!/usr/bin/env bash
# Stop the single-node Slurm started by .ci/slurm_up.sh. Tolerates nothing running.
set -euo pipefail

if command -v scancel >/dev/null && pgrep -x slurmctld >/dev/null; then
  scancel --full --user=root 2>/dev/null || true
fi

stop() { # name
  pkill -x "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do pgrep -x "$1" >/dev/null || return 0; sleep 0.2; done
  pkill -9 -x "$1" 2>/dev/null || true
}
stop slurmd
stop slurmctld
stop munged
echo "slurm down"
