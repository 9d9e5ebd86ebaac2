"""soma tour: the wire protocol end to end, host (construct) against firmware (MicroPython)."""

import random
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from soma.crosscheck.firmware_codec import FirmwareCodec

EPILOG = """\b
Examples:
  soma tour                 the protocol tour with a 2000-case fuzz burst
  soma tour --fuzz 20000    a longer fuzz burst
"""

DEMO_KEY = bytes(range(0xA0, 0xC0))  # a demonstration key: real sanctuary keys are provisioned, never printed
SANCTUARY_ID = 21


@click.command(epilog=EPILOG)
@click.option("--fuzz", "fuzz_cases", default=2000, show_default=True, help="Cases in the differential fuzz burst.")
@click.option("--seed", default=1, show_default=True, help="Seed of the fuzz burst.")
def command(fuzz_cases: int, seed: int) -> None:
    """Build beacons and management frames on one side, decode them on the other, then fuzz both."""
    from rich.console import Console

    from soma.crosscheck import fuzzing
    from soma.crosscheck.firmware_codec import FirmwareCodec
    from soma_protocol import auth, codec, framing, ir

    console = Console()
    console.rule("[bold]Soma wire protocol")
    console.print(
        f"protocol hash [bold]0x{ir.protocol_hash():08x}[/] (the firmware reports it; the host refuses others)"
    )
    failures = 0
    with FirmwareCodec() as firmware:
        beacon_values = _beacon_values(seq=41)
        beacon = auth.sign_beacon(DEMO_KEY, beacon_values)
        failures += _show_beacon(console, codec, firmware, beacon)
        failures += _show_verdicts(console, auth, firmware, beacon_values)
        failures += _show_serial_line(console, codec, framing, firmware)
        console.rule("Differential fuzz burst")
        beacons = [auth.sign_beacon(DEMO_KEY, _beacon_values(seq)) for seq in range(1, 17)]
        try:
            figures = fuzzing.burst(firmware, random.Random(seed), fuzz_cases, beacons)
        except fuzzing.FuzzDisagreement as exc:
            console.print(f"[red]DISAGREEMENT[/]: {exc}")
            sys.exit(1)
        console.print(
            f"{figures['cases']} mutated beacons and frames (seed {seed}): {figures['accepted']} accepted and "
            f"{figures['rejected']} rejected alike by construct and by the firmware under MicroPython, "
            f"{figures['cases'] / figures['seconds']:.0f} cases/s, 0 disagreements"
        )
    if failures:
        console.print(f"[red]{failures} check(s) failed[/]")
        sys.exit(1)
    console.print("[green]host and firmware agree on every byte[/]")


def _beacon_values(seq: int) -> list[Any]:
    from soma_protocol import codec

    fields = {
        "sanctuary_id": SANCTUARY_ID,
        "bed_id": 3,
        "boot_epoch": 2,
        "seq": seq,
        "flags": 0b00101,
        "root_id": 1,
        "root_seq": 977,
        "global_time_us": 86_400_000_000 + seq * 1_000_000,
        "program_id": 12,
        "program_version": 4,
        "program_start_us": 79_200_000_000,
        "occupancy": 2,
        "wake_readiness": 2,
        "power_demand_w": 96,
        "power_grant_w": 80,
        "drift_ppb": -13_500,
        "hops": 1,
        "tag": b"",
    }
    return [fields[leaf.path] for leaf in codec.MESSAGES["beacon"].fields]


def _show_beacon(console: "Console", codec: ModuleType, firmware: "FirmwareCodec", beacon: bytes) -> int:
    from rich.table import Table

    console.rule("Beacon: signed by the host, decoded by the firmware under MicroPython")
    console.print(f"{len(beacon)} bytes on air: [cyan]{beacon.hex()}[/]")
    host = codec.render("beacon", codec.decode("beacon", beacon))
    fw = codec.render("beacon", firmware.unpack("beacon", beacon))
    table = Table("field", "host (construct)", "firmware (MicroPython)", "")
    for name in host:
        table.add_row(name, str(host[name]), str(fw[name]), "[green]=[/]" if host[name] == fw[name] else "[red]≠[/]")
    console.print(table)
    return int(host != fw)


def _show_verdicts(console: "Console", auth: ModuleType, firmware: "FirmwareCodec", values: list[Any]) -> int:
    from rich.table import Table

    console.rule("Beacon: signed by the firmware, checked by both sides")
    from soma.crosscheck.firmware_codec import to_json

    signed = bytes.fromhex(firmware.call("sign", key=DEMO_KEY.hex(), values=[to_json(v) for v in values]))
    damaged = bytearray(signed)
    damaged[10] ^= 0x04
    forged = auth.sign_beacon(bytes(32), _beacon_values(seq=values[3] + 1))
    foreign_values = _beacon_values(seq=values[3] + 2)
    foreign_values[0] = SANCTUARY_ID + 1
    story = [
        ("fresh beacon", signed, "accepted"),
        ("the same beacon again (replay)", signed, "replayed"),
        ("one bit flipped on air", bytes(damaged), "malformed"),
        ("signed with a guessed key", forged, "unauthenticated"),
        ("from another sanctuary", auth.sign_beacon(DEMO_KEY, foreign_values), "foreign"),
    ]
    beacons = [data for _, data, _ in story]
    host = auth.BeaconVerifier(DEMO_KEY, SANCTUARY_ID)
    host_verdicts = [host.check(data)[0] for data in beacons]
    fw_verdicts = [
        auth.VERDICTS[v]
        for v in firmware.call(
            "verify", key=DEMO_KEY.hex(), sanctuary_id=SANCTUARY_ID, beacons=[b.hex() for b in beacons]
        )
    ]
    table = Table("received", "host", "firmware", "expected")
    failures = 0
    for (label, _, expected), h, f in zip(story, host_verdicts, fw_verdicts, strict=True):
        ok = h == f == expected
        failures += not ok
        table.add_row(label, h, f, expected if ok else f"[red]{expected}[/]")
    console.print(table)
    return failures


def _show_serial_line(console: "Console", codec: ModuleType, framing: ModuleType, firmware: "FirmwareCodec") -> int:
    console.rule("Management frame on the serial line, among noise")
    payload = codec.encode("ping_payload", [0x03040102])  # REPL control bytes inside the payload
    body = codec.encode("frame", [1, 7, 1, payload])
    line = framing.encode(body)
    controls_in_body = sum(b < 0x20 for b in body)
    controls_on_line = sum(b < 0x20 for b in line)
    console.print(f"frame body {body.hex()} has {controls_in_body} bytes below 0x20 (Ctrl-A..Ctrl-E among them)")
    console.print(f"on the line {line.hex()} has {controls_on_line}: the REPL can never be triggered by a frame")
    noisy = [b"Traceback (most recent", b" call last)\r\n\x7e\x7dgarbage", line[:9], line[9:] + b"\x03\x00junk", line]
    decoder = framing.FrameDecoder()
    host_bodies = [b for chunk in noisy for b in decoder.feed(chunk)]
    fw_bodies = [bytes.fromhex(h) for h in firmware.call("frames", chunks=[c.hex() for c in noisy])]
    good = [b for b in host_bodies if b == body]
    console.print(
        f"noise + frame split in two + noise + frame: host recovered {len(good)} good frame(s), "
        f"firmware {sum(b == body for b in fw_bodies)}; both dropped the rest"
    )
    decoded = codec.render("frame", codec.decode("frame", body))
    console.print(f"decoded: {decoded}")
    return int(len(good) != 2 or host_bodies != fw_bodies)
