"""Read an offline wandb run file (`run-<id>.wandb`) back into its records, with wandb's own protobuf classes.

wandb 0.31 keeps no Python reader of these files (its writer and reader live in the Go `wandb-core`), so this
undoes only the framing, the LevelDB log format wandb writes (a 7-byte file header `:W&B`, 0xBEE1, version; 32 KiB
blocks of records with a 7-byte header: CRC-32C, length, type FULL/FIRST/MIDDLE/LAST), and hands each record to
`wandb.proto.wandb_internal_pb2.Record`.
"""

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FILE_HEADER = 7
RECORD_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    data = Path(path).read_bytes()
    magic, ident, _version = struct.unpack("<4sHB", data[:FILE_HEADER])
    assert (magic, ident) == (b":W&B", 0xBEE1), f"{path} is not a wandb run file"
    out, pending, at = [], b"", FILE_HEADER
    while at + RECORD_HEADER <= len(data):
        room = BLOCK - at % BLOCK
        if room < RECORD_HEADER:  # a block's tail too short for a header is padding
            at += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[at : at + RECORD_HEADER])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            at += room
            continue
        chunk = data[at + RECORD_HEADER : at + RECORD_HEADER + length]
        at += RECORD_HEADER + length
        if kind in (FULL, FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def run_summary(path: Path) -> dict:
    """{'group', 'tags', 'name', 'config': {key: value}, 'history': [{key: value}, ...]} of one run file."""
    found = {"config": {}, "history": []}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found.update(group=record.run.run_group, tags=list(record.run.tags), name=record.run.display_name)
            found["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            found["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            found["history"].append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
    return found
