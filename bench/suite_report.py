"""The plots and the generated summary of ``bench/suite.py``, from the JSON each benchmark wrote.

One function per benchmark turns its JSON into a table of medians, its targets (met or missed)
and a PNG with the contenders side by side (matplotlib, Agg backend). :func:`write_report`
puts them between ``<!-- suite:begin -->`` and ``<!-- suite:end -->`` of the report.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bus import cpu_model, mosquitto_version  # bench/ is on sys.path: suite.py runs from here

BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"
PACKAGES = ("paho-mqtt", "mqtt5", "cbor2", "numpy", "pydantic", "nicegui", "av", "iotcore", "playwright",
            "matplotlib")
DASH = "\u2013"  # an en dash: no figure
Target = tuple[str, str, str, bool | None]  # what, measured, target, met
Section = tuple[list[str], list[Target]]


def machine() -> str:
    """Cores, CPU model, Python, the libraries and the broker, on one line."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    mosquitto = mosquitto_version().replace("mosquitto version", "Mosquitto")
    return (f"{os.cpu_count()} cores, {cpu_model()}; Python {platform.python_version()}; {', '.join(versions)}"
            f"{'; ' + mosquitto if mosquitto else ''}")


# -- helpers -------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, float) and math.isinf(value):
        return "never"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _bars(ax: Any, groups: list[str], series: dict[str, list[float]], *, ylabel: str, title: str,
          log: bool = False, targets: dict[str, float] | None = None) -> None:
    """Grouped bars: one group per x label, one bar per series, the value written on each bar."""
    n = max(1, len(series))
    width = 0.8 / n
    for k, (label, values) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(groups))]
        clean = [0.0 if math.isnan(v) or math.isinf(v) else v for v in values]
        bars = ax.bar(xs, clean, width, label=label)
        for bar, v in zip(bars, values, strict=True):
            text = DASH if math.isnan(v) else ("∞" if math.isinf(v) else _short(v))
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 1), textcoords="offset points")
    for label, value in (targets or {}).items():
        ax.axhline(value, color="tab:red", linestyle="--", linewidth=1, label=label)
    if len(groups) > 4:
        ax.set_xticks(range(len(groups)), groups, fontsize=8, rotation=20, ha="right")
    else:
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if log:
        ax.set_yscale("log")
    if n > 1 or targets:
        ax.legend(fontsize=7)
    ax.margins(y=0.15)


def _short(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _figure(panels: int, width: float = 11.0) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width, 3.6), dpi=100)
    return fig, list(axes) if panels > 1 else [axes]


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# -- one function per benchmark: (markdown, targets), and its plot ---------------------------------
def bus(data: dict[str, Any], png: Path) -> Section:
    s = data["summary"]
    names = list(s)
    rows = [[n, s[n]["64B msgs/s"], s[n]["64KiB MB/s"], f"{s[n]['rtt p50 ms']:.3f} / {s[n]['rtt p99 ms']:.3f}",
             f"{s[n]['1k/s p50 ms']:.3f} / {s[n]['1k/s p99 ms']:.3f}", s[n]["64B lost"]] for n in names]
    lines = _table(["contender", "64 B msgs/s", "64 KiB MB/s", "round trip p50 / p99 ms", "1k/s p50 / p99 ms",
                    "64 B lost"], rows)
    auto = data.get("results", {}).get("auto", "mqtt5")
    targets: list[Target] = []
    if f"edge.bus/{auto}" in s and "paho loop_start" in s:
        ratio = s[f"edge.bus/{auto}"]["64B msgs/s"] / s["paho loop_start"]["64B msgs/s"]
        targets.append(("edge.bus (default transport) / paho loop_start, 64 B msgs/s", f"{ratio:.2f}", "≥ 1.8",
                        ratio >= 1.8))
    fig, (a, b) = _figure(2)
    _bars(a, names, {"64 B": [_num(s[n]["64B msgs/s"]) for n in names]}, ylabel="msgs/s", title="bus throughput, 64 B")
    _bars(b, names, {"round trip p50": [_num(s[n]["rtt p50 ms"]) for n in names],
                     "1k/s p50": [_num(s[n]["1k/s p50 ms"]) for n in names],
                     "1k/s p99": [_num(s[n]["1k/s p99 ms"]) for n in names]}, ylabel="ms", title="bus latency")
    _save(fig, png)
    return lines, targets


def cpu(data: dict[str, Any], png: Path) -> Section:
    per = data["us_per_msg"]
    lines = _table(["path", "µs per relayed message (CPU, best of rounds)"], [[k, v] for k, v in per.items()])
    targets: list[Target] = []
    if "mqtt5" in per:
        targets.append(("CPU per relayed message, mqtt5 transport incl. frames", f"{per['mqtt5']:.2f} µs", "≤ 8 µs",
                        per["mqtt5"] <= 8))
    fig, (a,) = _figure(1, 7)
    _bars(a, list(per), {"µs/msg": [_num(v) for v in per.values()]}, ylabel="µs per message (CPU)",
          title="CPU per relayed message, no broker")
    _save(fig, png)
    return lines, targets


def codec(data: dict[str, Any], png: Path) -> Section:
    s = data["summary"]
    rows = [[c, f"{r['bytes']:,.0f}", r["encode_us"], r["decode_us"], r["memcpy_us"], r["encode_ratio"],
             r["decode_ratio"]] for c, r in s.items()]
    lines = _table(["frame", "bytes", "encode µs", "decode µs", "memcpy µs", "encode / memcpy", "decode / memcpy"],
                   rows)
    if "image" in s and "np_copy_us" in s["image"]:
        lines += ["", f"np.copy of the image array: {s['image']['np_copy_us']:.1f} µs."]
    fig, axes = _figure(2)
    small = [c for c in s if c != "image"]
    for ax, cases, title in ((axes[0], small, "small frames"), (axes[1], [c for c in s if c == "image"],
                                                                  "640x480x3 uint8 image")):
        _bars(ax, cases, {op: [_num(s[c][f"{op}_us"]) for c in cases] for op in ("encode", "decode", "memcpy")},
              ylabel="µs per op", title=f"edge.frames vs memcpy: {title}")
    _save(fig, png)
    return lines, []


def footprint(data: dict[str, Any], png: Path) -> Section:
    variants = {"as installed (media extra)": data["summary"]}
    if "core" in data:
        variants["core install (no PyAV)"] = data["core"]["summary"]
    rows = [[k, v["birth_s"], v["rss_idle_mb"], v["rss_10_tasks_mb"]] for k, v in variants.items()]
    lines = _table(["agent", "start to birth s", "RSS idle MB", "RSS with 10 tasks MB"], rows)
    targets: list[Target] = []
    for k, v in variants.items():
        targets.append((f"agent start to birth, {k}", f"{v['birth_s']:.2f} s", "≤ 1.5 s", v["birth_s"] <= 1.5))
        targets.append((f"agent RSS idle, {k}", f"{v['rss_idle_mb']:.1f} MB", "≤ 60 MB", v["rss_idle_mb"] <= 60))
    fig, (a, b) = _figure(2)
    names = list(variants)
    _bars(a, names, {"birth": [_num(v["birth_s"]) for v in variants.values()]}, ylabel="s",
          title="agent: start to birth", targets={"target 1.5 s": 1.5})
    _bars(b, names, {"idle": [_num(v["rss_idle_mb"]) for v in variants.values()],
                     "10 tasks": [_num(v["rss_10_tasks_mb"]) for v in variants.values()]}, ylabel="MB",
          title="agent RSS", targets={"target 60 MB": 60})
    _save(fig, png)
    return lines, targets


def scale(data: dict[str, Any], png: Path) -> Section:
    s, args = data["summary"], data.get("args", {})
    brokers = data.get("brokers") or {data.get("broker", "mosquitto"): {"rounds": data["rounds"], "summary": s}}
    names = list(brokers)
    n_agents, n_tasks = args.get("agents", "?"), args.get("tasks", "?")

    def per(key: str) -> list[Any]:
        return [brokers[b]["summary"].get(key) for b in names]

    def fewest(key: str) -> list[Any]:
        return [min((r.get(key, 0) for r in brokers[b]["rounds"]), default=None) for b in names]

    rows = [[f"{n_agents} agents listed by a running controller, s", *per("listed_s")],
            [f"a cold controller lists all {n_agents}, s", *per("cold_listed_s")],
            ["… its `synced()` returned after, s", *per("cold_synced_s")],
            ["… agents fully listed then (fewest of the rounds)", *fewest("listed_at_synced")],
            [f"{n_tasks} tasks on {args.get('task_agents', '?')} agents all running after deploy, s",
             *per("deploy_running_s")]]
    if "agents_page_s" in s:
        rows += [[f"agents page, {n_agents} rows (Chromium), s", s["agents_page_s"], *[DASH] * (len(names) - 1)],
                 [f"running view, {n_tasks} task rows (Chromium), s", s["running_page_s"], *[DASH] * (len(names) - 1)]]
    lines = _table(["median of the rounds", *names], rows)
    first = names[0]
    targets: list[Target] = [
        (f"all {n_agents} agents listed ({first})", f"{s['listed_s']:.2f} s", "≤ 5 s", s["listed_s"] <= 5),
        (f"all {n_tasks} tasks running ({first})", f"{s['deploy_running_s']:.2f} s", "≤ 10 s",
         s["deploy_running_s"] <= 10)]
    labels = ["listed", "cold listed", "deploy → running"]
    keys = ["listed_s", "cold_listed_s", "deploy_running_s"]
    series = {b: [_num(brokers[b]["summary"].get(k)) for k in keys] for b in names}
    if "agents_page_s" in s:
        labels += ["agents page", "running view"]
        for b in names:
            series[b] += [_num(s["agents_page_s"]), _num(s["running_page_s"])] if b == first else [math.nan] * 2
    fig, (a,) = _figure(1, 9)
    _bars(a, labels, series, ylabel="seconds (log)", log=True,
          title=f"scale: {n_agents} agents, {n_tasks} tasks (targets: 5 s listed, 10 s running)",
          targets={"5 s": 5, "10 s": 10})
    _save(fig, png)
    return lines, targets


def _relay_like(data: dict[str, Any], png: Path, *, what: str) -> Section:
    s = data["summary"]
    labels = data.get("contenders", {})
    names = list(s)
    sizes = sorted({size for per in s.values() for size in per}, key=lambda x: (len(x), x))
    rows = []
    for n in names:
        for size in sizes:
            r = s[n].get(size)
            if r is None:
                continue
            rows.append([labels.get(n, n), size, r.get("msgs_per_s"), r.get("lost"),
                         f"{_fmt(r.get('p50_ms'), 3)} / {_fmt(r.get('p99_ms'), 3)}", r.get("cpu_pct"), r.get("rss_mb")])
    lines = _table([what, "size", "msgs/s", "lost", "1k/s p50 / p99 ms", "CPU %", "RSS MB"], rows)
    for note in data.get("notes", []):
        lines.append(f"\n*{note}*")
    targets: list[Target] = []
    for name, t in data.get("targets", {}).items():
        op = {">=": "≥", "<=": "≤"}.get(t.get("op", ""), t.get("op", ""))
        targets.append((name, _fmt(t.get("value")), f"{op} {_fmt(t.get('target'))}", t.get("met")))
    fig, axes = _figure(3, 13)
    short = [labels.get(n, n) for n in names]
    _bars(axes[0], short, {size: [_num(s[n].get(size, {}).get("msgs_per_s")) for n in names] for size in sizes},
          ylabel="msgs/s", title=f"{data.get('bench', what)}: throughput")
    first = sizes[0] if sizes else ""
    _bars(axes[1], short, {f"p50 {first}": [_num(s[n].get(first, {}).get("p50_ms")) for n in names],
                           f"p99 {first}": [_num(s[n].get(first, {}).get("p99_ms")) for n in names]},
          ylabel="ms", title="latency at 1k msgs/s")
    _bars(axes[2], short, {"RSS MB": [_num(s[n].get(first, {}).get("rss_mb")) for n in names],
                           "CPU %": [_num(s[n].get(first, {}).get("cpu_pct")) for n in names]},
          ylabel="MB / % of a core", title="resources (throughput run)")
    _save(fig, png)
    return lines, targets


def relay(data: dict[str, Any], png: Path) -> Section:
    return _relay_like(data, png, what="relay")


def chain(data: dict[str, Any], png: Path) -> Section:
    return _relay_like(data, png, what="layout")


def media(data: dict[str, Any], png: Path) -> Section:
    import statistics

    results = data["results"]

    def med(name: str, key: str) -> float:
        values = [r[key] for r in results[name] if r.get(key) is not None]
        return statistics.median(values) if values else math.nan

    names = list(results)
    rows = [[n, med(n, "fps"), med(n, "cpu"), f"{_fmt(med(n, 'p50_ms'), 1)} / {_fmt(med(n, 'p99_ms'), 1)}",
             max((r.get("dropped", 0) for r in results[n]), default=0)] for n in names]
    lines = _table(["path", "fps", "CPU s", "latency p50 / p99 ms", "dropped"], rows)
    args = data.get("args", {})
    lines.append(f"\n{args.get('frames', '?')} frames {args.get('width', '?')}x{args.get('height', '?')}.")
    fig, (a, b) = _figure(2)
    _bars(a, names, {"fps": [med(n, "fps") for n in names]}, ylabel="frames/s", title="media pipeline throughput")
    paced = [n for n in names if "real time" in n]  # latency means something only when paced
    _bars(b, paced, {"p50": [med(n, "p50_ms") for n in paced], "p99": [med(n, "p99_ms") for n in paced]},
          ylabel="ms", title="media latency at 30 fps (real time)", targets={"target p50 50 ms": 50})
    _save(fig, png)
    targets: list[Target] = []
    plain, ours = results.get("plain PyAV", []), results.get("edgetasks", [])
    if plain and ours:  # rounds are interleaved: compare each round with its own baseline
        ratio = statistics.median(o["fps"] / p["fps"] for o, p in zip(ours, plain, strict=False) if p.get("fps"))
        lines.append(f"\nedgetasks / plain PyAV frame rate, median of the rounds' ratios: {ratio:.2f}.")
        targets.append(("media pipeline fps, edgetasks / plain PyAV", f"{ratio:.2f}", "≥ 0.8", ratio >= 0.8))
    if paced:
        p50 = med(paced[0], "p50_ms")
        targets.append(("media latency p50 at 30 fps", f"{p50:.1f} ms", "≤ 50 ms", p50 <= 50))
    return lines, targets


def soak(data: dict[str, Any], png: Path) -> Section:
    growth, fds = data["rss_growth_mb"], data["fds_end"] - data["fds_start"]
    lines = _table(["minutes", "frames/s", "RSS start → end MB", "RSS growth MB", "open fds"],
                   [[data["minutes"], data["achieved_rate"], f"{data['rss_start_mb']:.1f} → {data['rss_end_mb']:.1f}",
                     growth, f"{data['fds_start']} → {data['fds_end']}"]])
    targets: list[Target] = [("soak: agent RSS growth after warm-up", f"{growth:+.1f} MB", "≤ 5 MB", growth <= 5),
                             ("soak: open fds growth", f"{fds:+d}", "≤ 0", fds <= 0)]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    ax.plot([x["t"] / 60 for x in data["samples"]], [x["rss_mb"] for x in data["samples"]])
    ax.set_ylim(0, max(x["rss_mb"] for x in data["samples"]) * 1.3)
    ax.set_xlabel("minutes")
    ax.set_ylabel("agent RSS (MB)")
    ax.set_title(f"soak: {data['achieved_rate']:.0f} frames/s, RSS {growth:+.1f} MB, fds {fds:+d}", fontsize=9)
    _save(fig, png)
    return lines, targets


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any], Path], Section]]] = {
    "bus": ("Bus: edge.bus against paho", bus),
    "cpu": ("CPU per relayed message", cpu),
    "codec": ("Codec: edge.frames against memcpy", codec),
    "footprint": ("Footprint of an agent", footprint),
    "scale": ("Scale: 200 agents, 100 tasks, the control panel", scale),
    "relay": ("Relay against the tools users would pick instead", relay),
    "chain": ("Chain: five tasks across two agents", chain),
    "media": ("Media pipeline against plain PyAV", media),
    "soak": ("Soak (short)", soak),
}


# -- the report ----------------------------------------------------------------------------------
def write_report(suite: dict[str, Any], *, out: Path, report: Path, images: Path) -> list[Path]:
    """Plot every benchmark that has a JSON in ``out`` and rewrite the marked block of ``report``."""
    written: list[Path] = []
    body: list[str] = []
    all_targets: list[Target] = []
    entries = suite.get("benches", {})
    for name, (title, make) in SECTIONS.items():
        entry = entries.get(name, {})
        path = out / f"{name}.json"
        body += ["", f"### {title}", ""]
        if not path.exists():
            body.append(f"Not run: {entry.get('note', 'no results in ' + str(out))}.")
            continue
        png = images / f"bench-{name}.png"
        try:
            lines, targets = make(json.loads(path.read_text()), png)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            body.append(f"Could not read `{path.name}`: {type(exc).__name__}: {exc}.")
            continue
        written.append(png)
        quick = " (**--quick**: not representative)" if entry.get("quick") else ""
        body.append(f"`{entry.get('command', 'python bench/' + name + '.py')}`, {entry.get('started', '?')}"
                    f"{quick}{'; ' + entry['note'] if entry.get('note') else ''}")
        body += ["", *lines, "", f"![{name}]({os.path.relpath(png, report.parent)})"]
        all_targets += targets
    head = [BEGIN, "## Summary (generated by `python bench/suite.py`)", "",
            "Written by the suite from the JSON of the last run of each benchmark (medians); edit the",
            "benchmarks, not this block. Sections below it describe each benchmark's method.", "",
            f"Machine: {suite.get('machine', '?')}.", ""]
    if all_targets:
        head += _table(["what", "measured", "target", "met"],
                       [[w, v, t, DASH if m is None else ("met" if m else "**missed**")] for w, v, t, m in all_targets])
    block = "\n".join([*head, *body, "", END])
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:  # before the first section, after the introduction
        at = text.find("\n## ")
        text = (text.rstrip("\n") + "\n\n" + block + "\n") if at < 0 else (
            text[: at + 1] + block + "\n" + text[at:])
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)
    written.append(report)
    return written
