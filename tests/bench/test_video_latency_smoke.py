"""The video latency benchmark runs for a moment (small frames, short), so it cannot rot; and its clock blocks
read back what was drawn, through H.264 and JPEG, so its figures measure what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from clock_source import BLOCK, draw_clock, read_clock  # noqa: E402


def _bars(width: int = 320, height: int = 240):
    from tasks.media.synthetic import render_pattern

    return render_pattern("bars", width, height, (0, 0, 0))


@pytest.mark.parametrize("value", [0, 1, 0xA5A5A5, 2**24 - 1, 1_733_400_000_000 % 2**24])
def test_the_clock_blocks_survive_h264_and_jpeg(value):
    av = pytest.importorskip("av")
    image = _bars()
    draw_clock(image, value)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    assert read_clock(frame.to_ndarray(format="gray")) == value
    for codec, options in (("libx264", {"crf": "26", "preset": "ultrafast"}), ("mjpeg", {})):
        encoder = av.CodecContext.create(codec, "w")
        encoder.width, encoder.height = 320, 240
        encoder.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        encoder.time_base = Fraction(1, 30)
        encoder.options = options
        packets = [*encoder.encode(frame.reformat(format=encoder.pix_fmt)), *encoder.encode(None)]
        decoder = av.CodecContext.create("h264" if codec == "libx264" else "mjpeg", "r")
        pictures = [p for packet in packets for p in decoder.decode(packet)] + list(decoder.decode(None))
        assert len(pictures) == 1, codec
        picture = pictures[0]
        assert read_clock(picture.to_ndarray(format="gray")) == value, codec


def test_two_rows_that_disagree_read_as_nothing():
    image = _bars()
    draw_clock(image, 12345)
    image[BLOCK:2 * BLOCK] = 0  # the second row blank: a picture caught mid-update
    grey = image.mean(axis=2).astype("uint8")
    assert read_clock(grey) is None


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_video_latency_benchmark_runs_and_prints_both_paths(tmp_path):
    # each path measured 1 s, half a second after its first picture (was 2 s after 2 s): at 15 fps and the JPEG
    # path's 5, still 15 against 5 frames for the comparison below
    out = subprocess.run([sys.executable, str(BENCH / "video_latency.py"), "--seconds", "1", "--settle", "0.5",
                          "--rate", "15", "--width", "320", "--height", "240", "--json", str(tmp_path / "video.json")],
                         capture_output=True, text=True, timeout=170, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    figures = json.loads((tmp_path / "video.json").read_text())
    assert set(figures) == {"H.264 (WebCodecs)", "H.264 (Media Source)", "JPEG fallback"}
    for row in figures.values():
        assert row["frames"] > 0 and 0 <= row["median_ms"] <= row["p95_ms"] < 10_000
    for h264 in ("H.264 (WebCodecs)", "H.264 (Media Source)"):
        assert figures[h264]["fps_shown"] > figures["JPEG fallback"]["fps_shown"]
    assert "the target" in out.stdout.splitlines()[-1]
