"""Writes TensorBoard event files without TensorFlow: TFRecord framing (length, masked
CRC-32C of the length, the record, its masked CRC-32C) around ``Event`` protocol buffers
encoded by hand — only the fields TensorBoard reads for scalars and histograms.

Event: 1 wall_time (double), 2 step (int64), 3 file_version (string), 5 summary.
Summary: 1 repeated Value. Value: 1 tag (string), 2 simple_value (float), 5 histo.
HistogramProto: 1 min, 2 max, 3 num, 4 sum, 5 sum_squares (doubles), 6 bucket_limit and
7 bucket (packed doubles)."""
import os
import socket
import struct
import time

import numpy as np


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _bytes_field(field, payload):
    return _key(field, 2) + _varint(len(payload)) + payload


def _double_field(field, value):
    return _key(field, 1) + struct.pack("<d", value)


def _packed_doubles(field, values):
    return _bytes_field(field, np.asarray(values, dtype="<f8").tobytes())


def scalar_value(tag, value):
    return _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", float(value))


def histogram_value(tag, values, bins=30):
    """A histogram of ``values`` as TensorBoard's HistogramProto (``bins`` equal buckets
    between the minimum and maximum; bucket_limit holds each bucket's right edge)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        v = np.zeros(1)
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    histo = (_double_field(1, float(v.min())) + _double_field(2, float(v.max())) +
             _double_field(3, float(v.size)) + _double_field(4, float(v.sum())) +
             _double_field(5, float(np.square(v).sum())) +
             _packed_doubles(6, edges[1:]) + _packed_doubles(7, counts.astype(np.float64)))
    return _bytes_field(1, tag.encode()) + _bytes_field(5, histo)


def _event(step, summary_values=(), file_version=None):
    body = _double_field(1, time.time()) + _key(2, 0) + _varint(int(step))
    if file_version is not None:
        body += _bytes_field(3, file_version.encode())
    if summary_values:
        body += _bytes_field(5, b"".join(_bytes_field(1, v) for v in summary_values))
    return body


class EventFileWriter:
    """One event file in ``log_dir`` (made when missing), named as TensorFlow names them
    (``events.out.tfevents.<time>.<host>.<pid>.<n>.v2``), appended record by record."""

    _count = 0

    def __init__(self, log_dir):
        os.makedirs(log_dir, exist_ok=True)
        EventFileWriter._count += 1
        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
                f"{os.getpid()}.{EventFileWriter._count}.v2")
        self.path = os.path.join(log_dir, name)
        self._file = open(self.path, "wb")
        self._write(_event(0, file_version="brain.Event:2"))

    def _write(self, record):
        header = struct.pack("<Q", len(record))
        self._file.write(header + struct.pack("<I", _masked_crc(header)) + record +
                         struct.pack("<I", _masked_crc(record)))

    def add(self, step, values):
        """One event at ``step`` with summary values (scalar_value / histogram_value)."""
        self._write(_event(step, values))

    def flush(self):
        if not self._file.closed:
            self._file.flush()

    def close(self):
        if not self._file.closed:
            self._file.close()
