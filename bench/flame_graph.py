"""Flame graphs of a running gateway: py-spy (PyPI) sampling its Python frames and, with --native, the C frames
under them down to the libc call that enters the kernel (`send`, `recv`, `writev`, `epoll_wait` …), so a
syscall's time shows on top of the Python or uvloop frame that made it. Kernel time itself is not broken down:
for that, `perf record -g -p PID` (linux-perf) beside it. py-spy pauses the process for each sample, so a profiled
run is never one of the benchmark's measured runs (`python -m bench --profile DIR` adds one extra run per workload
for it).

py-spy writes the samples as folded stacks (`frame;frame;… count`), kept beside the picture (WORKLOAD.folded, too
big to commit: git ignores it); the SVG is drawn here rather than by py-spy's own renderer so that it stays small
enough to commit: frames under 0.5 % of the samples are left out (their time still counts in the frame below them),
and every box says its share in its title. With --native py-spy samples waiting threads too, so the picture keeps
only the event loop's thread (the data plane; the membership consumer and the executor's workers are left out)
and leaves out its samples in epoll_wait, which cannot tell waiting from the call's own (small) cost.
`python -m bench.flame_graph DIR LABEL` draws every DIR/*.folded again.
"""

from __future__ import annotations

import html
import re
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

RATE_HZ = 250  # samples a second: a few thousand over one workload run, enough for a stable picture
MIN_SHARE = 0.005  # frames below this share of all samples are not drawn
WIDTH, ROW = 1200, 16
# "send (libc.so.6)", "FrameStream.feed (gateway_app/proxy/framing.py)": the name, then where it lives
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*)\)$")
LOOP_THREAD = "run_forever ("  # uvloop's and asyncio's loops both run under it
WAITING = ("epoll_pwait (", "epoll_wait (")


def py_spy() -> str:
    """The py-spy of this virtualenv (the `test` extra installs it), or the one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("--profile needs py-spy: pip install 'py-spy>=0.4,<1' (the project's test extra has it)")
    return found


def record_argv(pid: int, out: Path) -> list[str]:
    # --nolineno: one box per function, not per line; no --idle: a thread waiting in epoll_wait is not CPU the
    # relay spends. --native needs the process paused for each sample.
    return [py_spy(), "record", "--pid", str(pid), "--native", "--nolineno", "--rate", str(RATE_HZ),
            "--format", "raw", "--output", str(out)]


@contextmanager
def flame_graph(pid: int, svg: Path, title: str):
    """Samples process `pid` while the block runs; then writes the folded stacks (svg with .folded) and the SVG."""
    svg.parent.mkdir(parents=True, exist_ok=True)
    folded = svg.with_suffix(".folded")
    recorder = subprocess.Popen(record_argv(pid, folded), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        _, errors = recorder.communicate(timeout=120)
        if recorder.returncode != 0 or not folded.exists():
            raise RuntimeError(f"py-spy failed ({recorder.returncode}): {errors[-1000:]}")
    svg.write_text(render_svg(read_folded(folded.read_text()), title))


def read_folded(text: str) -> dict[tuple[str, ...], int]:
    """The event loop thread's busy samples: stacks by their short frame names, and how many."""
    stacks: dict[tuple[str, ...], int] = defaultdict(int)
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or LOOP_THREAD not in stack:
            continue
        frames = stack.split(";")
        if frames[-1].startswith(WAITING):
            continue
        stacks[tuple(_short(frame) for frame in frames)] += int(count)
    return stacks


def _short(frame: str) -> str:
    """A frame's name and the last part of where it lives: `feed (framing.py)`, `send (libc.so.6)`."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match['name']} ({match['where'].rsplit('/', 1)[-1]})"


def _tree(stacks: dict[tuple[str, ...], int]) -> dict:
    root: dict = {"count": 0, "children": {}}
    for stack, count in stacks.items():
        node = root
        node["count"] += count
        for frame in stack:
            node = node["children"].setdefault(frame, {"count": 0, "children": {}})
            node["count"] += count
    return root


def _colour(name: str) -> str:
    """Kernel entries (libc's named syscall wrappers) red, other native code orange, Python yellow-green."""
    if "(libc.so" in name and not name.startswith("0x"):
        return "#e0553f"
    if ".so" in name or ".c)" in name or ".pyx" in name:
        return "#e8a23c"
    return "#b8d65a"


def render_svg(stacks: dict[tuple[str, ...], int], title: str) -> str:
    root = _tree(stacks)
    total = root["count"] or 1
    boxes: list[str] = []
    depth_max = 0

    def draw(node: dict, name: str, x: float, depth: int) -> None:
        nonlocal depth_max
        width = node["count"] / total * WIDTH
        depth_max = max(depth_max, depth)
        share = node["count"] / total
        label = html.escape(name)
        boxes.append(f'<g><title>{label}: {share:.1%} ({node["count"]} samples)</title>'
                     f'<rect x="{x:.1f}" y="{{y{depth}}}" width="{width:.1f}" height="{ROW - 1}" '
                     f'fill="{_colour(name)}"/>'
                     + (f'<text x="{x + 2:.1f}" y="{{t{depth}}}">{html.escape(_fit(name, width))}</text>'
                        if width > 30 else "") + "</g>")
        child_x = x
        for child_name, child in sorted(node["children"].items()):
            if child["count"] / total >= MIN_SHARE:
                draw(child, child_name, child_x, depth + 1)
            child_x += child["count"] / total * WIDTH

    draw(root, f"the event loop, busy ({total} samples)", 0.0, 0)
    height = (depth_max + 1) * ROW + 30
    body = "\n".join(boxes)
    for depth in range(depth_max + 1):  # the root at the bottom, as flame graphs are drawn
        y = height - (depth + 1) * ROW
        body = body.replace(f"{{y{depth}}}", str(y)).replace(f"{{t{depth}}}", str(y + ROW - 4))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'font-family="DejaVu Sans, sans-serif" font-size="11">\n'
            f'<text x="4" y="16" font-size="13">{html.escape(title)}</text>\n{body}\n</svg>\n')


def _fit(name: str, width: float) -> str:
    chars = int(width / 6.5)
    return name if len(name) <= chars else name[:max(chars - 2, 1)] + ".."


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.flame_graph", description="Draw DIR/*.folded again.")
    parser.add_argument("dir", type=Path)
    parser.add_argument("label", help="the pictures' title starts with it (e.g. the gateway's commit)")
    args = parser.parse_args(argv)
    for folded in sorted(args.dir.glob("*.folded")):
        svg = folded.with_suffix(".svg")
        svg.write_text(render_svg(read_folded(folded.read_text()), f"{args.label}: {folded.stem}"))
        print(f"wrote {svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
