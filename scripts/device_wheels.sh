#!/usr/bin/env bash
# Python 3.12 wheels of the packages the project imports that the device machine's image lacks
# (its python3 holds PyTorch, numpy, OpenCV, scikit-image, PyYAML, safetensors, tensorboard, tqdm
# and pytest, but not pydantic), downloaded here into .whl/ (git-ignored). Carry `.whl` in the
# device call; scripts/device_check.sh installs them into /tmp/site before anything else.
#
#   scripts/device_wheels.sh            # then: run(command="scripts/device_check.sh", carry=[".whl"])
#
# The versions are the ones installed in .venv here (so the code was tested with them), or
# pydantic's current release when there is no .venv.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
pins=$("$PY" - <<'PYEOF'
from importlib import metadata
names = ["pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions"]
pins = []
for n in names:
    try:
        pins.append(f"{n}=={metadata.version(n)}")
    except metadata.PackageNotFoundError:
        pins.append(n)
print(" ".join(pins))
PYEOF
)
rm -rf .whl && mkdir -p .whl
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $pins 2>&1 | grep -v "^WARNING: Location" || true
ls .whl/*.whl > /dev/null && echo "$(ls .whl | wc -l) wheels in .whl/ ($(du -sh .whl | cut -f1)): $pins"
