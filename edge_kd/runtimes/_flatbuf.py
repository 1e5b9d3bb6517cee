"""Minimal read-only access to flatbuffer tables by field index (for schemas without generated code).

ExecuTorch's XNNPACK payload is a flatbuffer (backends/xnnpack/serialization/schema.fbs) for which no
Python reader ships; these few helpers read the fields we need (node kinds, tensor shapes and sizes)
without depending on the flatc compiler.
"""
from __future__ import annotations

import struct
from typing import Iterator


class FbTable:
    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vtable = vtable
        self._vlen = struct.unpack_from("<H", buf, vtable)[0]

    @classmethod
    def root(cls, buf: bytes, start: int = 0) -> "FbTable":
        return cls(buf, start + struct.unpack_from("<I", buf, start)[0])

    def _offset(self, field: int) -> int:
        slot = 4 + 2 * field
        if slot >= self._vlen:
            return 0
        return struct.unpack_from("<H", self.buf, self._vtable + slot)[0]

    def scalar(self, field: int, fmt: str, default: int | float = 0) -> int | float:
        off = self._offset(field)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + off)[0] if off else default

    def _indirect(self, at: int) -> int:
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, field: int) -> "FbTable | None":
        off = self._offset(field)
        return FbTable(self.buf, self._indirect(self.pos + off)) if off else None

    def string(self, field: int) -> str:
        off = self._offset(field)
        if not off:
            return ""
        at = self._indirect(self.pos + off)
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4:at + 4 + n].decode("utf-8", errors="replace")

    def _vector(self, field: int) -> tuple[int, int]:
        off = self._offset(field)
        if not off:
            return 0, 0
        at = self._indirect(self.pos + off)
        return at + 4, struct.unpack_from("<I", self.buf, at)[0]

    def tables(self, field: int) -> Iterator["FbTable"]:
        start, n = self._vector(field)
        for i in range(n):
            yield FbTable(self.buf, self._indirect(start + 4 * i))

    def scalars(self, field: int, fmt: str) -> list[int]:
        start, n = self._vector(field)
        size = struct.calcsize("<" + fmt)
        return [struct.unpack_from("<" + fmt, self.buf, start + size * i)[0] for i in range(n)]
