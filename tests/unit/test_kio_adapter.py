"""kio's private modules, as the schema walks use them (gateway_app/protocol/kio_adapter.py): every name and
signature the project takes from them, and what they answer for the fields the rewriters touch. A kio upgrade
that changes any of it fails here, by name, instead of in a rewriter on live traffic."""

from __future__ import annotations

import datetime
import inspect
from dataclasses import fields

from kio.index import load_response_schema
from kio.schema.index import api_key_map

from gateway_app.protocol import api_keys, kio_adapter
from gateway_app.protocol.kio_adapter import (
    EntityTupleField, PrimitiveField, classify_field, decode_response, encode, get_field_reader, get_field_tag,
    get_field_writer, get_schema_field_type, is_optional,
)
from gateway_app.protocol.schema_walk import read_tags, skip_tagged_fields, write_tags

SIGNATURES = {  # name -> parameter names, as kio 0.6.5 has them
    "classify_field": ["field"],
    "get_field_tag": ["field"],
    "get_schema_field_type": ["field"],
    "is_optional": ["field"],
    "get_field_reader": ["entity_type", "field", "is_request_header", "is_tagged_field"],
    "get_field_writer": ["field", "flexible", "is_request_header", "is_tag"],
}


def test_every_private_kio_function_taken_keeps_its_signature() -> None:
    for name, parameters in SIGNATURES.items():
        assert list(inspect.signature(getattr(kio_adapter, name)).parameters) == parameters, name
    for name in kio_adapter.__all__:
        assert hasattr(kio_adapter, name), name


def _field(schema: type, name: str):
    (field,) = [f for f in fields(schema) if f.name == name]
    return field


def test_introspection_answers_what_the_schema_walks_rely_on() -> None:
    metadata = load_response_schema(api_keys.METADATA, 12)
    brokers = classify_field(_field(metadata, "brokers"))
    assert isinstance(brokers, EntityTupleField)
    assert [f.name for f in fields(brokers.type_)][:4] == ["node_id", "host", "port", "rack"]
    assert isinstance(classify_field(_field(metadata, "cluster_id")), PrimitiveField)
    assert get_schema_field_type(_field(metadata, "cluster_id")) == "string"
    assert is_optional(_field(metadata, "cluster_id")) and not is_optional(_field(metadata, "controller_id"))
    produce = load_response_schema(api_keys.PRODUCE, 12)
    assert get_field_tag(_field(produce, "node_endpoints")) == 0 and get_field_tag(_field(produce, "responses")) is None


def test_a_tagged_field_written_and_read_back_through_the_tag_section() -> None:
    produce = load_response_schema(api_keys.PRODUCE, 12)
    field = _field(produce, "node_endpoints")
    kind = classify_field(field)
    assert isinstance(kind, EntityTupleField)
    entity = kind.type_
    endpoint = entity(node_id=1, host="198.18.0.9", port=6970, rack="rack-a")
    value = kio_adapter.encoded(get_field_writer(field, flexible=True, is_request_header=False, is_tag=True),
                                (endpoint,))
    section = memoryview(write_tags([(0, value)]))
    tags, end = read_tags(section, 0)
    assert end == len(section) == skip_tagged_fields(section, 0) and [tag for tag, _ in tags] == [0]
    decoded, _ = get_field_reader(produce, field, False, True)(tags[0][1], 0)
    assert decoded == (endpoint,)


def test_encode_and_decode_response_round_trip() -> None:
    metadata = load_response_schema(api_keys.METADATA, 12)
    message = metadata(throttle_time=datetime.timedelta(0), brokers=(), cluster_id="lab", controller_id=1, topics=())
    assert decode_response(api_keys.METADATA, 12, memoryview(encode(message))) == message


def test_the_api_keys_named_once_are_kios() -> None:
    named = {value: name.lower() for name, value in vars(api_keys).items() if name.isupper()}
    assert named == {key: api_key_map[key] for key in named}
