"""Build a Bed on the scripted board with a pad plant, and talk to it in management frames."""

import json

from pad_plant import PadPlant
from scripted_board import ScriptedBoard

import bed as bed_module
import wire_codec as wire
from frame_link import FrameReader, encode_into, encoded_size_max


def make(root="", **plant_options):
    board = ScriptedBoard(root)
    plant = PadPlant(board, **plant_options)
    bed = bed_module.Bed(board)
    bed.start()
    return board, plant, bed


def run(board, plant, bed, seconds, each=None):
    """Run the bed for `seconds` of virtual time with the plant following the outputs."""

    def every(now_us):
        plant.update(now_us)
        if each is not None:
            each(now_us)

    board.run(bed, seconds, every)


def request(board, seq, msg, values):
    """Queue one request frame on the console."""
    payload = bytearray(600)
    size = wire.pack(wire.MANAGEMENT_PAYLOADS[(wire.FRAME_KIND_REQUEST, msg)], payload, 0, values)
    body = bytearray(600)
    length = wire.pack(wire.FRAME, body, 0, [wire.FRAME_KIND_REQUEST, seq, msg, memoryview(payload)[:size]])
    line = bytearray(encoded_size_max(length))
    board.console.incoming.extend(line[: encode_into(body, length, line)])


def replies(board):
    """Every frame the firmware wrote since the last call, as (kind, seq, msg, payload values)."""
    reader = FrameReader()
    frames = []
    for byte in board.console.written:
        length = reader.push(byte)
        if length > 0:
            kind, seq, msg, payload = wire.unpack(wire.FRAME, reader.body, 0, length)
            layout = wire.ERROR_LAYOUT if kind == wire.FRAME_KIND_ERROR else wire.MANAGEMENT_PAYLOADS[(kind, msg)]
            frames.append((kind, seq, msg, wire.unpack(layout, payload)))
    board.console.written = bytearray()
    return frames


def report(**results):
    print(json.dumps(results))
