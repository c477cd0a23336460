"""Names reserved for the gateway, and finding them in client requests exactly as Kafka reads them.

The gateway cluster keeps its state in the backing Kafka cluster (a compacted members topic and a
consumer group, both named `_gateway_<cluster id>...`, see cluster/membership.py). Through the
gateway those are not the client's to touch: ReservedNames holds them — the group, the topic, every
name that starts with the group's name and `_` (the reader group), and the ids of the reserved topics
(known from the node's start, see cluster/membership.py, and learnt again from responses). Only this
cluster's own names: a gateway cluster may use another gateway cluster as its backing Kafka.

Finding them. Per request version, a checker is compiled from Kafka's own message definitions
(message_specs.py) that reads the request the way Kafka's generated Java readers do, and looks at the
fields Kafka types as topic names or group ids, the `ResourceName` of config/ACL resources, topic ids,
and topic regexes (ConsumerGroupHeartbeat, StreamsGroupHeartbeat: refused when they can reach a
reserved topic). As Kafka does, it
- reads every known tagged field by its type (not by its declared size, which a client chooses), and
  refuses a tagged field whose declared size differs from what its type took: that is the one place
  where two readers could part ways;
- reads varints of at most five bytes into a Java int (wire.py), and refuses a null where the field is
  not nullable, a string longer than 32767 bytes, and an array count larger than the bytes left.
Everything else is skipped by its length, so a Produce request's record batches are jumped over,
never read; and the walk stops after the last field that can hold a name, so a one-topic Produce costs
a read of one string whatever its size. No allocation is sized by a count the client wrote. APIs whose
requests cannot name a topic or group have no checker at all.

What a refused request is answered with is refusal.py's business.
"""

from __future__ import annotations

import re
# The regex parser Python's `re` uses (the `sre_parse`/`sre_constants` aliases warn since 3.11 and are going):
# there is no public API that returns a pattern's parse tree.
from re import _constants as sre_constants, _parser as sre_parse
from dataclasses import dataclass, field
from typing import Any, Callable

from .message_specs import REQUEST, FieldSpec, MessageSpec, UnknownMessage, lookup
from .wire import I8, I16, I32, WireError, compact_length, uvarint

RESERVED_MARK = b"_gateway_"  # every reserved name contains it: a cheap first search of a response
MAX_TOPIC_IDS = 1024
MAX_STRING = 0x7FFF  # Kafka refuses longer strings
# The characters of a legal topic name (Kafka's Topic.validate), in the order Java compares strings.
TOPIC_CHARS = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_NAME_TOKEN = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(slots=True)
class ReservedNames:
    """One gateway cluster's own topic and group names, and the ids of its topics."""

    exact: frozenset[bytes]
    prefixes: tuple[bytes, ...]
    topic_ids: set[bytes] = field(default_factory=set)
    topics: tuple[str, ...] = ()  # the reserved topics that exist: what a topic regex must not reach
    # Until the node has described its reserved topics (cluster/membership.py), every topic id is refused:
    # an id the node cannot yet tell apart might be a reserved topic's.
    ids_known: bool = True

    @classmethod
    def of(cls, group: str, topic: str) -> "ReservedNames":
        return cls(frozenset({group.encode(), topic.encode()}), (f"{group}_".encode(),), topics=(topic,))

    def matches(self, name: bytes) -> bool:
        return name in self.exact or name.startswith(self.prefixes)

    def matches_text(self, name: str | None) -> bool:
        return name is not None and self.matches(name.encode())

    def learn_topic_id(self, topic_id: bytes) -> None:
        if len(self.topic_ids) < MAX_TOPIC_IDS:
            self.topic_ids.add(topic_id)

    def know_topic_ids(self, topic_ids: list[bytes]) -> None:
        """The ids of all reserved topics, as the backing Kafka describes them: from now on other ids pass."""
        for topic_id in topic_ids:
            self.learn_topic_id(topic_id)
        self.ids_known = True

    def first_name_after(self, name: str) -> str:
        """The smallest legal topic name that sorts after `name` and every reserved name sharing its prefix.
        A paging cursor that would name a reserved topic names this instead: a broker lists the topics
        from the cursor's name on (a name it need not know), so paging goes on past the reserved range
        and no ordinary topic is skipped."""
        candidate = name
        for prefix in self.prefixes:
            text = prefix.decode()
            if name.startswith(text):
                candidate = _successor_of_prefix(text)
                break
        else:
            candidate = name + TOPIC_CHARS[0]  # an exact name: the next name is one character longer
        while self.matches_text(candidate):
            candidate = candidate + TOPIC_CHARS[0]
        return candidate

    def scrub(self, text: str | None) -> tuple[str | None, int]:
        """`text` (an error message) with every reserved name in it replaced, and how many were."""
        if text is None or RESERVED_MARK.decode() not in text:
            return text, 0
        count = 0

        def replace(token: re.Match[str]) -> str:
            nonlocal count
            word = token.group(0)
            if self.matches_text(word) or self.matches_text(word.rstrip(".")):
                count += 1
                return "(a topic reserved by the gateway)" + word[len(word.rstrip(".")):]
            return word
        return _NAME_TOKEN.sub(replace, text), count

    def regex_reaches(self, pattern: bytes) -> bool:
        """Could a broker matching topics by this regex (RE2/J, a full match) reach a reserved topic?
        True when it matches one, and whenever we cannot be sure it does not (see regex_is_plain)."""
        try:
            text = pattern.decode("utf-8")
        except UnicodeDecodeError:
            return True
        if not regex_is_plain(text):
            return True
        compiled = re.compile(text)
        return any(compiled.fullmatch(topic) for topic in self.topics)


def _successor_of_prefix(prefix: str) -> str:
    """The smallest legal topic name after every name that starts with `prefix`."""
    for cut in range(len(prefix) - 1, -1, -1):
        position = TOPIC_CHARS.find(prefix[cut])
        if 0 <= position < len(TOPIC_CHARS) - 1:
            return prefix[:cut] + TOPIC_CHARS[position + 1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)  # all `z`: no legal name, but a broker compares, never validates


def regex_is_plain(pattern: str) -> bool:
    """A regex Python's `re` reads as RE2 does, and cannot backtrack for long on a short name: no
    quantifier inside a quantified group (the shape of catastrophic backtracking), no POSIX classes,
    \\p, \\Q or other RE2-only syntax (Python fails to compile those, or reads them differently)."""
    if "[:" in pattern or "\\Q" in pattern or "\\p" in pattern or "\\P" in pattern:
        return False
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return not _nested_repeat(parsed, inside=False)


_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None)}


def _nested_repeat(parsed: Any, inside: bool) -> bool:
    for op, value in parsed:
        if op in _REPEATS:
            if inside:
                return True
            if _nested_repeat(value[2], inside=True):
                return True
        elif op is sre_constants.SUBPATTERN:
            if _nested_repeat(value[-1], inside):
                return True
        elif op is sre_constants.BRANCH:
            if any(_nested_repeat(branch, inside) for branch in value[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            if _nested_repeat(value[1], inside):
                return True
        elif op is sre_constants.GROUPREF_EXISTS:
            return True
    return False


TOPIC, GROUP, RESOURCE, REGEX = "topic", "group", "resource", "regex"
GROUP_RESOURCE_TYPE = 32  # ConfigResource.Type.GROUP (2 = TOPIC)


class Reserved(Exception):
    """A request names a reserved topic or group; `kind` is TOPIC, GROUP or RESOURCE."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class TagSizeMismatch(WireError):
    """A known tagged field whose declared size is not what its type took."""


# (buffer, offset of the body, the reserved names) -> None; raises Reserved on a hit, WireError on bytes
# Kafka refuses, and IndexError/struct.error if the bytes end before the last name.
Check = Callable[[memoryview, int, ReservedNames], Any]


def checked_kind(spec: FieldSpec) -> str | None:
    """Which kind of reserved name this field can hold, or None if it cannot hold one."""
    if spec.type == "string":
        if spec.entity == "topicName":
            return TOPIC
        if spec.entity == "groupId":
            return GROUP
        if spec.name == "ResourceName":
            return RESOURCE
        if spec.name.endswith("TopicRegex"):
            return REGEX
    if spec.type == "uuid" and spec.name == "TopicId":
        return TOPIC
    return None


def holds_names(spec: FieldSpec) -> bool:
    if checked_kind(spec) is not None:
        return True
    return spec.type == "struct" and any(holds_names(child) for child in spec.fields)


_NAMESPACE: dict[str, object] = {
    "Reserved": Reserved, "WireError": WireError, "TagSizeMismatch": TagSizeMismatch, "clen": compact_length, "uv": uvarint,
    "i8": I8.unpack_from, "i16": I16.unpack_from, "i32": I32.unpack_from, "MAX_STRING": MAX_STRING,
}


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [("    " * depth) + line for line in lines]


def _length_lines(flexible: bool, wide: bool) -> list[str]:
    """Lines that read a length (string: int16, bytes/array: int32; compact when flexible) into n."""
    if flexible:  # a one-byte length inline (nearly always), longer ones through Kafka's varint rules
        return ["n = b[o]", "if n < 128:", "    o += 1", "    n -= 1", "else:", "    n, s = clen(b, o)", "    o += s"]
    return ["(n,) = i32(b, o)", "o += 4"] if wide else ["(n,) = i16(b, o)", "o += 2"]


def _null_lines(spec: FieldSpec, what: str) -> list[str]:
    if spec.nullable:
        return []
    return ["if n < 0:", f"    raise WireError('non-nullable {what} {spec.name} was serialized as null')"]


def _string_lines(spec: FieldSpec, kind: str | None) -> list[str]:
    lines = _length_lines(spec.flexible, wide=False) + _null_lines(spec, "field")
    lines += ["if n > MAX_STRING:", f"    raise WireError('string field {spec.name} had invalid length ' + str(n))",
              "if o + n > len(b):", "    raise IndexError('string runs past the bytes at hand')"]
    if kind == REGEX:
        lines += ["if n >= 0 and names.regex_reaches(bytes(b[o:o + n])):", "    raise Reserved('topic')"]
    elif kind is not None:
        lines += ["if n > 0 and names.matches(bytes(b[o:o + n])):", f"    raise Reserved({kind!r})"]
    return lines + ["if n > 0:", "    o += n"]


def _bytes_lines(spec: FieldSpec) -> list[str]:
    return _length_lines(spec.flexible, wide=True) + _null_lines(spec, "field") + ["if n > 0:", "    o += n"]


_TOPIC_ID_LINES = [
    "if o + 16 > len(b):", "    raise IndexError('topic id runs past the bytes at hand')",
    "if not names.ids_known or bytes(b[o:o + 16]) in names.topic_ids:", "    raise Reserved('topic')",
    "o += 16",
]


def _value_lines(spec: FieldSpec, check: bool) -> list[str]:
    """Lines that read one value of a field's type (an element, for arrays) at o, checking names if asked."""
    kind = checked_kind(spec) if check else None
    if spec.type == "struct":
        return [f"o = {_register(spec, last=False, check=check)}(b, o, names)"]
    if spec.type == "uuid" and kind is not None:
        return list(_TOPIC_ID_LINES)
    width = spec.width
    if width is not None:
        return [f"o += {width}"]
    if spec.type == "string":
        return _string_lines(spec, kind)
    if spec.type in ("bytes", "records"):
        return _bytes_lines(spec)
    raise TypeError(f"unknown Kafka type {spec.type!r} of {spec.name}")


def _array_count_lines(spec: FieldSpec) -> list[str]:
    """An array's count into n, refused as Kafka refuses it: null where not nullable, more items than bytes left."""
    return _length_lines(spec.flexible, wide=True) + _null_lines(spec, "field") + [
        "if n > len(b) - o:", "    raise IndexError('an array of ' + str(n) + ' items cannot fit')"]


def _field_lines(spec: FieldSpec, check: bool) -> list[str]:
    """Lines that read a whole field: an array's count and elements, a nullable struct's marker."""
    if spec.array:
        element = spec.element()
        width = element.width
        if width is not None and not (check and checked_kind(spec)):
            return _array_count_lines(spec) + ["if n > 0:", f"    o += n * {width}"]
        return _array_count_lines(spec) + ["for _ in range(n):"] + _indent(_value_lines(element, check))
    if spec.type == "struct" and spec.nullable:
        return ["(m,) = i8(b, o)", "o += 1", "if m >= 0:"] + _indent(_value_lines(spec, check))
    return _value_lines(spec, check)


def _tag_section_lines(spec: FieldSpec, check: bool) -> list[str]:
    """A tag section as Kafka reads it: known tags by their type (and their declared size checked), the
    rest skipped by their size."""
    lines = ["n, s = uv(b, o)", "o += s",
             "if n < 0:", "    raise WireError('negative tagged field count')",  # Kafka 4.4 refuses it too
             "for _ in range(n):",
             "    t, s = uv(b, o)", "    o += s",
             "    m, s = uv(b, o)", "    o += s",
             "    if m < 0:", "        raise WireError('tagged field of negative size')",
             "    if o + m > len(b):", "        raise IndexError('tagged field runs past the bytes at hand')",
             "    e = o + m"]
    first = True
    for tagged in spec.tagged():
        lines += _indent([f"{'if' if first else 'elif'} t == {tagged.tag}:"])
        lines += _indent(_field_lines(tagged, check), 2)
        lines += _indent([f"    if o != e:",
                          f"        raise TagSizeMismatch('tagged field {tagged.name} declared ' + str(m) + ' bytes')"])
        first = False
    lines += _indent(["else:" if not first else "if True:", "    o = e"])
    # No tags, nearly always: one zero byte, read without a varint call (a Fetch request has one per partition).
    return ["if b[o] == 0:", "    o += 1", "else:"] + _indent(lines)


def _struct_lines(spec: FieldSpec, last: bool, check: bool) -> list[str]:
    """Lines that read a struct's fields; `last`: stop after the last field that can hold a name."""
    untagged = spec.untagged()
    holding = [i for i, child in enumerate(untagged) if check and holds_names(child)]
    tags_hold = check and any(holds_names(child) for child in spec.tagged())
    lines: list[str] = []
    for i, child in enumerate(untagged):
        if last and not tags_hold and holding and i == holding[-1]:
            return lines + _last_field_lines(child)
        lines += _field_lines(child, check and i in holding)
    if spec.flexible:
        lines += _tag_section_lines(spec, check and tags_hold)
    return lines


def _last_field_lines(spec: FieldSpec) -> list[str]:
    """The last field that can hold a name: check it, then return without reading further."""
    if spec.type != "struct" or checked_kind(spec) is not None:
        return _field_lines(spec, True) + ["return o"]
    function = _register(spec, last=True, check=True)
    if not spec.array:
        call = [f"return {function}(b, o, names)"]
        return (["(m,) = i8(b, o)", "o += 1", "if m < 0:", "    return o"] + call) if spec.nullable else call
    return _array_count_lines(spec) + [
        "for _ in range(n - 1):", f"    o = {_register(spec, last=False, check=True)}(b, o, names)",
        "if n > 0:", f"    o = {function}(b, o, names)", "return o",
    ]


_SOURCES: dict[str, str] = {}


def _register(spec: FieldSpec, last: bool, check: bool) -> str:
    """The name of a compiled function reading one struct value (the same struct at the same version and
    flexibility compiles once)."""
    key = repr(("last" if last else "all", check, spec))
    name = _SOURCES.get(key)
    if name is None:
        name = f"read_{spec.snake}_{len(_SOURCES)}"
        _SOURCES[key] = name
        body = _struct_lines(spec, last, check)
        # Fixed-width fields and byte runs are skipped unchecked: whether the struct fit is checked once, here.
        tail = ["if o > len(b):", "    raise IndexError('the struct runs past the bytes at hand')", "return o"]
        source = "\n".join([f"def {name}(b, o, names):", *_indent(body + tail)])
        exec(compile(source, f"<reserved {name}>", "exec"), _NAMESPACE)
    return name


_CHECKERS: dict[tuple[int, int], Check | None] = {}


def request_checker(api_key: int, api_version: int) -> Check | None:
    """The checker of a request version, None if it cannot name a reserved topic or group.

    Only for versions Kafka defines (message_specs), so a client choosing keys and versions fills this
    table up to those at most. Raises UnknownMessage for the rest."""
    key = (api_key, api_version)
    if key not in _CHECKERS:
        message = lookup(REQUEST, api_key, api_version)
        if message is None:
            raise UnknownMessage(f"request api key {api_key} v{api_version}")
        root = message.root
        _CHECKERS[key] = _NAMESPACE[_register(root, last=True, check=True)] if holds_names(root) else None  # type: ignore[assignment]
    return _CHECKERS[key]


_READERS: dict[tuple[int, int], Check] = {}


def request_reader(api_key: int, api_version: int) -> Check:
    """A function reading the whole request as Kafka does (names checked on the way): what the request
    guard's differential tests compare with Kafka's own parser. Kept per version, like the checkers: finding
    the compiled function again by its spec's repr cost the differential test a seventh of its time."""
    key = (api_key, api_version)
    if key not in _READERS:
        message = lookup(REQUEST, api_key, api_version)
        if message is None:
            raise UnknownMessage(f"request api key {api_key} v{api_version}")
        _READERS[key] = _NAMESPACE[_register(message.root, last=False, check=True)]  # type: ignore[assignment]
    return _READERS[key]


_OFFSET_READERS: dict[tuple[str, int, int, str], Callable[[memoryview, int], int]] = {}


def offset_reader(message: MessageSpec, name: str) -> Callable[[memoryview, int], int]:
    """A compiled (buffer, body offset) -> offset where the untagged top-level field `name` starts, reading the fields
    before it as the checkers read them (no name checked): what protocol/fetch_rack.py splices at, per request.
    codec.decode_until answers the same, building every value on the way; this builds none."""
    key = (message.kind, message.api_key, message.version, name)
    reader = _OFFSET_READERS.get(key)
    if reader is None:
        lines: list[str] = []
        for child in message.untagged():
            if child.snake == name:
                break
            lines += _field_lines(child, check=False)
        else:
            raise KeyError(f"{message.name} v{message.version} has no untagged field {name}")
        function = f"offset_of_{name}_{message.api_key}_{message.version}_{message.kind}"
        tail = ["if o > len(b):", "    raise IndexError('the message runs past the bytes at hand')", "return o"]
        source = "\n".join([f"def {function}(b, o, names=None):", *_indent(lines + tail)])
        exec(compile(source, f"<offset {function}>", "exec"), _NAMESPACE)
        reader = _OFFSET_READERS[key] = _NAMESPACE[function]  # type: ignore[assignment]
    return reader
