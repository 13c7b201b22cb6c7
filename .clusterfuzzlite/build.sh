#!/bin/bash -eu
# ClusterFuzzLite build entry ($SRC/build.sh in the image). The build itself
# is ci/oss-fuzz/build.sh, shared with OSS-Fuzz: this only finds the
# repository (the working directory, $SRC/vmap, or around this file) and runs it.
for repo in "$PWD" "${SRC:-/src}/vmap" "$(dirname "${BASH_SOURCE[0]}")/.."; do
    if [[ -f $repo/ci/oss-fuzz/build.sh ]]; then
        exec bash "$repo/ci/oss-fuzz/build.sh" "$@"
    fi
done
echo "build.sh: cannot find ci/oss-fuzz/build.sh (working directory $PWD, SRC=${SRC:-unset})" >&2
exit 1
