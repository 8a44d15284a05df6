#!/bin/sh
# Submits the shards as one array job and the merge as a job that waits for all of them.
# Run from the folder the gallery paths are relative to; DIPVIZ names the dipviz binary
# (default: dipviz on the PATH of the compute nodes).
set -eu
mkdir -p out/gallery.work/slurm
shards=$(sbatch --parsable out/gallery.work/slurm/shards.sbatch)
shards=${shards%%;*}
merge=$(sbatch --parsable --dependency=afterok:"$shards" out/gallery.work/slurm/merge.sbatch)
echo "shards: job $shards (4 array tasks); merge: job ${merge%%;*}"
