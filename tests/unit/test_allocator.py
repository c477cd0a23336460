"""keep_heap_warm(): large relay buffers come from the heap instead of a fresh mmap each."""

import subprocess
import sys

PROBE = """
import ctypes, sys
from gateway_app.proxy.allocator import keep_heap_warm

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
tuned = sys.argv[1] == "tuned" and keep_heap_warm()
before = mallinfo2().hblks
buffer = bytearray(4 * 1024 * 1024)  # a multi-MiB Fetch response being assembled
print(tuned, mallinfo2().hblks - before)
"""


def mmapped_blocks(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    tuned, blocks = out.stdout.split()
    return tuned, int(blocks)


def test_a_multi_mib_buffer_is_a_fresh_mapping_by_default():
    assert mmapped_blocks("default") == ("False", 1)


def test_after_tuning_it_comes_from_the_heap():
    assert mmapped_blocks("tuned") == ("True", 0)
