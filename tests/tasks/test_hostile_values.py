"""No frame value crashes a task (issue 22.4): every type of the catalog, every input, a hostile corpus.

Each type runs in-process on an :class:`edge.testing.MemoryBus` with a config that uses all its
inputs. Hypothesis draws frames for one input (bignums up to ``MAX_BIGNUM_BYTES``, NaN, infinities,
huge texts, bytes, None, bools, nested containers, typed arrays, timestamps at and beyond 64 bits,
odd ``paused`` fields); a good value follows. The task must still be the same running instance,
every frame that is bad for that input must be counted in the input's ``errors``, and the good
value must still produce output. Media types that need a device or a file are left out; the
others are driven like the rest (their video and audio inputs take the same hostile values).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import numpy as np
import pytest
from _types import extra_types
from hardware_fakes import hardware_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from task_harness import MEMORY, Harness, running
from tiny_gguf import tiny_llama_bytes

from edge import frames as frames_module
from edge.errors import FrameError
from edge.frames import MAX_BIGNUM_BYTES, decode_frame, encode_frame, encode_value
from edge.task import Task
from tasks.base import VARIABLES
from tasks.builtin import TYPES
from tasks.inference.deepfilter import DeepFilterNet
from tasks.inference.llm import LlmChat
from tasks.inference.rnnoise import RNNoise

try:
    from tasks.media import TYPES as MEDIA_TYPES
except ModuleNotFoundError:  # no PyAV: the media entry point is unavailable, and so are its types
    MEDIA_TYPES = []
#: the other entry points' types: schedule, web, and the hardware ones (each run with its fake:
#: mock pins, a fake bus, a pty)
EXTRA_TYPES = extra_types()

TIMEOUT = 10.0
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "12"))  # per type; more for a longer hunt
GOOD_NUMBER = 0.75
GOOD_TEXT = "good"
#: media types that read a device or a file: nothing a frame can reach
NEEDS_DEVICE = {"camera", "microphone", "input_container", "output_container", "screen_capture"}
#: types with no input port: mqtt_in and named_input read a topic of their own (driven by the
#: payload tests at the end), the others read nothing
NO_INPUTS = {"pulse_generator", "named_input", "mqtt_in", "test_pattern", "schedule", "gpio_in", "serial_in",
             "one_wire_temperature", "webhook_in"}
#: nothing listens there: every request is refused at once, an error frame (loopback only)
REFUSED_URL = "http://127.0.0.1:1/"


@dataclass(frozen=True)
class Case:
    """One type under a config, and what a good value on each input makes it send."""

    type: type[Task]
    config: Mapping[str, Any] = field(default_factory=dict)
    #: where good input shows up: an output, or a topic the task writes (``topic:<topic>``); per
    #: input (None: good input there sends nothing by itself), default the first output
    produces: Mapping[str, str | None] = field(default_factory=dict)
    #: the good frames to send after the hostile ones on an input, as (port, value): default one
    #: frame of the input's kind on the input itself (a switch needs its control on first, say)
    good: Mapping[str, list[tuple[str, Any]]] = field(default_factory=dict)
    id: str = ""
    #: files written into the agent's files folder before the task starts (name: text or bytes)
    files: Mapping[str, str | bytes] = field(default_factory=dict)

    def output_for(self, port: str) -> str | None:
        if port in self.produces:
            return self.produces[port]
        return next(iter(self.type.outputs), None)

    def good_frames(self, port: str) -> list[tuple[str, Any, dict[str, Any]]]:
        return [(p, *good_value(self.type, p, v)) for p, v in self.good.get(port, [(port, None)])]

    def __str__(self) -> str:
        return self.id or self.type.type_name


def good_value(task_type: type[Task], port: str, value: Any) -> tuple[Any, dict[str, Any]]:
    """``value`` (None: a good value of the input's kind) and the control fields it needs."""
    content = task_type.inputs[port].content
    if content == "audio":
        return np.zeros((2048, 2), np.int16) if value is None else value, {"rate": 48_000}
    if value is not None:
        return value, {}
    if content == "text":
        return GOOD_TEXT, {}
    if content == "video":
        return np.full((16, 16, 3), 7, np.uint8), {}
    return GOOD_NUMBER, {}


_ALL_VARIABLES = {"formula": " + ".join(VARIABLES), "defaults": dict.fromkeys(VARIABLES, 0.0)}
_FAST_VIEW = {"refresh_ms": 10}
_BY_NAME = {t.type_name: t for t in (*TYPES, *MEDIA_TYPES, *EXTRA_TYPES)}
_TWO_MAPS = {"in": [("in", {"a": 1}), ("in", {"a": 2})]}  # the second is written after a rotation at least


def _case(name: str, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Case:
    return Case(_BY_NAME[name], dict(config or {}), **kwargs)


def _gated(control: str, port: str, on: Any = 1) -> list[tuple[str, Any]]:
    return [(control, on), (port, None)]


CASES: list[Case] = [
    _case("calculator", _ALL_VARIABLES),
    _case("calculator", {**_ALL_VARIABLES, "synchronized": True, "sync_timeout_ms": 5}, id="calculator-synchronized"),
    _case("gate", produces={"control": None}, good={"in": _gated("control", "in")}),
    _case("switch", produces={f"control{k}": None for k in range(4)},
          good={f"in{k}": [*((f"control{j}", 0) for j in range(4) if j != k), (f"control{k}", 1), (f"in{k}", None)]
                for k in range(4)}),
    _case("sr_latch"),
    _case("python"),
    _case("python", {"code": "def process(value, port, state):\n    state['n'] = value * 2\n    return state['n']\n"},
          id="python-arithmetic"),
    _case("repeater"),
    _case("message_detector", {"timeout_ms": 5}),
    _case("synchronizer", {"timeout_ms": 5}, produces={f"in{k}": f"out{k}" for k in range(4)}),
    _case("time_buffer", {"delay_ms": 0}),
    _case("time_buffer", {"delay_ms": 0, "reference": "message"}, id="time_buffer-message"),
    _case("timestamp_updater"),
    _case("timestamp_updater", {"reference": "message"}, id="timestamp_updater-message"),
    _case("replay_buffer", {"persist": False},
          good={key: [("play", 0), ("in", None), ("play", 1)] for key in ["in", "play"]}),
    # flow control and data shaping: a good value must come out again whatever came before it
    _case("filter", good={"in": [("in", "good-a"), ("in", "good-b")]}),
    _case("filter", {"mode": "deadband", "band_percent": 5, "compare": "received"}, id="filter-deadband",
          good={"in": [("in", "good-a"), ("in", "good-b")]}),
    _case("throttle", {"count": 10_000, "interval_ms": 1}),
    _case("throttle", {"count": 1, "interval_ms": 1, "keep": "latest"}, id="throttle-latest"),
    _case("trigger", {"delay_ms": 1, "retrigger": "restart", "send_first": "frame", "send_second": "frame"},
          produces={"reset": None}),
    _case("trigger", {"mode": "watchdog", "delay_ms": 5}, id="trigger-watchdog", produces={"reset": None}),
    _case("change", {"rules": [{"action": "set", "path": "a.b", "value": [1]}, {"action": "move", "path": "a",
                                                                                "to": "c.0"},
                               {"action": "delete", "path": "x[0]"}, {"action": "set", "path": "c.0.b.1",
                                                                       "value": None}]},
          good={"in": [("in", {"x": [1, 2]})]}),
    _case("split", good={"in": [("in", ["x"])]}),
    _case("join", produces={"in": None}),  # parts: only frames of split (with their part field) make a value
    _case("join", {"mode": "count", "count": 1}, id="join-count"),
    _case("join", {"mode": "time", "interval_ms": 1}, id="join-time"),
    _case("join", {"mode": "key", "value_field": ""}, id="join-key", good={"in": [("in", {"key": "k", "v": 1})]}),
    _case("batch", {"count": 1}),
    _case("batch", {"mode": "time", "interval_ms": 2, "count": 2, "overlap": 1}, id="batch-time"),
    *(_case("parse", {"format": fmt, "numbers": True}, good={"in": [("in", "[1]")]}, id=f"parse-{fmt}")
      for fmt in ("json", "yaml", "csv")),
    *(_case("format", {"format": fmt, "indent": 1}, good={"in": [("in", [{"a": 1}])]}, id=f"format-{fmt}")
      for fmt in ("json", "yaml", "csv")),
    _case("number_to_text"),
    _case("number_to_text", {"template": "{value:.2f} {value:>10,}"}, id="number_to_text-formats"),
    _case("time_to_text"),
    _case("time_to_text", {"source": "value", "timezone": "UTC"}, id="time_to_text-value"),
    _case("text_formatter", {"template": "{a} {b!r} {c!s} {d:>8} {x} {y} {z} {w}"}),
    _case("text_formatter", {"template": "{a:.1f} " * 100 + "{b:,}{c:e}{d:%}{x:>9}{y}" * 10 + "{z:08.3f}{w}"},
          id="text_formatter-specs"),
    _case("string_matcher", {"pattern": "o"}),
    _case("string_matcher", {"pattern": "^(a|b)*.o$", "regex": True}, id="string_matcher-regex"),
    _case("string_concatenator",
          good={key: [("control", 0), ("in", None), ("control", 1)] for key in ["in", "control"]}),
    _case("named_output", produces={"in": "topic:named"}),
    *(_case("mqtt_out", {"format": fmt, "topic": "hostile/out"}, produces={"in": "topic:hostile/out"},
            good={"in": [("in", GOOD_TEXT)]}, id=f"mqtt_out-{fmt}")
      for fmt in ("json", "text", "raw", "cbor", "frame")),
    _case("mqtt_out", {"key": "v", "on_value": "ON", "off_value": "OFF", "topic": "hostile/out"},
          produces={"in": "topic:hostile/out"}, id="mqtt_out-mapped"),
    _case("slider"),
    _case("slider", {"min_value": -1e300, "max_value": 1e300, "step": 1e-300}, id="slider-extreme"),
    _case("toggle"),
    _case("radio_buttons", produces={"set": "index"}, good={"set": [("set", 1)]}),
    _case("text_input"),
    _case("status_display", _FAST_VIEW),
    _case("text_display", _FAST_VIEW),
    _case("value_bar", _FAST_VIEW),
    _case("plot", _FAST_VIEW),
    # two pages: the second example still changes the page (the same URL again sends no view)
    _case("web_viewer", _FAST_VIEW, good={"url": [("url", "https://example.com/a"), ("url", "https://example.com/b")]}),
    # rotating at every record: each good value shows up as a rotated file's name
    _case("file_write", {"path": "h.jsonl", "rotate_bytes": 1, "keep": 2, "flush_ms": 10}, produces={"in": "rotated"},
          good={"in": [("in", 1), ("in", 2)]}),
    _case("file_write", {"path": "h.csv", "format": "csv", "rotate_bytes": 1, "keep": 2, "include_ts": True},
          produces={"in": "rotated"}, good=_TWO_MAPS, id="file_write-csv"),
    _case("file_write", {"path": "h.txt", "format": "text", "rotate_bytes": 1, "keep": 2},
          produces={"in": "rotated"}, good={"in": [("in", "a"), ("in", "b")]}, id="file_write-text"),
    _case("file_read", {"path": "r.csv", "format": "csv"}, produces={"trigger": "done"}, files={"r.csv": "a,b\n1,2\n"}),
    _case("exec", {"command": ["echo", "{value}"]}),
    _case("exec", {"command": ["cat"], "stdin": True, "max_in_flight": 2}, id="exec-stdin"),
]
CASES += [
    _case("http_request", {"url": REFUSED_URL, "max_in_flight": 1}, produces={"in": "error"}),
    _case("http_request", {"url": REFUSED_URL, "from_frame": "request", "max_in_flight": 1},
          produces={"in": "error"}, id="http_request-request"),
]
if MEDIA_TYPES:
    CASES += [
        _case("text_renderer", {"rate": 50}),
        _case("video_encoder"),
        _case("video_decoder", produces={"in": None}),  # takes packets only: nothing here decodes
        _case("video_encoder", {"codec": "mjpeg", "codec_options": {"huffman": "optimal"}}, id="video_encoder-named"),
        # flac frames are 4608 samples: a good frame of 2048 alone sends nothing
        _case("audio_encoder", {"codec": "flac"}, id="audio_encoder-flac",
              good={"in": [("in", np.zeros((4608, 2), np.int16))]}),
        _case("video_decoder", {"codec": "h264", "codec_options": {"threads": 1}}, produces={"in": None},
              id="video_decoder-named"),
        _case("audio_encoder"),
        _case("audio_decoder", produces={"in": None}),
        _case("video_reformatter"),
        *(_case(name, produces={f"in{k}": None for k in (1, 2, 3)}) for name in ("video_mixer", "video_layout")),
        _case("video_activity_meter", good={"in": [("in", None), ("in", np.zeros((16, 16, 3), np.uint8))]}),
        _case("audio_resampler"),
        _case("audio_mixer", produces={f"in{k}": None for k in (1, 2, 3)}),
        _case("audio_volume_meter", produces={"in": "rms"}),
        _case("audio_volume_scaler", good={"gain": [("gain", 6.0), ("in", None)]}),
        _case("mediaswitch", produces={"select": None},
              good={f"in{k}": [("select", k), (f"in{k}", None)] for k in range(4)}),
        # at most max_fps images: a good frame right after a valid hostile one is rightly left out
        _case("video_viewer", {"max_fps": 60, "h264": "always"}, produces={"in": "video", "keyframe": None}),
        _case("audio_output", {"device": "null"}, produces={"in": None}),  # ALSA's null PCM: plays nowhere
        # at most `rate` spectra a second, as the viewer's max_fps: a good frame right after a hostile one is left out
        _case("audio_frequency_display", {"rate": 30}, produces={"in": None}),
        # an ASCII PPM (the harness writes text files): 2x2 pixels
        _case("image_renderer", {"path": "a.ppm", "rate": 50}, good={"path": [("path", "a.ppm")]},
              files={"a.ppm": "P3\n2 2\n255\n1 2 3 4 5 6 7 8 9 1 2 3\n"}),
    ]

CASES += [  # the speech types (the speech extra); silence, their good audio, is no text to a recognizer
    _case("text_to_speech", {"max_chars": 200}),
    _case("speech_recognition", {"mode": "grammar", "grammar": "#JSGF V1.0; grammar g; public <g> = turn on;"},
          produces={"in": None}),
    _case("speech_recognition", {"idle_ms": 50}, produces={"in": None}, id="speech_recognition-language_model"),
    _case("voice_activity"),
]
CASES += [_case("face_detection")]  # the vision extra
CASES += [  # speech enhancement (the enhance extra; pyrnnoise without its dependencies), llm_chat (the llm extra)
    Case(DeepFilterNet),
    Case(RNNoise),
    Case(LlmChat, {"model": "tiny.gguf", "max_length": 4, "context_length": 256, "temperature": 0},
         produces={"in": "answer"}, files={"tiny.gguf": tiny_llama_bytes()}),
]
CASES += [
    _case("gpio_out"),
    _case("pwm_out"),
    _case("i2c_read", {"interval_ms": 0}),
    _case("i2c_read", {"interval_ms": 0, "reg": 3, "length": 2, "decode": "signed", "scale": 0.5},
          id="i2c_read-register"),
    _case("i2c_write", {"length": 2}, good={"in": [("in", 5)]}),
    _case("i2c_write", {"reg": 1, "signed": True}, good={"in": [("in", -5)]}, id="i2c_write-register"),
    _case("serial_out", {"line_ending": "crlf"}),
    _case("serial_out", {"format": "bytes"}, good={"in": [("in", b"ok")]}, id="serial_out-bytes"),
]


# -- the hostile corpus ---------------------------------------------------------------------------
def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


_BIG = 2**1024  # beyond a float's range
_bignums = st.integers(_BIG, 2 ** (8 * MAX_BIGNUM_BYTES) - 1) | st.integers(-(2 ** (8 * MAX_BIGNUM_BYTES)), -_BIG)
_specials = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308, 2**63, -(2**63),
                             2**64, 2**1023, True, False, None, "", "nan", "inf", "1e999", "0", "in1", "off", b"",
                             b"\x00" * 64, [], {}, [[]], {"": None}])
_huge_texts = st.sampled_from([10_000, 300_000, 2_000_000]).map(lambda n: "\u00e9x" * (n // 2))
_scalars = st.one_of(st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=32), st.none(),
                     st.booleans(), _bignums)
_arrays = hnp.arrays(st.sampled_from([np.uint8, np.int16, np.int32, np.float32, np.float64, np.int64]),
                     hnp.array_shapes(max_dims=3, max_side=8))
_nested = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=24)
_deep = st.integers(1, 80).map(_nest)
values = st.one_of(_bignums, _specials, _huge_texts, _scalars, _nested, _arrays, _deep)
_flags = st.one_of(st.just(True), st.integers(-2, 2), _bignums, st.text(max_size=3), _arrays, st.none(),
                   st.lists(st.booleans(), max_size=2))
_stamps = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1,
                                                                       2**64, 10**400]))
# control fields the media types read (a frame's own pixel format, times, sample rate) and one of ours
_extras = st.dictionaries(st.sampled_from(["paused", "pixel_format", "pts", "time_base", "rate", "sample_format",
                                           "width", "keyframe"]),
                          st.one_of(values, _flags, st.sampled_from(["rgb24", "yuv420p", "s16", "flt"]),
                                    st.lists(st.integers(-(2**70), 2**70), min_size=2, max_size=2)), max_size=3)



class Hostile:
    """One frame as drawn; its repr stays short (hypothesis prints it when a case fails)."""

    def __init__(self, value: Any, ts: int, extra: dict[str, Any]) -> None:
        self.value, self.ts, self.extra = value, ts, extra

    def payload(self) -> bytes:
        try:
            return encode_frame(self.value, ts=self.ts, extra=self.extra or None)
        except FrameError:  # nested deeper than our encoder sends: an attacker's encoder sends it all the same
            return _raw_cbor({"ts": self.ts, "seq": 0, **self.extra, "value": self.value})

    def __repr__(self) -> str:
        return f"Hostile({short(self.value)}, ts={short(self.ts)}, extra={short(self.extra)})"


def short(value: object) -> str:
    try:
        return reprlib.repr(value)
    except ValueError:  # an int over 4300 digits
        return f"<int of {value.bit_length()} bits>"  # type: ignore[attr-defined]


frames = st.builds(Hostile, values, _stamps, _extras | st.just({}))


def must_count(task_type: type[Task], port: str, payload: bytes) -> bool:
    """Whether this frame is bad input for ``port`` whatever the task does with good ones."""
    try:
        frame = decode_frame(payload)
    except FrameError:
        return True  # refused before the task sees it
    if frame.paused and task_type not in MEDIA_TYPES:
        return False  # a pause signal, no value
    content = task_type.inputs[port].content
    if content == "number":
        return not _plain_number(frame.value)
    if content == "text" and task_type not in MEDIA_TYPES:  # the text renderer shows any value as text
        return not isinstance(frame.value, str)
    if content in ("video", "audio"):
        return not isinstance(frame.value, np.ndarray | dict)
    return False


def _plain_number(value: Any) -> bool:
    if type(value) is bool:
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is not int:
        return False
    try:  # an int is a number while a float can hold it
        float(value)
    except OverflowError:
        return False
    return True


# -- driving ------------------------------------------------------------------------------------------
async def settle(h: Harness) -> None:
    """Until every frame fed so far has been taken by the task and its handlers ran to their next wait."""
    inbox = await h.task.open_inputs()
    await h.until(lambda: inbox.queued == 0, "the inputs to drain")
    for _ in range(50):
        await asyncio.sleep(0)


async def watch(h: Harness, where: str) -> Callable[[], Any]:
    """A way to take the next frame (or payload) that shows up at ``where``."""
    if where.startswith("topic:"):
        topic = where.removeprefix("topic:")
        if topic == "named":
            from tasks.named import namespace_of

            assert h.task.context is not None
            topic = namespace_of(h.task.context).named(h.task.config.name)
        sub = await h.bus.subscribe(topic, maxsize=100_000)
        h.extra[topic] = sub

        async def next_payload() -> Any:
            async with asyncio.timeout(TIMEOUT):
                return (await sub.get()).payload

        return next_payload
    return lambda: h.next(where)


def drain(h: Harness) -> None:
    for port in h.outputs:
        h.drain(port)
    for sub in h.extra.values():
        while sub.queued:
            sub.get_nowait()


async def drive(h: Harness, case: Case, port: str, hostile: list[Hostile], take: Callable[[], Any] | None) -> None:
    metrics = h.task.in_metrics[port]
    # a bad frame is counted as an input error, or as a drop when the input's queue is over its
    # byte bound (4 MiB: two 3 MB strings fed at once, on a busy machine, before the task reads them)
    before = metrics.errors + h.task.dropped()
    payloads = [frame.payload() for frame in hostile]
    counted = sum(must_count(case.type, port, payload) for payload in payloads)
    for payload in payloads:
        await h.bus.publish(h.sources[port], payload)
    await settle(h)

    def added() -> int:
        return metrics.errors + h.task.dropped() - before

    with contextlib.suppress(AssertionError):  # frames a synchronized task holds back come after a timeout
        await h.until(lambda: added() >= counted, timeout=3.0)
    h._check()
    assert counted <= added() <= len(payloads), (f"{case} input {port!r}: {added()} error(s) or drop(s) counted for "
                                                 f"{len(payloads)} frame(s) of which {counted} are bad: {hostile!r}")
    drain(h)
    for good_port, value, extra in case.good_frames(port):
        await h.bus.publish(h.sources[good_port], encode_frame(value, extra=extra or None))
    if take is not None:
        await take()  # the good value still produces output: the task is alive and well
    await settle(h)
    h._check()


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # hypothesis, about a drawn bignum or text
@pytest.mark.parametrize("case", CASES, ids=str)
async def test_no_frame_value_crashes_a_task(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_ALLOW_EXEC", "1")  # exec runs only where the agent allows it
    for name, text in case.files.items():
        if isinstance(text, bytes):
            (tmp_path / name).write_bytes(text)
        else:
            (tmp_path / name).write_text(text)
    with hardware_for(case.type.type_name, dict(case.config), tmp_path) as config:
        await _no_frame_value_crashes(case, config, tmp_path)


async def _no_frame_value_crashes(case: Case, config: Mapping[str, Any], files_dir: Path) -> None:
    async with running(case.type, MEMORY, config, context_attrs={"files_dir": files_dir}) as h:
        runner = h.runner
        takes = {port: await watch(h, out) if (out := case.output_for(port)) else None for port in case.type.inputs}
        loop = asyncio.get_running_loop()

        # no shrinking: a failure shows the frames as drawn, at once (shrinking a task's run takes minutes)
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  phases=[Phase.explicit, Phase.generate])
        @given(st.sampled_from(sorted(case.type.inputs)), st.lists(frames, min_size=1, max_size=4))
        def hostile_then_good(port: str, hostile: list[Hostile]) -> None:
            asyncio.run_coroutine_threadsafe(drive(h, case, port, hostile, takes[port]), loop).result(TIMEOUT * 3)

        await asyncio.to_thread(hostile_then_good)
        assert h.runner is runner and not runner.done()  # the same instance, never restarted


def test_every_type_of_the_catalog_is_driven():
    driven = {case.type.type_name for case in CASES}
    catalog = {t.type_name for t in (*TYPES, *MEDIA_TYPES, *EXTRA_TYPES)}
    assert catalog - driven == NO_INPUTS & catalog | NEEDS_DEVICE & catalog


_REPORTED = {"bignum": 10**400, "negative-bignum": -(10**400), "biggest-bignum": 2**8191, "nan": math.nan,
             "inf": math.inf, "long-text": "x" * 100_000, "list": [1, [2]], "bytes": b""}


@pytest.mark.parametrize("value", list(_REPORTED.values()), ids=list(_REPORTED))
@pytest.mark.parametrize("name", ["calculator", "plot", "radio_buttons", "slider", "status_display", "value_bar"])
async def test_a_bignum_is_an_input_error_not_a_crash(name: str, value: Any) -> None:
    """The case of the report: one 10**400 crashed (and so restarted) these six types."""
    case = next(c for c in CASES if c.type.type_name == name)
    port = next(iter(case.type.inputs))
    output = case.output_for(port)
    assert output is not None
    async with running(case.type, MEMORY, case.config) as h:
        await h.bus.publish(h.sources[port], encode_frame(value))
        await h.errors(port, 1)
        drain(h)
        for good_port, good, extra in case.good_frames(port):
            await h.bus.publish(h.sources[good_port], encode_frame(good, extra=extra or None))
        await h.next(output)  # still running, and still computing
        assert h.task.in_metrics[port].errors == 1
        assert not h.runner.done()


# -- types whose input is a topic of their own ----------------------------------------------------------
_json_texts = st.one_of(st.sampled_from(["1" * 5000, "-" + "9" * 4301, "1e999", "-1e999", "NaN", "Infinity",
                                         "[" * 100_000, '{"a": ' * 5000, '"\\ud800"', "\ufeff1", "1 2", ""]),
                        st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                                     | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                                     | st.dictionaries(st.text(max_size=4), inner, max_size=3)).map(
                            json.dumps))
def _any_cbor(value: Any) -> bytes:
    """``value`` as CBOR, also nested deeper than our encoder sends (a foreign publisher's encoder does)."""
    try:
        return encode_value(value)
    except FrameError:
        return _raw_cbor(value)


def _raw_cbor(value: Any) -> bytes:
    """CBOR with no check of ours (arrays as edge.frames writes them): what an attacker's encoder sends."""
    return cbor2.dumps(value, default=frames_module._default)


payloads = st.one_of(st.binary(max_size=64), _json_texts.map(str.encode), frames.map(Hostile.payload),
                     values.map(_any_cbor))


async def _payloads_into(h: Harness, topic: str) -> None:
    """Hostile payloads on ``topic``, which the task reads itself: each one sent on or counted on ``out``."""
    runner, loop = h.runner, asyncio.get_running_loop()
    metrics = h.task.out_metrics["out"]

    async def feed(batch: list[bytes]) -> None:
        before = metrics.errors + metrics.frames
        for payload in batch:
            await h.bus.publish(topic, payload)
        await h.until(lambda: metrics.errors + metrics.frames >= before + len(batch), "every payload used or counted")
        h._check()

    @settings(max_examples=EXAMPLES * 4, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              phases=[Phase.explicit, Phase.generate])
    @given(st.lists(payloads, min_size=1, max_size=4))
    def hostile(batch: list[bytes]) -> None:
        asyncio.run_coroutine_threadsafe(feed(batch), loop).result(TIMEOUT * 3)

    await asyncio.to_thread(hostile)
    assert h.runner is runner and not runner.done()


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@pytest.mark.parametrize("fmt", ["json", "text", "raw", "cbor", "frame"])
@pytest.mark.parametrize("path", ["", "a[0].b"])
async def test_no_payload_crashes_mqtt_in(fmt: str, path: str) -> None:
    """``mqtt_in`` decodes whatever arrives on its topic: what it cannot use is counted on ``out``."""
    async with running(_BY_NAME["mqtt_in"], MEMORY, {"topic": "outside/#", "format": fmt, "path": path}) as h:
        await _payloads_into(h, "outside/x")


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
async def test_no_payload_crashes_named_input() -> None:
    from tasks.named import namespace_of

    async with running(_BY_NAME["named_input"], MEMORY, {"name": "shared"}) as h:
        assert h.task.context is not None
        await _payloads_into(h, namespace_of(h.task.context).named("shared"))


async def test_a_flood_of_bad_values_is_all_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    case = next(c for c in CASES if c.type.type_name == "calculator")
    async with running(case.type, MEMORY, case.config) as h:
        for batch in range(1, 21):  # within the input queue's bound: none dropped, every one counted
            for _ in range(50):
                await h.bus.publish(h.sources["a"], encode_frame(10**400))
            await h.errors("a", 50 * batch)
        assert h.task.in_metrics["a"].errors == 1000 and h.task.dropped() == 0
        await h.bus.publish(h.sources["a"], encode_frame(GOOD_NUMBER))
        assert (await h.next()).value == GOOD_NUMBER
    lines = [r.getMessage() for r in caplog.records if r.name == "tasks" and "'a'" in r.getMessage()]
    assert len(lines) == 1 and "integer of 1329 bits (beyond a float's range)" in lines[0], lines


@pytest.mark.parametrize("payload", [b"1" * 5000, b'"\\ud800"', b'{"a": [' + b"9" * 4301 + b"]}"],
                         ids=["5000-digits", "lone-surrogate", "nested-digits"])
async def test_json_that_python_or_a_frame_cannot_take_is_a_payload_error(payload: bytes) -> None:
    """Found by the fuzzing above: each of these crashed ``mqtt_in`` (ValueError, then FrameError on send)."""
    async with running(_BY_NAME["mqtt_in"], MEMORY, {"topic": "outside/#"}) as h:
        await h.bus.publish("outside/x", payload, retain=True)  # retained: there whenever it subscribes
        await h.errors("out", 1)
        await h.bus.publish("outside/x", b"21.5")
        assert (await h.next()).value == 21.5
