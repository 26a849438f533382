"""Serial ports with pyserial: ``serial_in`` (what a device sends, as frames) and ``serial_out``.

A port is a device file: ``/dev/serial0`` (the Raspberry Pi's UART), ``/dev/ttyUSB0`` or
``/dev/ttyACM0`` (USB adapters and boards), best a stable ``/dev/serial/by-id/...`` link. The
port is read without threads: the loop watches its file descriptor (``add_reader``) and reads
what is there. A port that is missing or goes away (a USB adapter unplugged) is no crash: the
task's status says why, and it opens the port again (after 0.5 s, then twice as long each time up
to 30 s). Linux and macOS (a file descriptor to watch); not Windows.
"""

from __future__ import annotations

import asyncio
import codecs
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.task import Task
from tasks._lazy import require
from tasks.base import ANY, BuiltinTask, as_number
from tasks.hardware._retry import BACKOFF_MAX, BACKOFF_MIN, open_device

if TYPE_CHECKING:
    import serial
else:
    from tasks._lazy import lazy

    serial = lazy("serial")  # imported when a port is first opened

require("serial", hint="the serial task types (serial_in, serial_out) need pyserial: pip install 'edgetasks[serial]' "
                       "(or: pip install pyserial)")

__all__ = ["TYPES", "SerialIn", "SerialOut"]

# pyserial's names of the parities (its values, looked up when a port opens)
PARITY = {"none": "PARITY_NONE", "even": "PARITY_EVEN", "odd": "PARITY_ODD", "mark": "PARITY_MARK",
          "space": "PARITY_SPACE"}
ENDINGS = {"none": b"", "lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}
MAX_FRAME = 1024 * 1024
WRITE_TIMEOUT = 2.0


class _PortConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: str = Field(default="/dev/ttyUSB0", min_length=1, max_length=255,
                      description="the device: /dev/serial0, /dev/ttyUSB0, /dev/serial/by-id/...")
    baudrate: int = Field(default=9600, ge=50, le=4_000_000, description="bits per second")
    bytesize: Literal[5, 6, 7, 8] = Field(default=8, description="data bits")
    parity: Literal["none", "even", "odd", "mark", "space"] = Field(default="none", description="the parity bit")
    stopbits: float = Field(default=1, description="stop bits: 1, 1.5 or 2")
    rtscts: bool = Field(default=False, description="RTS/CTS hardware flow control")
    xonxoff: bool = Field(default=False, description="XON/XOFF software flow control")
    encoding: str = Field(default="utf-8", max_length=40, description="the text encoding (text frames)")

    @field_validator("port")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("a device path has no NUL character")
        return value

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stop bits are 1, 1.5 or 2")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (utf-8, ascii, latin-1, ...)") from None
        return value


class _SerialTask(BuiltinTask):
    category = "hardware"

    def open_port(self) -> serial.Serial:
        """The configured port, open and non-blocking (a worker thread calls this)."""
        c = self.config
        return serial.Serial(c.port, baudrate=c.baudrate, bytesize=c.bytesize, parity=getattr(serial, PARITY[c.parity]),
                             stopbits=c.stopbits, rtscts=c.rtscts, xonxoff=c.xonxoff, timeout=0,
                             write_timeout=WRITE_TIMEOUT, exclusive=True)


class _Framer:
    """Cuts the bytes a port sends into frames: lines, delimited pieces or fixed-size chunks."""

    def __init__(self, *, split: bytes | int, max_frame: int, strip_cr: bool) -> None:
        self.split, self.max_frame, self.strip_cr = split, max_frame, strip_cr
        self.buffer = bytearray()

    def feed(self, data: bytes) -> tuple[list[bytes], int]:
        """The frames complete with ``data``, and how many over-long pieces were dropped."""
        self.buffer += data
        frames: list[bytes] = []
        dropped = 0
        if isinstance(self.split, int):
            size = self.split
            while len(self.buffer) >= size:
                frames.append(bytes(self.buffer[:size]))
                del self.buffer[:size]
            return frames, dropped
        while (at := self.buffer.find(self.split)) >= 0:
            piece = bytes(self.buffer[:at])
            del self.buffer[:at + len(self.split)]
            if self.strip_cr and piece.endswith(b"\r"):
                piece = piece[:-1]
            if len(piece) > self.max_frame:
                dropped += 1
            else:
                frames.append(piece)
        if len(self.buffer) > self.max_frame:  # no delimiter in sight: what came so far is no frame
            dropped += 1
            self.buffer.clear()
        return frames, dropped


class SerialIn(_SerialTask):
    """What a device sends on a serial port, as frames: lines, delimited pieces or fixed-size chunks.

    `mode: line` cuts at each `\\n` (and drops a `\\r` before it); `delimiter` at each
    `delimiter` (text, in the port's `encoding`); `chunk` every `chunk_size` bytes. The frames are
    text (`decode: text`, bytes the encoding cannot read become U+FFFD) or bytes. A piece longer
    than `max_frame` bytes is dropped and counted as an error on `out`. A missing or vanished port
    is no crash: the status says why and the task opens it again (0.5 s, doubling up to 30 s); a
    piece cut short by the disconnect is dropped.
    """

    class Config(_PortConfig):
        mode: Literal["line", "delimiter", "chunk"] = Field(default="line", description="how to cut frames")
        delimiter: str = Field(default=";", min_length=1, max_length=16, description="with mode delimiter: the end "
                                                                                     "of each frame")
        chunk_size: int = Field(default=16, ge=1, le=65_536, description="with mode chunk: bytes per frame")
        decode: Literal["text", "bytes"] = Field(default="text", description="send text or bytes")
        max_frame: int = Field(default=4096, ge=1, le=MAX_FRAME, description="longest frame, in bytes")

    outputs = {"out": ANY("received")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: how many times the port was opened and is being read (1 at first, +1 after each reconnect)
        self.connects = 0

    @classmethod
    def metadata_for(cls, config: Any, port: str, declared: Any) -> dict[str, Any]:
        return {"content": "text" if config.decode == "text" else "bytes"}

    def framer(self) -> _Framer:
        c: SerialIn.Config = self.config
        split: bytes | int = (b"\n" if c.mode == "line" else c.chunk_size if c.mode == "chunk"
                              else c.delimiter.encode(c.encoding, errors="replace"))
        return _Framer(split=split, max_frame=c.max_frame, strip_cr=c.mode == "line")

    async def run(self) -> None:
        while True:
            port = await open_device(self, lambda: asyncio.to_thread(self.open_port), self.config.port)
            try:
                await self._read(port)
            except (serial.SerialException, OSError) as exc:
                self.problem = f"lost {self.config.port}: {exc}"
                self.warn("lost", "%s; opening it again", self.problem)
            finally:
                port.close()

    async def _read(self, port: serial.Serial) -> None:
        config: SerialIn.Config = self.config
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = port.fileno()
        loop.add_reader(fd, ready.set)
        self.connects += 1
        framer = self.framer()
        try:
            while True:
                await ready.wait()
                ready.clear()
                data = port.read(max(port.in_waiting, 1))  # non-blocking (timeout 0): what is there
                frames, dropped = framer.feed(data)
                for _ in range(dropped):
                    self.count_error(self.out_metrics["out"], "long", "dropped a piece of over %d bytes from %s",
                                     config.max_frame, config.port)
                for piece in frames:
                    await self.send("out", piece.decode(config.encoding, errors="replace")
                                    if config.decode == "text" else piece)
        finally:
            loop.remove_reader(fd)


class SerialOut(_SerialTask):
    """Write each frame on `in` to a serial port.

    With `format: text` a frame's text (a number is written as its decimal text) is encoded in
    `encoding` and `line_ending` is added; with `format: bytes` the frame's bytes (or a list of
    byte values 0..255) are written as they are. Other values are input errors. While the port
    is missing (unplugged) frames are dropped, each counted as an error on `in`; the status says
    why, and the port is opened again (0.5 s, doubling up to 30 s). Pause frames are skipped.
    """

    class Config(_PortConfig):
        format: Literal["text", "bytes"] = Field(default="text", description="what the frames hold")
        line_ending: Literal["none", "lf", "crlf", "cr"] = Field(
            default="lf", description="with format text: added after each frame (lf: \\n, crlf: \\r\\n, cr: \\r)")

    inputs = {"in": ANY("to send")}

    def encode(self, value: Any) -> bytes | None:
        config: SerialOut.Config = self.config
        if config.format == "bytes":
            if isinstance(value, bytes):
                return bytes(value)
            if isinstance(value, list) and all(type(b) is int and 0 <= b <= 255 for b in value):
                return bytes(value)
            self.reject("in", "expected bytes or a list of byte values")
            return None
        if isinstance(value, str):
            text = value
        else:
            number = as_number(value)
            if number is None or type(value) is bool:
                self.reject("in", "expected text or a number")
                return None
            text = str(number)
        try:
            return text.encode(config.encoding) + ENDINGS[config.line_ending]
        except UnicodeEncodeError as exc:
            self.reject("in", f"not {config.encoding}: {exc.reason}")
            return None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        port: serial.Serial | None = None
        retry_at = loop.time()
        delay = BACKOFF_MIN

        async def connect() -> serial.Serial | None:
            nonlocal retry_at, delay
            if loop.time() < retry_at:
                return None
            try:
                opened = await asyncio.to_thread(self.open_port)
            except (serial.SerialException, OSError) as exc:
                self.problem = f"cannot open {self.config.port}: {exc} (trying again in {delay:g} s)"
                self.warn("open", "%s", self.problem)
                retry_at, delay = loop.time() + delay, min(delay * 2, BACKOFF_MAX)
                return None
            self.problem, delay = None, BACKOFF_MIN
            return opened

        port = await connect()
        try:
            async for frame in self.receive("in"):
                if frame.paused or (data := self.encode(frame.value)) is None:
                    continue
                if port is None and (port := await connect()) is None:
                    self.count_error(self.in_metrics["in"], "closed", "dropped a frame: %s", self.problem)
                    continue
                try:
                    await asyncio.to_thread(port.write, data)
                except (serial.SerialException, OSError) as exc:  # unplugged, or a write timeout
                    self.count_error(self.in_metrics["in"], "write", "writing to %s failed: %s", self.config.port,
                                     exc)
                    port.close()
                    port, self.problem = None, f"lost {self.config.port}: {exc}"
        finally:
            if port is not None:
                port.close()


#: the types of the ``serial`` entry point
TYPES: list[type[Task]] = [SerialIn, SerialOut]
