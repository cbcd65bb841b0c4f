"""MediaPipe's own short-range face detection on photos: the reference the converted BlazeFace
(``realtime/weights/blazeface_short.onnx``) is compared with (``blazeface_parity.py``).

Runs INSIDE the teacher virtualenv (``bash training/teacher/setup_env.sh``): imports only the
standard library, numpy, cv2 and mediapipe. ``mp.solutions.face_detection.FaceDetection
(model_selection=0)`` is the short-range model (face_detection_short_range.tflite).

    .venv-teacher/bin/python training/teacher/blazeface_reference.py --list photos.txt --out ref.json

``--list``: one image path per line; each may be followed by a tab and a roll in degrees (the
photo is turned clockwise on screen about its centre first, as ``blazeface_parity.py`` does).
Writes ``{path\\troll: [{score, box_xyxy, keypoints_xy}, ...]}`` in pixels of the (turned) image.
"""

from __future__ import annotations

import argparse
import json
import sys


def turned(img, roll: float):
    import cv2

    if not roll:
        return img
    h, w = img.shape[:2]
    mat = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), -roll, 1.0)
    return cv2.warpAffine(img, mat, (w, h), borderMode=cv2.BORDER_CONSTANT)


def main(argv=None) -> int:
    import cv2
    import mediapipe as mp

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-score", type=float, default=0.5)
    args = ap.parse_args(argv)
    out = {}
    with open(args.list) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    with mp.solutions.face_detection.FaceDetection(model_selection=0,
                                                   min_detection_confidence=args.min_score) as fd:
        for n, row in enumerate(rows):
            path, roll = row[0], float(row[1]) if len(row) > 1 else 0.0
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                print(f"cannot read {path}", file=sys.stderr)
                return 2
            img = turned(img, roll)
            h, w = img.shape[:2]
            res = fd.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            faces = []
            for d in res.detections or []:
                b = d.location_data.relative_bounding_box
                faces.append({"score": float(d.score[0]),
                              "box_xyxy": [b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h],
                              "keypoints_xy": [[k.x * w, k.y * h] for k in d.location_data.relative_keypoints]})
            out[f"{path}\t{roll:g}"] = faces
            if n % 50 == 0:
                print(f"reference {n}/{len(rows)}", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
