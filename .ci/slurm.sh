#!/usr/bin/env bash
# A single-node SLURM on this machine, for tests/test_slurm.py: Debian's slurm-wlm and munge,
# the controller and the node daemon as root, one partition named `normal` (the default
# queue of cluster/configs/slurm.yaml) holding this host. Where it cannot (not root, no
# apt-get, the daemons do not come up) it says so in one line and exits 0: the SLURM test
# then skips, and fails under CI=true.
set -euo pipefail

PARTITION=normal
CONF=/etc/slurm/slurm.conf
MARK="# written by prefect-sklearn-dask .ci/slurm.sh"

up() { sinfo -h -p "$PARTITION" -o '%a %t' 2>/dev/null | grep -Eq '^up (idle|mix|alloc)'; }

if command -v sinfo >/dev/null && up; then
  echo "SLURM: partition '$PARTITION' already up"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "SLURM not started: it needs root and apt-get here (the SLURM test will skip, or fail under CI=true)"
  exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null); then
    echo "SLURM not started: apt-get could not install slurm-wlm and munge (the SLURM test will skip, or fail under CI=true)"
    exit 0
  fi
fi
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  echo "SLURM not started: $CONF exists and was not written by this script; leaving it alone"
  exit 0
fi

host=$(hostname -s)
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
# NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
node=$(slurmd -C | head -n 1)
cat >"$CONF" <<EOF
$MARK
ClusterName=ci
SlurmctldHost=$host
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

# munge authenticates the daemons and commands to each other; it refuses to run as root.
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 60); do
  if up; then
    echo "SLURM: single-node cluster up, partition '$PARTITION' on $host ($(sinfo -h -o '%c CPUs, %m MB'))"
    exit 0
  fi
  sleep 1
done
echo "SLURM not started: partition '$PARTITION' did not come up in 60 s (see /var/log/slurm/); the SLURM test will skip, or fail under CI=true"
