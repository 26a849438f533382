"""Vision benchmark: face_detection through a broker against OpenCV called directly, on the same frames.

The frames: ``--frames`` 640x480 rgb24 pictures, each the test photo (one face, NASA's portrait
of Eileen Collins) scaled to 480x480, 8 pixels further right each frame, on a grey background.
One process; the cascade loaded beforehand on both sides (loading is not timed):

* **direct**: per frame, what OpenCV's face detection sample does: ``cvtColor`` to grey,
  ``equalizeHist``, ``detectMultiScale`` (scale 1.1, 5 neighbours, 30 px), nothing of ours;
* **task**: the frames (encoded beforehand, as the camera's process would) published to Mosquitto,
  ``face_detection`` (default config) subscribed to them, the clock stopped when the boxes of the
  last frame arrived: the broker both ways, decoding each frame and sending its boxes are in the
  task's time.

Both are run with the frames scanned as they are and with ``detect_width: 320`` (a copy half as
wide is scanned: the framework's share of the time is larger); every other round runs the task
first. Prints a table (seconds and CPU seconds of this process per side, Mosquitto's not
counted; medians of ``--rounds``), the CPU ratio of each variant (direct CPU-s / task CPU-s:
steadier than the clock on a loaded machine), whether both sides found the same boxes in every
frame, and last ``ratio <x>``: the smaller of the two throughput ratios (direct s / task s).

    python bench/vision.py [--frames 40] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

PHOTO = Path(__file__).parents[1] / "tests" / "tasks" / "data" / "astronaut.jpg"
WIDTH, HEIGHT = 640, 480
VARIANTS = {"full frame": {}, "detect_width 320": {"detect_width": 320}}


def frames(count: int) -> list[np.ndarray]:
    import cv2

    face = cv2.resize(cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB), (HEIGHT, HEIGHT))
    out = []
    for i in range(count):
        canvas = np.full((HEIGHT, WIDTH, 3), 110, np.uint8)
        x = (i * 8) % (WIDTH - HEIGHT + 1)
        canvas[:, x : x + HEIGHT] = face
        out.append(canvas)
    return out


def direct(cascade: Any, images: list[np.ndarray], detect_width: int | None) -> list[list[list[int]]]:
    """OpenCV alone: the boxes of each image, in its pixels."""
    import cv2

    found = []
    for image in images:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        factor = 1.0
        if detect_width is not None and gray.shape[1] > detect_width:
            factor = gray.shape[1] / detect_width
            gray = cv2.resize(gray, (detect_width, round(gray.shape[0] / factor)), interpolation=cv2.INTER_AREA)
        boxes = cascade.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        found.append([[round(int(v) * factor) for v in box] for box in boxes])
    return found


async def through_task(url: str, config: dict[str, Any], images: list[np.ndarray],
                       timeout: float = 300) -> tuple[float, list[list[list[int]]]]:
    """Seconds from the first frame published to the last frame's boxes received, and the boxes."""
    from edge.bus import Bus
    from edge.frames import decode_frame, encode_frame
    from edge.task import TaskContext
    from tasks.inference.vision import FaceDetection

    prefix = f"bench/vision/{uuid.uuid4().hex[:8]}"
    async with Bus(url, client_id=f"bench-vision-{uuid.uuid4().hex[:6]}") as bus:
        sub = await bus.subscribe(f"{prefix}/faces", maxsize=100_000)
        ctx = TaskContext(bus=bus, instance_id="bench/vision", sources={"in": f"{prefix}/in"},
                          targets={"faces": [f"{prefix}/faces"]}, queue_size=100_000, queue_bytes=None,
                          max_payload=16 * 1024 * 1024)
        task = FaceDetection({**config, "queue": 10_000}, context=ctx)
        await task.open_inputs()
        runner = asyncio.ensure_future(task.run())
        try:
            for _ in range(2000):  # until it holds the cascade (loaded beforehand: at once)
                if task.detector is not None:
                    break
                await asyncio.sleep(0.005)
            payloads = [encode_frame(image, ts=1_000_000 + i, seq=i, extra={"pixel_format": "rgb24"})
                        for i, image in enumerate(images)]
            received: list[list[list[int]]] = []
            start = time.perf_counter()
            for payload in payloads:
                await bus.publish(f"{prefix}/in", payload)
            async with asyncio.timeout(timeout):
                while len(received) < len(images):
                    if runner.done():
                        runner.result()
                        raise RuntimeError("face_detection stopped")
                    try:
                        async with asyncio.timeout(0.5):
                            message = await sub.get()
                    except TimeoutError:
                        continue
                    boxes = decode_frame(message.payload).value
                    received.append([[b["x"], b["y"], b["width"], b["height"]] for b in boxes])
            return time.perf_counter() - start, received
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await task.close()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    from edge.broker import MosquittoBroker, free_port
    from tasks.inference import haar

    images = frames(args.frames)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    await haar.detector("frontalface_default").get()  # the task's, loaded beforehand too
    rounds: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with MosquittoBroker(port=free_port(), data_dir=Path(tmp), persistence=False) as broker:
            url = broker.url.geturl()
            await through_task(url, {}, images[:2])  # warm-up
            for round_number in range(args.rounds):
                result: dict[str, dict[str, Any]] = {}
                for name, config in VARIANTS.items():
                    # every other round the task goes first: a machine whose load drifts favours neither side
                    if round_number % 2:
                        cpu = cpu_seconds()
                        seconds, got = await through_task(url, config, images)
                        cpu_task = cpu_seconds() - cpu
                    cpu, t0 = cpu_seconds(), time.perf_counter()
                    want = direct(cascade, images, config.get("detect_width"))
                    seconds_direct, cpu_direct = time.perf_counter() - t0, cpu_seconds() - cpu
                    if not round_number % 2:
                        cpu = cpu_seconds()
                        seconds, got = await through_task(url, config, images)
                        cpu_task = cpu_seconds() - cpu
                    result[name] = {"direct": seconds_direct, "task": seconds, "ratio": seconds_direct / seconds,
                                    "cpu_direct": cpu_direct, "cpu_task": cpu_task,
                                    "same_boxes": got == want, "faces": sum(len(b) for b in want)}
                rounds.append(result)
    return {"machine": machine(), "frames": args.frames, "rounds": rounds, "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads()}


def cpu_seconds() -> float:
    """CPU seconds of this process so far (every thread: OpenCV's, the worker's, the event loop's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> str:
    from bus import cpu_model  # bench/bus.py: every benchmark's machine line names the CPU the same way

    return f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}"


def report(data: dict[str, Any]) -> str:
    lines = [f"# {data['machine']}; OpenCV {data['opencv']} ({data['opencv_threads']} threads); {data['frames']} "
             f"frames of {WIDTH}x{HEIGHT} rgb24, {len(data['rounds'])} round(s)",
             f"{'variant':20}{'direct s':>10}{'task s':>10}{'fps direct':>12}{'fps task':>10}{'ratio':>8}"
             f"{'CPU-s direct':>14}{'CPU-s task':>12}"]
    ratios = []
    for name in VARIANTS:
        direct_s = statistics.median(r[name]["direct"] for r in data["rounds"])
        task_s = statistics.median(r[name]["task"] for r in data["rounds"])
        ratio = statistics.median(r[name]["ratio"] for r in data["rounds"])
        ratios.append(ratio)
        cpu_direct = statistics.median(r[name]["cpu_direct"] for r in data["rounds"])
        cpu_task = statistics.median(r[name]["cpu_task"] for r in data["rounds"])
        lines.append(f"{name:20}{direct_s:10.3f}{task_s:10.3f}{data['frames'] / direct_s:12.1f}"
                     f"{data['frames'] / task_s:10.1f}{ratio:8.2f}{cpu_direct:14.2f}{cpu_task:12.2f}")
    cpu_ratios = [statistics.median(r[name]["cpu_direct"] / r[name]["cpu_task"] for r in data["rounds"])
                  for name in VARIANTS]
    lines.append(f"CPU ratio (direct CPU-s / task CPU-s): {', '.join(f'{x:.2f}' for x in cpu_ratios)}")
    same = all(r[name]["same_boxes"] for r in data["rounds"] for name in VARIANTS)
    lines.append(f"same boxes in every frame: {'yes' if same else 'NO'}")
    lines.append(f"ratio {min(ratios):.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = asyncio.run(_main(args))
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(report(data))


if __name__ == "__main__":
    main()
