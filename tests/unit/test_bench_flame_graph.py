"""The benchmark's flame graphs: py-spy's folded stacks drawn small enough to commit."""

from bench.flame_graph import read_folded, render_svg

FOLDED = """\
0x7f0 (libc.so.6);run (uvloop/loop.pyx);FrameStream.feed (/work/x/gateway_app/proxy/framing.py);send (libc.so.6) 600
0x7f0 (libc.so.6);run (uvloop/loop.pyx);FrameStream.feed (/work/x/gateway_app/proxy/framing.py) 396
0x7f0 (libc.so.6);run (uvloop/loop.pyx);rarely (/work/x/gateway_app/proxy/connection.py) 4
"""


def test_frames_are_named_by_function_and_file():
    stacks = read_folded(FOLDED)
    assert stacks[("0x7f0 (libc.so.6)", "run (loop.pyx)", "FrameStream.feed (framing.py)", "send (libc.so.6)")] == 600
    assert sum(stacks.values()) == 1000


def test_every_drawn_frame_says_its_share_and_frames_under_half_a_percent_are_left_out():
    svg = render_svg(read_folded(FOLDED), "a title")
    assert "<title>FrameStream.feed (framing.py): 99.6% (996 samples)</title>" in svg
    assert "<title>send (libc.so.6): 60.0% (600 samples)</title>" in svg
    assert "rarely" not in svg  # 0.4 % of the samples
    assert 'fill="#e0553f"' in svg  # the syscall wrapper is drawn as a kernel entry
    assert "a title" in svg
