"""Window/level (W/L) for CT display: presets, validation and the right-drag gesture.

Pure arithmetic, no widgets, so the rules are easy to test and shared by every viewer.
A window of width ``W`` centred at level ``L`` maps HU ``L - W/2`` to black and ``L + W/2`` to
white; these two numbers are exactly the fixed ``levels`` handed to ``pg.ImageItem.setImage``
(never ``autoLevels``, which would rescan the slice on every scroll and change the grey scale
from slice to slice).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Narrowest window that still shows something (a 1 HU window is a threshold, not an image).
MIN_WIDTH = 1.0
#: Widest sensible window: the whole CT range (-1024 .. +3071) plus margin.
MAX_WIDTH = 8000.0
#: Levels outside this range show a uniformly black or white image.
LEVEL_RANGE = (-2000.0, 4000.0)

#: HU per screen pixel of a right-drag: 400 HU of width for a 100-pixel drag feels like the
#: radiology workstations (Weasis, RadiAnt) and still allows 1-HU precision with small moves.
DRAG_HU_PER_PIXEL = 4.0


@dataclass(frozen=True)
class WindowLevel:
    """A display window in Hounsfield units.

    Attributes
    ----------
    width:
        Window width W (HU), clamped to ``MIN_WIDTH .. MAX_WIDTH``.
    level:
        Window centre L (HU), clamped to ``LEVEL_RANGE``.
    name:
        Preset name when the window is one of :data:`PRESETS`, else ``""``.
    """

    width: float
    level: float
    name: str = ""

    @property
    def levels(self) -> tuple[float, float]:
        """``(low, high)`` HU for ``ImageItem.setImage(levels=...)``."""
        half = self.width / 2.0
        return (self.level - half, self.level + half)

    def label(self) -> str:
        """Short text for the viewer's corner overlay, e.g. ``"W 400  L 50"``."""
        return f"W {self.width:.0f}  L {self.level:.0f}"


def make_window(width: float, level: float, name: str = "") -> WindowLevel:
    """Build a :class:`WindowLevel`, clamping width and level to sensible limits.

    Clamping (not raising) because the values come from mouse drags that can overshoot; the
    user sees the clamped values in the overlay.
    """
    w = min(max(float(width), MIN_WIDTH), MAX_WIDTH)
    lo, hi = LEVEL_RANGE
    lev = min(max(float(level), lo), hi)
    return WindowLevel(w, lev, name)


#: Presets offered in the viewer toolbar: name, width, level (HU), the usual values of the
#: radiology workstations (Weasis, RadiAnt). "Model W400/L0" is the window the model sees
#: (DESIGN.md step 4), so a reader can look at exactly its input contrast.
PRESETS: tuple[WindowLevel, ...] = (
    WindowLevel(400.0, 50.0, "Abdomen"),
    WindowLevel(150.0, 70.0, "Liver"),
    WindowLevel(350.0, 40.0, "Soft tissue"),
    WindowLevel(1800.0, 400.0, "Bone"),
    WindowLevel(1500.0, -600.0, "Lung"),
    WindowLevel(400.0, 0.0, "Model W400/L0"),
)

#: Hot key of each preset (in :data:`PRESETS` order): the digits 1-6, as in RadiAnt.
PRESET_KEYS: dict[str, str] = {p.name: str(i + 1) for i, p in enumerate(PRESETS)}

DEFAULT_WINDOW = PRESETS[0]


def preset(name: str) -> WindowLevel:
    """Return the preset called ``name`` (case-insensitive).

    Raises
    ------
    KeyError
        When no preset has that name (a programming error in the caller).
    """
    for p in PRESETS:
        if p.name.lower() == name.lower():
            return p
    raise KeyError(f"no window preset {name!r}; known: {[p.name for p in PRESETS]}")


def match_preset(width: float, level: float) -> WindowLevel:
    """Return the window, named after a preset when ``(width, level)`` equals one."""
    for p in PRESETS:
        if abs(p.width - width) < 0.5 and abs(p.level - level) < 0.5:
            return p
    return make_window(width, level)


def drag_window(start: WindowLevel, dx_px: float, dy_px: float) -> WindowLevel:
    """Window after a right-drag of ``(dx_px, dy_px)`` screen pixels from ``start``.

    Dragging right widens the window, dragging down raises the level (the image gets darker),
    the convention of most DICOM viewers. The result is relative to the window at the start
    of the drag, so a drag back to the start point restores it exactly.
    """
    return match_preset(
        *_clamped(start.width + dx_px * DRAG_HU_PER_PIXEL, start.level + dy_px * DRAG_HU_PER_PIXEL)
    )


def _clamped(width: float, level: float) -> tuple[float, float]:
    w = make_window(width, level)
    return w.width, w.level
