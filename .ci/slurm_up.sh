#!/usr/bin/env bash
# Bring up a real single-node Slurm (munged + slurmctld + slurmd) on this
# machine, without systemd, and smoke-test job arrays and dependencies.
# Idempotent: safe to run again while Slurm is up or after .ci/slurm_down.sh.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "[slurm_up] $*"; }
start_ts=$(date +%s)

# --- packages ---------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  if ! apt-get install -y -qq slurm-wlm munge >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
fi

# --- munge --------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0700 /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating munge key"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  pkill -x munged 2>/dev/null || true
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.2
  done
  munge -n | unmunge >/dev/null
fi

# --- slurm.conf ---------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
margin=$(( mem_mb / 10 > 1024 ? mem_mb / 10 : 1024 ))
real_mem=$(( mem_mb - margin ))
(( real_mem < 512 )) && real_mem=512

install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
conf=/etc/slurm/slurm.conf
new_conf=$(cat <<EOF
# Written by .ci/slurm_up.sh: single-node Slurm for CI (no systemd, no cgroups).
ClusterName=ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=60
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
)
conf_changed=0
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$new_conf" ]]; then
  printf '%s\n' "$new_conf" > "$conf"
  conf_changed=1
fi

# --- daemons ------------------------------------------------------------------
dump_logs() {
  echo "---- slurmctld.log ----"; tail -n 40 /var/log/slurm/slurmctld.log 2>/dev/null || true
  echo "---- slurmd.log ----";    tail -n 40 /var/log/slurm/slurmd.log 2>/dev/null || true
}

if (( conf_changed )); then
  # A running daemon with an older config would be wrong; restart both.
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  for _ in $(seq 50); do pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || break; sleep 0.2; done
fi
if ! pgrep -x slurmctld >/dev/null; then
  log "starting slurmctld"
  /usr/sbin/slurmctld || { dump_logs; exit 1; }
fi
# slurmctld must answer before slurmd registers.
for _ in $(seq 60); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
if ! pgrep -x slurmd >/dev/null; then
  log "starting slurmd"
  /usr/sbin/slurmd || { dump_logs; exit 1; }
fi

deadline=$(( $(date +%s) + 60 ))
state=""
while :; do
  state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
  case $state in
    idle|mixed|allocated) break ;;
    down*|drain*|fail*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
  esac
  if (( $(date +%s) > deadline )); then
    echo "[slurm_up] node never became idle (state: '${state}')" >&2
    sinfo -N -l 2>&1 || true
    scontrol show node "$host" 2>&1 || true
    dump_logs
    exit 1
  fi
  sleep 1
done
log "node ${host} is ${state} (${cpus} CPUs, ${real_mem} MB)"

# --- smoke test ---------------------------------------------------------------
workdir=$(mktemp -d /tmp/slurm-smoke.XXXXXX)
rm -f /tmp/slurm-smoke-[0-9]*
cd "$workdir"
arr=$(sbatch --parsable --wait --array=0-3 -o "$workdir/arr-%A_%a.out" \
  --wrap 'echo task $SLURM_ARRAY_TASK_ID > /tmp/slurm-smoke-$SLURM_ARRAY_TASK_ID') \
  || { echo "[slurm_up] array job failed" >&2; dump_logs; exit 1; }
arr=${arr%%;*}
sbatch --parsable --wait --dependency=afterok:"$arr" -o "$workdir/dep-%j.out" --wrap true >/dev/null \
  || { echo "[slurm_up] dependent job failed" >&2; dump_logs; exit 1; }
for i in 0 1 2 3; do
  if [[ "$(cat /tmp/slurm-smoke-$i 2>/dev/null)" != "task $i" ]]; then
    echo "[slurm_up] missing or wrong /tmp/slurm-smoke-$i" >&2
    dump_logs
    exit 1
  fi
done
rm -rf "$workdir" /tmp/slurm-smoke-[0-9]*
cd /
log "took $(( $(date +%s) - start_ts )) s"
echo "slurm up"
