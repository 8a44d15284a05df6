#!/bin/sh
# The volume holds the working directory: the spec, models and photos at the paths the
# commands name (copy them in first), and the site and work folder the jobs write.
# The shards run as an Indexed Job (JOB_COMPLETION_INDEX picks the shard); the merge
# starts once every index has succeeded.
set -eu
kubectl apply -f out/gallery.work/k8s/volume.yaml
kubectl apply -f out/gallery.work/k8s/shards-job.yaml
kubectl wait --for=condition=complete --timeout=1920s job/dipviz-gallery-shards
kubectl apply -f out/gallery.work/k8s/merge-job.yaml
kubectl wait --for=condition=complete --timeout=600s job/dipviz-gallery-merge
