"""Media benchmark: a video pipeline across two processes through Mosquitto against plain PyAV in one.

The workload of the media issue: a 640x480 30 fps H.264 file (made here, synthetic) is read
and decoded, encoded with libx264 (``zerolatency``), decoded again and written to a file.

* **plain PyAV** (one child process, no broker): demux+decode -> encode -> decode -> write
  the frames uncompressed (rawvideo in NUT), as fast as it can;
* **edgetasks** (two child processes, one Mosquitto): process A runs ``input_container``
  (decoding, yuv420p raw frames) -> ``video_encoder``; process B runs ``video_decoder`` ->
  ``output_container`` (rawvideo in NUT). The packets go from A to B through the broker; the raw
  frames between the two tasks of one process are handed over in-process, as on an agent
  (``edge.local``); the row **every hop through the broker** sends them through the broker too
  (``EDGE_LOCAL_STREAMS=false``), the "before" of the same run. Measured:

  - **throughput**: the source as fast as possible, the lanes long enough to hold the clip so
    nothing is dropped (checked): frames / (last frame decoded in B - start of A);
  - **latency**: the source in real time (30 fps), default settings; per frame, the time from
    ``input_container`` sending a frame (its ``ts``) to B having it decoded, p50/p99.

Both sides use the same x264 settings (preset, zerolatency, threads) and the same
``MALLOC_TOP_PAD_`` (see docs/frames.md). Prints a table, ``latency p50 … ms`` and last
``ratio <x>``: edgetasks throughput / plain PyAV fps, medians over the rounds.

    python bench/media.py [--frames 300] [--rounds 3] [--width 640 --height 480] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import process_cpu  # bench/ is no package: its directory is on the path

PRESET = "veryfast"
RATE = 30
CHILD_ENV = {"MALLOC_TOP_PAD_": "67108864"}
BROKER_ONLY = "every hop via broker"


async def until(predicate: Any, timeout: float) -> bool:
    """Poll ``predicate`` every 5 ms for at most ``timeout`` seconds; whether it came true."""
    for _ in range(int(timeout / 0.005) + 1):
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return bool(predicate())


def frame_ts(payload: bytes) -> int:
    """The ts of a frame as encode_frame writes it (``{"ts": uint, …}`` first), without decoding the rest."""
    if payload[1:4] != b"\x62ts":
        raise ValueError("not a frame that starts with its ts")
    info = payload[4] & 0x1F
    if info < 24:
        return info
    size = 1 << (info - 24)
    return int.from_bytes(payload[5 : 5 + size], "big")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the input file ------------------------------------------------------------------------------
def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    """Bars with a moving box and a drifting texture, so the encoder has real work."""
    import av
    import numpy as np

    rng = np.random.default_rng(1)
    texture = rng.integers(0, 64, (height, width * 2, 3), dtype=np.uint8)
    bars = np.zeros((height, width, 3), np.uint8)
    colors = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
    for i, color in enumerate(colors):
        bars[:, i * width // 7 : (i + 1) * width // 7] = color
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for i in range(frames):
            image = bars // 2 + texture[:, i % width : i % width + width] * 2
            box = height // 5
            x = (i * 6) % (width - box)
            image[height // 3 : height // 3 + box, x : x + box] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, RATE)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


# -- plain PyAV (child) -----------------------------------------------------------------------------
def run_baseline(clip: str, out_path: str) -> dict[str, Any]:
    import av

    started, cpu = time.perf_counter(), cpu_seconds()
    frames = 0
    with av.open(clip) as source, av.open(out_path, "w", format="nut") as out:
        in_stream = source.streams.video[0]
        encoder = av.CodecContext.create("libx264", "w")
        decoder = av.CodecContext.create("h264", "r")
        raw = out.add_stream("rawvideo", rate=RATE)
        raw.width, raw.height, raw.pix_fmt = in_stream.width, in_stream.height, "yuv420p"
        opened = False
        for frame in source.decode(in_stream):
            if not opened:
                encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "yuv420p"
                encoder.time_base = in_stream.time_base or Fraction(1, RATE)
                encoder.framerate = Fraction(RATE)
                encoder.gop_size = 30
                encoder.options = {"preset": PRESET, "tune": "zerolatency", "sc_threshold": "0"}
                encoder.open()
                decoder.extradata = encoder.extradata
                opened = True
            for packet in encoder.encode(frame):
                for decoded in decoder.decode(packet):
                    decoded.pts = frames
                    decoded.time_base = Fraction(1, RATE)
                    out.mux(raw.encode(decoded))
                    frames += 1
    elapsed = time.perf_counter() - started
    return {"frames": frames, "seconds": elapsed, "fps": frames / elapsed, "cpu": cpu_seconds() - cpu}


# -- edgetasks (children) ---------------------------------------------------------------------------
def _context(bus: Any, name: str, sources: dict[str, str], targets: dict[str, str], *,
             files: str | None = None, local: Any = None) -> Any:
    from edge.task import TaskContext

    # `files`: a file the task reads or writes; its folder is the task's files folder (edge.files)
    # `local`: the process's edge.local.LocalStreams: its local streams' inputs are fed in-process, as an agent does
    fed = [port for port, topic in sources.items() if local is not None and local.is_local(topic)]
    return TaskContext(bus=bus, instance_id=f"bench/{name}", sources=sources,
                       targets={port: [topic] for port, topic in targets.items()},
                       files_dir=Path(files).parent if files else None, local=local, local_inputs=fed)


def _local(topic: str, on: bool) -> Any:
    """An agent's switchboard with ``topic`` handed over in-process (None: every hop through the broker)."""
    from edge.local import LocalStreams

    if not on:
        return None
    local = LocalStreams()
    local.set_local([topic])
    return local


async def run_source(url: str, prefix: str, clip: str, realtime: bool, queue: int, local: bool) -> dict[str, Any]:
    from edge.bus import Bus
    from tasks.media import InputContainer, VideoEncoder

    lanes = _local(f"{prefix}/raw", local)
    async with Bus(url, client_id=f"bench-source-{os.getpid()}") as bus:
        encoder = VideoEncoder({"preset": PRESET, "keyframe_interval": 30, "queue": queue},
                               context=_context(bus, "encode", {"in": f"{prefix}/raw"}, {"out": f"{prefix}/packets"},
                                                local=lanes))
        source = InputContainer({"url": clip, "realtime": realtime, "pixel_format": "yuv420p", "audio": False},
                                context=_context(bus, "read", {}, {"video": f"{prefix}/raw"}, files=clip, local=lanes))
        await encoder.open_inputs()
        started, cpu = time.time(), cpu_seconds()
        async with asyncio.TaskGroup() as group:
            encoding = group.create_task(encoder.run())
            await source.run()
            await until(lambda: encoder.out_metrics["out"].frames + encoder.dropped()
                        >= source.out_metrics["video"].frames, 60)
            encoding.cancel()
        return {"started": started, "sent": source.out_metrics["video"].frames,
                "encoded": encoder.out_metrics["out"].frames, "dropped": encoder.dropped(),
                "cpu": cpu_seconds() - cpu}


async def run_sink(url: str, prefix: str, frames: int, out_path: str, queue: int, timeout: float,
                   local: bool) -> dict[str, Any]:
    from edge.bus import Bus, Message
    from edge.frames import Frame
    from tasks.media import OutputContainer, VideoDecoder

    arrivals: list[float] = []
    latencies: list[float] = []

    def on_decoded(message: Message) -> None:
        now = time.time()
        arrivals.append(now)
        latencies.append(now * 1000 - frame_ts(message.payload))  # not decoding 460 KB: not our cost

    def on_local(frame: Frame, size: int) -> None:  # beside the writer, in-process as the writer is
        now = time.time()
        arrivals.append(now)
        latencies.append(now * 1000 - frame.ts)

    lanes = _local(f"{prefix}/decoded", local)
    async with Bus(url, client_id=f"bench-sink-{os.getpid()}") as bus:
        decoder = VideoDecoder({"pixel_format": "yuv420p", "queue": queue},
                               context=_context(bus, "decode", {"in": f"{prefix}/packets"},
                                                {"out": f"{prefix}/decoded"}, local=lanes))
        writer = OutputContainer({"url": out_path, "format": "nut", "video_codec": "rawvideo", "queue": queue},
                                 context=_context(bus, "write", {"video": f"{prefix}/decoded"}, {}, files=out_path,
                                                  local=lanes))
        if lanes is not None:
            lanes.attach(f"{prefix}/decoded", on_local)
        else:
            await bus.subscribe(f"{prefix}/decoded", callback=on_decoded)
        await decoder.open_inputs()
        await writer.open_inputs()
        cpu = cpu_seconds()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(decoder.run()), group.create_task(writer.run())]
            print("ready", flush=True)
            await until(lambda: len(arrivals) >= frames, timeout)
            await until(lambda: writer.in_metrics["video"].frames >= len(arrivals), 10)
            for task in tasks:
                task.cancel()
        await writer.close()
        await decoder.close()
        return {"received": len(arrivals), "last": max(arrivals, default=0.0), "latencies_ms": latencies,
                "decoder_dropped": decoder.dropped(), "writer_dropped": writer.dropped(),
                "written": writer.muxer.written.get("video", 0) if writer.muxer else 0, "cpu": cpu_seconds() - cpu}


def run_pipeline(url: str, clip: str, frames: int, tmp: str, *, realtime: bool, queue: int,
                 round_no: int, local: bool = True) -> dict[str, Any]:
    prefix = f"bench/media/{os.getpid()}/{round_no}/{'rt' if realtime else 'fast'}{'' if local else '-broker'}"
    in_process = [] if local else ["--broker-only"]
    out_path = str(Path(tmp) / f"out-{round_no}-{int(realtime)}.nut")
    timeout = frames / RATE * 3 + 30 if realtime else 120
    env = {**os.environ, **CHILD_ENV}
    sink = subprocess.Popen([sys.executable, __file__, "--role", "sink", "--url", url, "--prefix", prefix,
                             "--frames", str(frames), "--out", out_path, "--queue", str(queue),
                             "--timeout", str(timeout), *in_process], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert sink.stdout is not None
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the sink process did not start")
        source = subprocess.run([sys.executable, __file__, "--role", "source", "--url", url, "--prefix", prefix,
                                 "--clip", clip, "--queue", str(queue), *(["--realtime"] if realtime else []),
                                 *in_process],
                                capture_output=True, text=True, env=env, timeout=timeout + 30, check=False)
        if source.returncode != 0:
            raise RuntimeError(f"the source process failed:\n{source.stderr[-3000:]}")
        out, _ = sink.communicate(timeout=timeout + 30)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    if sink.returncode != 0:
        raise RuntimeError("the sink process failed")
    a = json.loads(source.stdout.strip().splitlines()[-1])
    b = json.loads(out.strip().splitlines()[-1])
    elapsed = b["last"] - a["started"]
    lat = sorted(b["latencies_ms"])
    return {"frames": b["received"], "seconds": elapsed, "fps": b["received"] / elapsed if elapsed > 0 else 0.0,
            "p50_ms": lat[len(lat) // 2] if lat else None, "p99_ms": lat[min(len(lat) - 1, len(lat) * 99 // 100)]
            if lat else None, "dropped": a["dropped"] + b["decoder_dropped"] + b["writer_dropped"],
            "lost": frames - b["received"], "written": b["written"], "cpu": a["cpu"] + b["cpu"], "cpu_a": a["cpu"],
            "cpu_b": b["cpu"]}


def run_child_baseline(clip: str, out_path: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--role", "baseline", "--clip", clip, "--out", out_path],
                         capture_output=True, text=True, env={**os.environ, **CHILD_ENV}, timeout=300, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the baseline failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- orchestration ---------------------------------------------------------------------------------
def find_pid(marker: str) -> int | None:
    """The process whose command line mentions ``marker`` (our Mosquitto, by its config file)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
    return None


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from edge.broker import MosquittoBroker, free_port

    results: dict[str, list[dict[str, Any]]] = {"plain PyAV": [], "edgetasks": [], BROKER_ONLY: [],
                                                "edgetasks real time": []}
    with tempfile.TemporaryDirectory() as tmp:
        clip, short_clip = str(Path(tmp) / "clip.mp4"), str(Path(tmp) / "short.mp4")
        make_clip(Path(clip), args.frames, args.width, args.height)
        make_clip(Path(short_clip), args.latency_frames, args.width, args.height)
        async with MosquittoBroker(port=free_port(), data_dir=Path(tmp), persistence=False) as broker:
            url = broker.url.geturl()
            broker_pid = find_pid(str(broker.config_path))
            for rnd in range(args.rounds):
                runs = [("plain PyAV", lambda r=rnd: run_child_baseline(clip, str(Path(tmp) / f"base-{r}.nut"))),
                        ("edgetasks", lambda r=rnd: run_pipeline(url, clip, args.frames, tmp, realtime=False,
                                                                 queue=args.frames + 10, round_no=r)),
                        (BROKER_ONLY, lambda r=rnd: run_pipeline(url, clip, args.frames, tmp, realtime=False,
                                                                 queue=args.frames + 10, round_no=r, local=False)),
                        ("edgetasks real time", lambda r=rnd: run_pipeline(url, short_clip, args.latency_frames, tmp,
                                                                           realtime=True, queue=4, round_no=r))]
                for name, run in runs:
                    broker_cpu = process_cpu(broker_pid)
                    result = await asyncio.to_thread(run)
                    result["broker_cpu"] = process_cpu(broker_pid) - broker_cpu
                    results[name].append(result)
                    extra = (f", p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                             f"dropped {result['dropped']}, lost {result['lost']}" if "p50_ms" in result else "")
                    print(f"round {rnd + 1}: {name:20} {result['fps']:7.1f} fps, {result['frames']} frames, "
                          f"cpu {result['cpu']:.2f} s (A {result.get('cpu_a', 0):.2f}, B {result.get('cpu_b', 0):.2f}, "
                          f"broker {result['broker_cpu']:.2f}){extra}", file=sys.stderr)
    return results


def machine() -> str:
    import platform
    from importlib.metadata import version

    import av
    from bus import cpu_model, mosquitto_version

    return (f"# {os.cpu_count()} cores, {cpu_model()}; Python {platform.python_version()}; PyAV {version('av')} "
            f"(FFmpeg {av.ffmpeg_version_info}); {mosquitto_version() or 'mosquitto ?'}")


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    def median(name: str, key: str) -> float:
        values = [r[key] for r in results[name] if r.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    lines = [machine(),
             f"# {args.frames} frames {args.width}x{args.height} h264 -> decode -> libx264 {PRESET} zerolatency -> "
             f"decode -> rawvideo file; median of {args.rounds} round(s)",
             f"{'path':22} {'fps':>8} {'cpu s':>7} {'p50 ms':>7} {'p99 ms':>7} {'dropped':>8} {'lost':>5}"]
    for name, runs in results.items():
        p50, p99 = median(name, "p50_ms"), median(name, "p99_ms")
        dropped = max((r.get("dropped", 0) for r in runs), default=0)
        lost = max((r.get("lost", 0) for r in runs), default=0)
        lines.append(f"{name:22} {median(name, 'fps'):8.1f} {median(name, 'cpu'):7.2f} "
                     f"{'-' if p50 != p50 else f'{p50:.1f}':>7} {'-' if p99 != p99 else f'{p99:.1f}':>7} "
                     f"{dropped:8d} {lost:5d}")
    lines.append(f"latency p50 {median('edgetasks real time', 'p50_ms'):.1f} ms")
    lines.append(f"every hop through the broker: ratio {median(BROKER_ONLY, 'fps') / median('plain PyAV', 'fps'):.2f}")
    lines.append(f"ratio {median('edgetasks', 'fps') / median('plain PyAV', 'fps'):.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames of the clip (throughput runs)")
    parser.add_argument("--latency-frames", type=int, default=150, help="frames of the real-time run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    # child roles
    parser.add_argument("--role", choices=["baseline", "source", "sink"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--queue", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=120, help=argparse.SUPPRESS)
    parser.add_argument("--realtime", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--broker-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "baseline":
        print(json.dumps(run_baseline(args.clip, args.out)))
    elif args.role == "source":
        print(json.dumps(asyncio.run(run_source(args.url, args.prefix, args.clip, args.realtime, args.queue,
                                                    not args.broker_only))))
    elif args.role == "sink":
        result = asyncio.run(run_sink(args.url, args.prefix, args.frames, args.out, args.queue, args.timeout,
                                      not args.broker_only))
        print(json.dumps(result))
    else:
        args.latency_frames = min(args.latency_frames, args.frames)
        results = asyncio.run(_main(args))
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                            indent=1))
        print(report(results, args))


if __name__ == "__main__":
    main()
