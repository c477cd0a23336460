"""The benchmark's flame graphs: py-spy's folded stacks drawn small enough to commit."""

from bench.flame_graph import read_folded, render_svg

FOLDED = """\
0x7f0 (libc.so.6);run_forever (loop.c);FrameStream.feed (/work/x/gateway_app/proxy/framing.py);send (libc.so.6) 600
0x7f0 (libc.so.6);run_forever (loop.c);FrameStream.feed (/work/x/gateway_app/proxy/framing.py) 396
0x7f0 (libc.so.6);run_forever (loop.c);rarely (/work/x/gateway_app/proxy/connection.py) 4
0x7f0 (libc.so.6);run_forever (loop.c);uv_run (core.c);uv__io_poll (linux.c);epoll_pwait (libc.so.6) 5000
0x7f0 (libc.so.6);thread_run (libpython3.11.so.1.0);_worker (concurrent/futures/thread.py);0x7f1 (libc.so.6) 3000
"""


def test_frames_are_named_by_function_and_file_and_only_the_busy_event_loop_counts():
    stacks = read_folded(FOLDED)
    assert stacks[("0x7f0 (libc.so.6)", "run_forever (loop.c)", "FrameStream.feed (framing.py)", "send (libc.so.6)")] == 600
    assert sum(stacks.values()) == 1000  # the wait in epoll and the executor's idle worker are left out


def test_every_drawn_frame_says_its_share_and_frames_under_half_a_percent_are_left_out():
    svg = render_svg(read_folded(FOLDED), "a title")
    assert "<title>FrameStream.feed (framing.py): 99.6% (996 samples)</title>" in svg
    assert "<title>send (libc.so.6): 60.0% (600 samples)</title>" in svg
    assert "rarely" not in svg  # 0.4 % of the samples
    assert 'fill="#e0553f"' in svg  # the syscall wrapper is drawn as a kernel entry
    assert "a title" in svg
