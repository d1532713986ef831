#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing the many-machines recipe (README: Many machines).
#   tools/slurm/local-cluster.sh start DIR   # writes DIR/slurm.conf, starts munged (if needed), slurmctld, slurmd
#   tools/slurm/local-cluster.sh stop DIR    # stops what start started
# Then: SLURM_CONF=DIR/slurm.conf sbatch ...
# Needs root and Debian's slurmctld, slurmd, slurm-client and munge (scripts/setup --slurm installs them).
# Ports: 6817/6818 + an offset derived from DIR, so two clusters (two CI runs) never collide.
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
conf="$dir/slurm.conf"

stop() {
  for f in slurmd slurmctld; do
    [ -f "$dir/$f.pid" ] && kill "$(cat "$dir/$f.pid")" 2>/dev/null || true
  done
  [ -f "$dir/munged.started" ] && pkill -x munged 2>/dev/null || true
  rm -f "$dir/munged.started"
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

for tool in slurmctld slurmd sbatch sinfo munged munge; do
  command -v "$tool" >/dev/null || { echo "local-cluster: $tool is missing (apt-get install slurmctld slurmd slurm-client munge, or scripts/setup --slurm)" >&2; exit 3; }
done
[ "$(id -u)" -eq 0 ] || { echo "local-cluster: needs root (slurmd runs jobs as their user)" >&2; exit 3; }

# munge: one daemon per machine; start it only if none answers.
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge; chown munge:munge /run/munge /var/log/munge /var/lib/munge
  munged --force </dev/null >/dev/null 2>&1
  touch "$dir/munged.started"
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

offset=$(( $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 500 * 2 ))
host="$(hostname)"
cpus="$(nproc)"
mkdir -p "$dir/state" "$dir/spool"
cat > "$conf" <<CONF
ClusterName=workbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=$((16817 + offset))
SlurmdPort=$((16818 + offset))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$conf"
# Daemons keep no descriptor of the caller's (a test reading this script's output waits for EOF).
slurmctld -f "$conf" -i </dev/null >/dev/null 2>&1
slurmd -f "$conf" </dev/null >/dev/null 2>&1
for _ in $(seq 100); do
  if sinfo -h -o '%T' 2>/dev/null | grep -q idle; then echo "local-cluster: up ($conf)"; exit 0; fi
  sleep 0.2
done
echo "local-cluster: the node did not come up; logs: $dir/slurmctld.log $dir/slurmd.log" >&2
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
stop
exit 4
