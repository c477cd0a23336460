"""Member records: signing, verification and the range checks of every field (cluster/records.py, gateway_app/member.py).

The attacks of issue 13 at the codec's level: a record with no MAC, a MAC made with another secret
or for another cluster, a changed byte, a valid record under another key, `"port_start": 1e400`,
and every field out of its range or of the wrong JSON type. The e2e twin is
tests/e2e/test_cluster_member_records.py.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from gateway_app.cluster.records import MAC_HEADER, RecordCodec
from gateway_app.member import Member, RecordRejected, valid_host

SECRET = "unit-test-secret-0123456789"
GW1 = Member("gw1", "198.18.0.11", "rack-a", 6969, 10)
CODEC = RecordCodec("lab", SECRET)


def signed(fields: dict | bytes, codec: RecordCodec = CODEC) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A record value with a valid MAC over exactly these bytes, whatever they hold."""
    value = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    return codec.sign(value)


def rejected(key: bytes | None, value: bytes, headers) -> str:
    with pytest.raises(RecordRejected) as raised:
        CODEC.decode(key, value, headers)
    return raised.value.reason


def test_round_trip_and_the_record_is_plain_json_with_its_mac_in_a_header():
    value, headers = CODEC.encode(GW1)
    assert json.loads(value) == {"node_id": "gw1", "advertised_host": "198.18.0.11", "rack": "rack-a",
                                 "port_start": 6969, "port_count": 10}
    assert [name for name, _ in headers] == [MAC_HEADER] and len(headers[0][1]) == 64
    assert CODEC.decode(b"gw1", value, headers) == GW1
    no_rack = Member("x", "h", None, 1, 2)
    assert CODEC.decode(b"x", *CODEC.encode(no_rack)) == no_rack


def test_unsigned_and_wrongly_signed_records_are_refused():
    value, headers = CODEC.encode(GW1)
    assert rejected(b"gw1", value, []) == "unsigned"
    assert rejected(b"gw1", value, None) == "unsigned"
    assert rejected(b"gw1", value, [("other", b"x")]) == "unsigned"
    assert rejected(b"gw1", *RecordCodec("lab", "another-secret-0123456789").encode(GW1)) == "bad_mac"
    assert rejected(b"gw1", *RecordCodec("other-cluster", SECRET).encode(GW1)) == "bad_mac"  # key bound to the cluster id
    assert rejected(b"gw1", value.replace(b"198.18.0.11", b"198.18.0.25"), headers) == "bad_mac"
    assert rejected(b"gw1", value, [(MAC_HEADER, headers[0][1].upper())]) == "bad_mac"
    assert rejected(b"gw1", value, headers + headers) == "bad_mac"
    assert rejected(b"gw1", value, [(MAC_HEADER, None)]) == "bad_mac"


def test_a_valid_record_under_another_key_is_refused():
    value, headers = CODEC.encode(GW1)
    assert rejected(b"gw2", value, headers) == "key_mismatch"
    assert rejected(None, value, headers) == "key_mismatch"


def test_the_previous_secret_verifies_but_never_signs():
    rotating = RecordCodec("lab", "new-secret-0123456789abc", previous_secret=SECRET)
    assert rotating.decode(b"gw1", *CODEC.encode(GW1)) == GW1  # a node still on the old secret
    assert rejected(b"gw1", *rotating.encode(GW1)) == "bad_mac"  # signed with the new one only
    assert "secret" not in repr(rotating) and SECRET not in repr(rotating)


FIELDS = {"node_id": "gw1", "advertised_host": "198.18.0.11", "rack": "rack-a", "port_start": 6969, "port_count": 10}


@pytest.mark.parametrize(("change", "reason"), [
    ({"port_start": 1e400}, "malformed"),  # the reported attack: inf, which int() cannot take
    ({"port_start": 6969.0}, "malformed"),
    ({"port_start": "6969"}, "malformed"),
    ({"port_start": True}, "malformed"),
    ({"port_start": None}, "malformed"),
    ({"port_start": 0}, "out_of_range"),
    ({"port_start": -1}, "out_of_range"),
    ({"port_start": 65536}, "out_of_range"),
    ({"port_start": 10 ** 400}, "out_of_range"),
    ({"port_count": 1}, "out_of_range"),
    ({"port_count": 10001}, "out_of_range"),
    ({"port_start": 65530, "port_count": 10}, "out_of_range"),
    ({"node_id": ""}, "out_of_range"),
    ({"node_id": "gw 1"}, "out_of_range"),
    ({"node_id": "g" * 129}, "out_of_range"),
    ({"node_id": 1}, "malformed"),
    ({"rack": ""}, "out_of_range"),
    ({"rack": "rack a"}, "out_of_range"),
    ({"rack": "rack-\u00e4"}, "out_of_range"),
    ({"rack": ["rack-a"]}, "malformed"),
    ({"advertised_host": "198.18.0.250 evil"}, "out_of_range"),
    ({"advertised_host": "host\nname"}, "out_of_range"),
    ({"advertised_host": "-bad.example"}, "out_of_range"),
    ({"advertised_host": "10.0.1"}, "out_of_range"),
    ({"advertised_host": "a" * 64 + ".example"}, "out_of_range"),
    ({"advertised_host": ("a" * 60 + ".") * 5}, "out_of_range"),
    ({"advertised_host": ""}, "out_of_range"),
    ({"advertised_host": 198}, "malformed"),
])
def test_every_field_is_range_checked(change, reason):
    fields = {**FIELDS, **change}
    node_id = fields["node_id"] if isinstance(fields["node_id"], str) else "gw1"
    assert rejected(node_id.encode(), *signed(fields)) == reason


@pytest.mark.parametrize("value", [
    b"\xff\xfe garbage", b"", b"[]", b"null", b'"gw1"', b'{"node_id": "gw1"}', b"{" * 100000,
    b'{"node_id": "gw1", "advertised_host": "h", "rack": null, "port_start": NaN, "port_count": 10}',
    b'{"node_id": "gw1", "advertised_host": "h", "rack": null, "port_start": Infinity, "port_count": 10}',
    b'{"node_id": "gw1", "advertised_host": "h", "rack": null, "port_start": 1e400, "port_count": 10}',
    json.dumps({**FIELDS, "padding": "x" * 5000}).encode(),
])
def test_signed_garbage_is_refused_as_malformed(value):
    assert rejected(b"gw1", *signed(value)) == "malformed"


def test_unknown_fields_are_ignored():
    assert CODEC.decode(b"gw1", *signed({**FIELDS, "added_later": 1})) == GW1


def test_the_codec_refuses_to_sign_a_record_its_peers_would_refuse():
    with pytest.raises(RecordRejected):
        CODEC.encode(Member("gw1", "bad host", None, 6969, 10))


@pytest.mark.parametrize("host", ["gw1", "gw1.example.internal", "gw1.example.internal.", "198.18.0.11", "::1",
                                  "fd00::11", "under_score.example", "a" * 63 + ".example"])
def test_valid_hosts(host):
    assert valid_host(host)


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=40), value=st.binary(max_size=300),
       headers=st.lists(st.tuples(st.sampled_from([MAC_HEADER, "x"]), st.none() | st.binary(max_size=80)), max_size=3))
def test_arbitrary_records_either_decode_or_are_rejected_with_a_reason(key, value, headers):
    try:
        CODEC.decode(key, value, headers)
    except RecordRejected as error:
        assert error.reason in {"unsigned", "bad_mac", "malformed", "out_of_range", "key_mismatch"}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(change=st.dictionaries(st.sampled_from(sorted(FIELDS)), json_values, min_size=1, max_size=3))
def test_signed_records_with_any_field_values_decode_only_to_valid_members(change):
    """A holder of the secret writing nonsense: never an exception other than RecordRejected, and
    whatever is accepted is within every range."""
    fields = {**FIELDS, **change}
    try:
        member = CODEC.decode(str(fields["node_id"]).encode(), *signed(json.dumps(fields, allow_nan=True).encode()))
    except RecordRejected:
        return
    assert type(member.port_start) is int and type(member.port_count) is int
    assert 1 <= member.port_start and member.port_start + member.port_count - 1 <= 65535 and member.port_count >= 2
    assert valid_host(member.advertised_host) and member.node_id == fields["node_id"]
