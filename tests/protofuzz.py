"""Hypothesis strategies for protobuf messages, built from their descriptors, for fuzzing the
servers' decoders and handlers with well-typed but arbitrary requests (new fields are covered
without touching the tests)."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

# strings with shapes the handlers look at (numbers, addresses, names), plus anything at all
_TEXT = st.one_of(
    st.sampled_from(["", "+15550100", "127.0.0.1", "10.0.0.0/8", "sip:bob@127.0.0.1", "room", "*", "#", "12w3",
                     "ST_nope", "SDR_nope", "X-Custom", "sip.h.x", "a\r\nb", "\x00"]),
    st.text(max_size=24),
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[object]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=24)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(allow_nan=False, width=32)
    if t == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values] + [999])
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.sampled_from([0, 1, 5, 2**31]) | st.integers(0, 2**32 - 1)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1)
    return st.integers(-(2**31), 2**31 - 1)


def _repeated(field: FieldDescriptor) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 6 replaced ``label``
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _fill(draw: st.DrawFn, msg: Message, depth: int, skip: frozenset[str] = frozenset()) -> None:
    descriptor: Descriptor = msg.DESCRIPTOR
    for field in descriptor.fields:
        if field.name in skip or not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_f, value_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            if value_f.message_type is not None:
                continue
            entries = draw(st.dictionaries(_scalar(key_f), _scalar(value_f), max_size=3))
            getattr(msg, field.name).update(entries)
        elif field.message_type is not None:
            if depth >= 3 or field.message_type.full_name.startswith("google.protobuf."):
                continue
            if _repeated(field):
                for _ in range(draw(st.integers(0, 2))):
                    _fill(draw, getattr(msg, field.name).add(), depth + 1)
            else:
                _fill(draw, getattr(msg, field.name), depth + 1)
                getattr(msg, field.name).SetInParent()
        elif _repeated(field):
            getattr(msg, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(msg, field.name, draw(_scalar(field)))


@st.composite
def messages(draw: st.DrawFn, request_type: type[Message], skip: frozenset[str] = frozenset()) -> Message:
    """A ``request_type`` with random fields set; top-level fields named in ``skip`` stay unset."""
    msg = request_type()
    _fill(draw, msg, 0, skip)
    return msg
