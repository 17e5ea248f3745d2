"""Read the records of an offline wandb run file (``run-<id>.wandb``) without uploading it.

The file is a LevelDB-style log (a 7-byte wandb header, then 32 KiB blocks of records, each with
a 7-byte header: crc32c, length, type) of ``wandb_internal_pb2.Record`` protobufs. wandb itself
only reads it back when syncing, so the tests use this small reader.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

__all__ = ["history_rows", "summary_values"]

FILE_HEADER = 7
BLOCK = 32 * 1024
RECORD_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(path: Path) -> list[bytes]:
    data = path.read_bytes()
    payloads, pending, offset = [], b"", FILE_HEADER
    while offset + RECORD_HEADER <= len(data):
        left_in_block = BLOCK - offset % BLOCK
        if left_in_block < RECORD_HEADER:
            offset += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset:offset + RECORD_HEADER])
        body = data[offset + RECORD_HEADER: offset + RECORD_HEADER + length]
        offset += RECORD_HEADER + length
        if kind == FULL:
            payloads.append(body)
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            payloads.append(pending + body)
        elif length == 0:
            break
    return payloads


def _records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    records = []
    for payload in _payloads(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def history_rows(path: Path) -> list[dict[str, Any]]:
    """Every ``run.log`` row, in order."""
    return [{_key(item): json.loads(item.value_json) for item in record.history.item}
            for record in _records(path) if record.WhichOneof("record_type") == "history"]


def summary_values(path: Path) -> dict[str, Any]:
    """The run summary as last updated."""
    summary: dict[str, Any] = {}
    for record in _records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[_key(item)] = json.loads(item.value_json)
    return summary
