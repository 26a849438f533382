"""A 5x7 bitmap font (printable ASCII) and text drawing with numpy only.

Each glyph is seven rows of five pixels; a row is a hex number whose bit 4 is the leftmost
pixel. Characters outside printable ASCII are drawn as ``?``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    from tasks._lazy import numpy as np

__all__ = ["CELL_HEIGHT", "CELL_WIDTH", "draw_text", "text_mask"]

_GLYPHS: Final = (
    "00000000000000 04040404040004 0A0A0000000000 0A0A1F0A1F0A0A 040F140E051E04 18190204081303 0C12140815120D "
    "04040000000000 02040808080402 08040202020408 0004150E150400 0004041F040400 000000000C0408 0000001F000000 "
    "00000000000C0C 00010204081000 0E11131519110E 040C040404040E 0E11010204081F 1F02040201110E 02060A121F0202 "
    "1F101E0101110E 0608101E11110E 1F010204080808 0E11110E11110E 0E11110F01020C 000C0C000C0C00 000C0C000C0408 "
    "02040810080402 00001F001F0000 08040201020408 0E110102040004 0E11010D15150E 0E11111F111111 1E11111E11111E "
    "0E11101010110E 1C12111111121C 1F10101E10101F 1F10101E101010 0E11101711110F 1111111F111111 0E04040404040E "
    "0702020202120C 11121418141211 1010101010101F 111B1515111111 11111915131111 0E11111111110E 1E11111E101010 "
    "0E11111115120D 1E11111E141211 0F10100E01011E 1F040404040404 1111111111110E 11111111110A04 1111111515150A "
    "11110A040A1111 1111110A040404 1F01020408101F 0E08080808080E 00100804020100 0E02020202020E 040A1100000000 "
    "0000000000001F 08040200000000 00000E010F110F 1010161911111E 00000E1010110E 01010D1311110F 00000E111F100E "
    "0609081C080808 000F11110F010E 10101619111111 04000C0404040E 0200060202120C 10101214181412 0C04040404040E "
    "00001A15151111 00001619111111 00000E1111110E 00001E111E1010 00000D130F0101 00001619101010 00000E100E011E "
    "08081C08080906 0000111111130D 00001111110A04 0000111115150A 0000110A040A11 000011110F010E 00001F0204081F "
    "02040408040402 04040404040404 08040402040408 00000815020000"
)

CELL_WIDTH: Final = 6
CELL_HEIGHT: Final = 8


@functools.cache
def _font() -> npt.NDArray[np.bool_]:
    """The glyphs, built on first use (numpy loads with the first text drawn, not with the catalog)."""
    codes = "".join(_GLYPHS.split())
    count = len(codes) // 14
    rows = np.array([int(codes[i : i + 2], 16) for i in range(0, count * 14, 2)], dtype=np.uint8).reshape(count, 7)
    bits = (rows[:, :, np.newaxis] >> np.arange(4, -1, -1, dtype=np.uint8)) & 1
    font = bits.astype(bool)
    assert font.shape == (95, 7, 5), font.shape
    return font


def text_mask(text: str, scale: int = 1) -> npt.NDArray[np.bool_]:
    """A boolean image of ``text`` (lines split on ``\\n``), each glyph in a 6x8 cell, scaled up."""
    lines = text.split("\n") or [""]
    columns = max(len(line) for line in lines) or 1
    mask = np.zeros((len(lines) * CELL_HEIGHT, columns * CELL_WIDTH), dtype=bool)
    font = _font()
    for row, line in enumerate(lines):
        for col, char in enumerate(line):
            code = ord(char) - 32
            glyph = font[code if 0 <= code < len(font) else ord("?") - 32]
            top, left = row * CELL_HEIGHT, col * CELL_WIDTH
            mask[top : top + 7, left : left + 5] = glyph
    if scale > 1:
        mask = mask.repeat(scale, axis=0).repeat(scale, axis=1)
    return mask


def draw_text(image: npt.NDArray[np.uint8], text: str, *, x: int, y: int, color: tuple[int, ...],
              scale: int = 1) -> None:
    """Draw ``text`` onto an H x W x C image in place (clipped at the edges)."""
    mask = text_mask(text, scale)
    height, width = image.shape[:2]
    if x >= width or y >= height or x + mask.shape[1] <= 0 or y + mask.shape[0] <= 0:
        return
    mx0, my0 = max(0, -x), max(0, -y)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(width, x + mask.shape[1]), min(height, y + mask.shape[0])
    region = image[y0:y1, x0:x1]
    region[mask[my0 : my0 + (y1 - y0), mx0 : mx0 + (x1 - x0)]] = np.asarray(color[: image.shape[2]], np.uint8)
