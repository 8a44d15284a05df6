#!/usr/bin/env bash
# A gallery build on a real Slurm scheduler: starts a one-node cluster on localhost (munged,
# slurmctld, slurmd, from a generated minimal slurm.conf), writes the job files with
# `dipviz gallery --emit slurm --shards 4`, submits them (a 4-task array and a merge job that
# waits for it with --dependency=afterok), waits, and checks that the merged site equals a
# single-machine build of the same spec: the same result keys, metrics within a float
# tolerance. Stops the daemons and removes its files on exit (KEEP=1 keeps the files).
#
# Needs root (it installs Debian's slurm-wlm and munge when missing and starts services),
# so it runs outside the test suite. From the repository root, after `make prepare` and
# `swift build -c release`:   sudo scripts/slurm-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=${SPEC:-gallery/smoke.json}
BUDGET=${BUDGET:-smoke}
SHARDS=${SHARDS:-4}
DIPVIZ=${DIPVIZ:-$PWD/.build/release/dipviz}
TIMEOUT=${TIMEOUT:-1200}
export DIPVIZ

say() { printf '[slurm-smoke %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (it starts munged, slurmctld and slurmd)"
[ -x "$DIPVIZ" ] || fail "no dipviz at $DIPVIZ; run swift build -c release (or set DIPVIZ)"
[ -f models/alexnet-features.onnx ] && [ -f samples/chelsea.png ] || fail "models or samples missing; run make prepare"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

WORK=$(mktemp -d /tmp/dipviz-slurm-smoke.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] && [ -d "$WORK/log" ]; then
    for f in "$WORK"/log/*.log "$WORK"/site.work/slurm/*.log; do
      [ -f "$f" ] && { say "--- tail of $f"; tail -n 20 "$f"; }
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then say "files kept in $WORK"; else rm -rf "$WORK"; fi
  say "daemons stopped"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"/{log,ctld,spool,munge}
chmod 711 "$WORK/munge"

# munge: a key and a socket of our own, so nothing of the machine's own set-up is touched.
mungekey --create --keyfile="$WORK/munge/munge.key" --force >/dev/null
chmod 600 "$WORK/munge/munge.key"
munged --force --key-file="$WORK/munge/munge.key" --socket="$WORK/munge/munge.sock" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/log/munged.log" --seed-file="$WORK/munge/seed" -F \
  >>"$WORK/log/munged.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$WORK/munge/munge.sock" ] && break; sleep 0.1; done
munge -n -S "$WORK/munge/munge.sock" | unmunge -S "$WORK/munge/munge.sock" >/dev/null || fail "munge does not work"
say "munged up"

CPUS=$(nproc)
export SLURM_CONF="$WORK/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=dipviz-smoke
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge/munge.sock
StateSaveLocation=$WORK/ctld
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=smoke Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -i -f "$SLURM_CONF" >"$WORK/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -N localhost -f "$SLURM_CONF" >"$WORK/log/slurmd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 120); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || fail "the node did not come up (state: ${state:-none})"
say "slurmctld and slurmd up: $(sinfo -h -o '%P %D nodes %c CPUs %T')"

# The single-machine build to compare with.
say "single-machine build of $SPEC (budget $BUDGET)"
start=$(date +%s)
"$DIPVIZ" gallery "$SPEC" --out "$WORK/single" --budget "$BUDGET" | tail -n 1
say "single-machine build took $(( $(date +%s) - start )) s"

"$DIPVIZ" gallery "$SPEC" --out "$WORK/site" --budget "$BUDGET" --plan --shards "$SHARDS" --cpus 1
"$DIPVIZ" gallery "$SPEC" --out "$WORK/site" --budget "$BUDGET" --emit slurm --shards "$SHARDS" --cpus 1
grep -E '^#SBATCH' "$WORK/site.work/slurm/shards.sbatch" | sed 's/^/    /'

start=$(date +%s)
submitted=$(sh "$WORK/site.work/slurm/submit.sh")
say "$submitted"
array=$(echo "$submitted" | sed -n 's/^shards: job \([0-9]*\).*/\1/p')
merge=$(echo "$submitted" | sed -n 's/.*merge: job \([0-9]*\).*/\1/p')
[ -n "$array" ] && [ -n "$merge" ] || fail "could not read the job ids"
scontrol show job "$merge" | grep -Eo 'JobState=[A-Z_]+|Reason=[A-Za-z]+|Dependency=[^ ]+' | paste -sd' ' | sed 's/^/    merge, queued: /'

deadline=$(( $(date +%s) + TIMEOUT ))
while squeue -h -j "$array,$merge" 2>/dev/null | grep -q .; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "jobs still queued or running after $TIMEOUT s"
  sleep 2
done
say "all jobs left the queue after $(( $(date +%s) - start )) s"
scontrol show job "$array" | grep -Eo 'JobId=[0-9]+ ArrayJobId=[0-9]+ ArrayTaskId=[0-9]+|JobState=[A-Z_]+|ExitCode=[0-9:]+' | paste - - - | sed 's/^/    /'
scontrol show job "$merge" | grep -Eo 'JobState=[A-Z_]+|ExitCode=[0-9:]+' | paste -sd' ' | sed 's/^/    merge: /'
tasks_done=$(scontrol show job "$array" | grep -c 'JobState=COMPLETED' || true)
[ "$tasks_done" -eq "$SHARDS" ] || fail "$tasks_done of $SHARDS array tasks completed"
scontrol show job "$merge" | grep -q 'JobState=COMPLETED' || fail "the merge job did not complete"
tail -n 3 "$WORK/site.work/slurm/merge.log" | sed 's/^/    merge.log: /'

python3 - "$WORK/single" "$WORK/site" "$WORK/site.work/status.json" <<'EOF'
import json, math, os, sys
single, site, status_path = sys.argv[1:]
def results(root):
    d = os.path.join(root, "results")
    return {k: json.load(open(os.path.join(d, k, "metrics.json"))) for k in sorted(os.listdir(d))
            if os.path.isfile(os.path.join(d, k, "metrics.json"))}
a, b = results(single), results(site)
assert a.keys() == b.keys(), f"result keys differ: only single {sorted(a.keys() - b.keys())}, only cluster {sorted(b.keys() - a.keys())}"
worst = 0.0
for key in a:
    assert a[key]["ending"] == b[key]["ending"] == "finished", key
    for ra, rb in zip(a[key]["results"], b[key]["results"]):
        for name, va in ra.items():
            vb = rb.get(name)
            if name == "seconds" or not isinstance(va, (int, float)) or isinstance(va, bool):
                continue
            diff = abs(va - vb) / max(1e-6, abs(va))
            worst = max(worst, diff)
            assert diff <= 1e-4 or math.isclose(va, vb, abs_tol=1e-6), f"{key} {name}: {va} vs {vb}"
for root in (site,):
    stray = [os.path.join(p, f) for p, _, files in os.walk(root) for f in files if f.endswith(".ckpt") or f == ".lock"]
    assert not stray, f"working files in the published site: {stray[:3]}"
assert os.path.isfile(os.path.join(site, "index.html")), "no index.html"
status = json.load(open(status_path))
assert status["state"] == "finished" and status["left"] == 0, status
print(f"    {len(a)} results: same keys; metrics agree within {worst:.2g} (relative); status.json: {status['done']}/{status['total']} {status['state']}")
EOF
say "PASS: the Slurm-built site equals the single-machine build"
