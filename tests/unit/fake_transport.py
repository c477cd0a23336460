"""A stand-in for an asyncio transport on either side of a ConnectionPair, recording what the pair does to it."""

from __future__ import annotations


class RecordingTransport:
    """`written`: every chunk in order; `writes`: one entry per write or writelines call (one send() or writev() of a
    real transport); `reading`, `closed` and `aborted`: what pausing, closing and aborting left it at."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.writes: list[bytes] = []
        self.reading = True
        self.closed = False
        self.aborted = False

    def write(self, data) -> None:
        self.written.append(bytes(data))
        self.writes.append(bytes(data))

    def writelines(self, chunks) -> None:
        chunks = [bytes(chunk) for chunk in chunks]
        self.written.extend(chunks)
        self.writes.append(b"".join(chunks))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def get_extra_info(self, name: str):
        return None

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True
