#!/usr/bin/env bash
# Pack what a GPU training run on the `device` machine (JAX, no TensorFlow) needs but lacks:
# the keras wheel and the two of its dependencies that image does not have, and FER2013 as one
# gzipped tar. Both land in ignored folders of the checkout (.whl/, .data/), which the device
# call then carries: run(command="bash scripts/device_train.sh", carry=[".whl", ".data"]).
# Usage (repository root): bash scripts/device_pack.sh [path/to/fer2013]
set -euo pipefail
data=${1:-../shared/data/fer2013}
[ -d "$data/train" ] || { echo "no FER2013 folder tree at $data (expected $data/train/<emotion>/*.jpg)" >&2; exit 2; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.data/' .git/info/exclude 2>/dev/null || echo '/.data/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl .data
keras_version=$(grep -E '^keras==' requirements.txt | cut -d= -f3)
for spec in "keras==$keras_version" namex optree; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
tar -czf .data/fer2013.tar.gz -C "$(dirname "$data")" "$(basename "$data")"
du -sh .whl .data
echo "carry: .whl .data (working tree + carried paths must stay under 64 MiB)"
