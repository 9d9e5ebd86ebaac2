"""Serial framing: no REPL control byte ever on the line, identical decoding on host and
firmware, bounded memory, and resynchronisation on the next good frame after noise."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fuzzcount import count, examples
from soma_protocol import codec, framing, schema

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

BODY_MAX = 64  # small, so overflow is exercised


@given(st.binary(max_size=300))
def test_encoded_frames_carry_no_control_bytes(body):
    line = framing.encode(body)
    assert min(line) >= 0x20  # not 0x01-0x05 (REPL), not 0x03 (Ctrl-C), not CR/LF
    assert line[0] == line[-1] == schema.FRAME_FLAG and schema.FRAME_FLAG not in line[1:-1]
    if body:
        assert framing.FrameDecoder(len(body)).feed(line) == [body]


@given(st.binary(min_size=1, max_size=200), st.integers(3, 80))
def test_firmware_encoder_matches_host_through_any_chunk_size(firmware, body, chunk):
    assert firmware.call("encode_frame", hex=body.hex(), chunk=chunk) == framing.encode(body).hex()


LINE_BYTES = st.one_of(
    st.binary(min_size=1, max_size=BODY_MAX + 8).map(framing.encode),  # whole frames, some too long
    st.binary(max_size=40),  # noise
    st.sampled_from([b"\x7e", b"\x7d", b"\x7d\x7e", b"\x03", b"\x7d\x5e", b"\x7d\x41"]),  # edge bytes
)


@st.composite
def line_traffic(draw):
    stream = b"".join(draw(st.lists(LINE_BYTES, max_size=12)))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


@settings(max_examples=examples(3000))
@given(line_traffic())
def test_stream_decoders_agree_on_any_line_bytes(firmware, chunks):
    host = framing.FrameDecoder(BODY_MAX)
    host_bodies = [body for chunk in chunks for body in host.feed(chunk)]
    fw_bodies = firmware.call("frames", chunks=[c.hex() for c in chunks], body_max=BODY_MAX)
    assert [b.hex() for b in host_bodies] == fw_bodies
    count("stream", max(1, len(chunks)))  # one case per feed() call


def test_unfinished_frame_keeps_memory_bounded():
    decoder = framing.FrameDecoder(BODY_MAX)
    for _ in range(1000):
        decoder.feed(b"A" * 1000)
    assert len(decoder._pending) <= 2 * BODY_MAX
    good = framing.encode(b"hello")
    assert decoder.feed(good) == [b"hello"]  # the oversized frame ends at good's first FLAG


def _ping(seq):
    return codec.encode("frame", [1, seq, 1, codec.encode("ping_payload", [seq])])


class LineWithNoise(RuleBasedStateMachine):
    """Good frames, noise and cut-off frames in any order and any chunking: a good frame's
    opening FLAG ends whatever came before, so every good frame comes out intact and in
    order, and nothing else passes the frame check."""

    def __init__(self):
        super().__init__()
        self.decoder = framing.FrameDecoder()
        self.sent = []
        self.received = []
        self.seq = 0
        self.pending = b""

    def _deliver(self, data, cut):
        """Append data to the line; hand the decoder the first `cut` bytes not yet delivered."""
        data = self.pending + data
        cut = min(cut, len(data))
        self.pending = data[cut:]
        for body in self.decoder.feed(data[:cut]):
            try:
                self.received.append(codec.decode("frame", body))
            except codec.ProtocolError:
                pass  # noise that happened to sit between flags

    @rule(cut=st.integers(0, 1 << 12))
    def good_frame(self, cut):
        self.seq += 1
        self.sent.append(self.seq)
        self._deliver(framing.encode(_ping(self.seq)), cut)

    @rule(noise=st.binary(min_size=1, max_size=50), cut=st.integers(0, 1 << 12))
    def noise(self, noise, cut):
        self._deliver(noise, cut)

    @rule(cut_at=st.integers(1, 20), cut=st.integers(0, 1 << 12))
    def cut_off_frame(self, cut_at, cut):
        self._deliver(framing.encode(_ping(0xFFFF))[:cut_at], cut)

    @precondition(lambda self: self.pending)
    @rule()
    def flush(self):
        self._deliver(b"", 1 << 20)

    @invariant()
    def good_frames_only_and_in_order(self):
        seqs = [values[1] for values in self.received]
        assert seqs == self.sent[: len(seqs)]

    def teardown(self):
        self._deliver(b"", 1 << 20)
        assert [values[1] for values in self.received] == self.sent


LineWithNoise.TestCase.settings = settings(max_examples=examples(200), stateful_step_count=30)
TestLineWithNoise = LineWithNoise.TestCase
