"""Draws the application icon (``resources/icons/hcc-response.png``, 256 px) with OpenCV.

Kept as a script so the icon can be regenerated at other sizes without an image editor:
``.venv/bin/python packaging/make_icon.py``. The motif: three stacked CT slices (the three
phases) with a liver silhouette and a bright arterial lesion.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = 256
OUT = Path(__file__).resolve().parents[1] / "resources" / "icons"


def draw(size: int = SIZE) -> np.ndarray:
    s = size / 256.0
    img = np.zeros((size, size, 4), np.uint8)

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * s)), int(round(y * s))

    # three offset "slices", back to front: plain, arterial, portal
    for k, shade in enumerate((70, 95, 125)):
        x0, y0 = 28 + 22 * k, 20 + 22 * k
        cv2.rectangle(img, p(x0, y0), p(x0 + 160, y0 + 160), (shade, shade * 0.8, 30, 255), -1,
                      cv2.LINE_AA)
        cv2.rectangle(img, p(x0, y0), p(x0 + 160, y0 + 160), (230, 230, 230, 255), max(1, int(3 * s)),
                      cv2.LINE_AA)
    # liver silhouette on the front slice (BGR), with a bright lesion
    liver = np.array([[100, 120], [180, 105], [225, 135], [215, 175], [160, 200], [110, 190],
                      [88, 160]], np.float64) * s
    cv2.fillPoly(img, [liver.astype(np.int32)], (60, 90, 200, 255), cv2.LINE_AA)
    cv2.circle(img, p(170, 150), int(22 * s), (90, 220, 255, 255), -1, cv2.LINE_AA)
    cv2.circle(img, p(170, 150), int(22 * s), (255, 255, 255, 255), max(1, int(3 * s)), cv2.LINE_AA)
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (256, 64):
        name = "hcc-response.png" if size == 256 else f"hcc-response-{size}.png"
        cv2.imwrite(str(OUT / name), draw(size))
    print(f"icons written to {OUT}")


if __name__ == "__main__":
    main()
