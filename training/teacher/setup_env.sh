#!/usr/bin/env bash
# Create the landmark-teacher virtualenv (MediaPipe), separate from the main one.
#
# Usage (from anywhere):
#     bash training/teacher/setup_env.sh [VENV_DIR]
#
# VENV_DIR defaults to <repo>/.venv-teacher (git-ignored through ".venv-*/").
# The interpreter used to create it is $PYTHON if set, else python3.
#
# Why a separate environment: mediapipe==0.10.21 pins numpy<2 and pulls
# opencv-contrib-python, which would clash with the main environment
# (numpy 2 + torch + opencv-python). Nothing in the main environment imports
# mediapipe; it talks to the teacher through `training/teacher/cache.py`,
# which runs `mediapipe_teacher.py` with this venv's python in a subprocess
# and reads the JSON/PNG cache it writes.
#
# The mediapipe wheel bundles every model the teacher uses (face mesh with
# attention/iris refinement, pose_landmark_full, selfie segmentation), so
# after this install the teacher runs fully offline.
#
# Re-running is safe: an existing venv is reused and pip only checks the pins.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${here}/../.." && pwd)"
venv_dir="${1:-${repo_root}/.venv-teacher}"
python_bin="${PYTHON:-python3}"

# Pins: mediapipe 0.10.21 still has the legacy `mp.solutions` API with its
# models bundled in the wheel (CPython 3.9-3.12 wheels only). The other
# pins are what pip resolved for it when this script was written; pinning them
# keeps the teacher outputs reproducible.
PINS=(
  "mediapipe==0.10.21"
  "numpy==1.26.4"
  "opencv-contrib-python==4.11.0.86"
  "protobuf==4.25.9"
  "tqdm==4.70.1"
)

py_ver="$("${python_bin}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "${py_ver}" in
  3.9|3.10|3.11|3.12) ;;
  *)
    echo "setup_env.sh: ${python_bin} is Python ${py_ver}; mediapipe==0.10.21 needs 3.9-3.12." >&2
    echo "Set PYTHON=/path/to/python3.11 and re-run." >&2
    exit 1
    ;;
esac

if [[ ! -x "${venv_dir}/bin/python" ]]; then
  echo "Creating teacher venv at ${venv_dir} (Python ${py_ver})"
  "${python_bin}" -m venv "${venv_dir}"
fi

"${venv_dir}/bin/python" -m pip install --quiet --upgrade pip
"${venv_dir}/bin/python" -m pip install --quiet "${PINS[@]}"

# Smoke check: imports work and the bundled models the teacher needs exist.
"${venv_dir}/bin/python" - <<'EOF'
import os
import cv2
import mediapipe as mp
import numpy as np

root = os.path.dirname(mp.__file__)
needed = [
    "modules/face_landmark/face_landmark_with_attention.tflite",
    "modules/face_detection/face_detection_short_range.tflite",
    "modules/pose_landmark/pose_landmark_full.tflite",
    "modules/pose_detection/pose_detection.tflite",
    "modules/selfie_segmentation/selfie_segmentation.tflite",
]
missing = [p for p in needed if not os.path.isfile(os.path.join(root, p))]
if missing:
    raise SystemExit("mediapipe install lacks bundled models: %s" % missing)
print("teacher env OK: mediapipe %s, numpy %s, cv2 %s"
      % (mp.__version__, np.__version__, cv2.__version__))
EOF
echo "Teacher venv ready: ${venv_dir}"
