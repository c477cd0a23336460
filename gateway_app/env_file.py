"""A KEY=VALUE settings file read exactly as systemd's EnvironmentFile= reads it (`--config`, and the env
file the role writes), so a file means the same to the service as to `kafka-gateway --check-config`."""

from __future__ import annotations

import re
from pathlib import Path


class EnvFileError(ValueError):
    """A file this refuses; `where` names the file (and line), `problem` says why."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


# The parts of systemd's EnvironmentFile= grammar (src/basic/env-file.c, parse_env_file_internal) that decide a value.
_NEWLINE = "\n\r"
_WHITESPACE = " \t\n\r"
_SHELL_NEED_ESCAPE = "\"\\`$"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# systemd drops a value with a control character other than TAB and newline (env_value_is_valid)
_INVALID_VALUE_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def read_env_file(path: Path) -> dict[str, str]:
    """Read an env file exactly as systemd's EnvironmentFile= does (quotes, backslash escapes, continuation
    lines, `#`/`;` comments, whitespace trimming; a later key wins).

    Where systemd would silently drop an assignment (an invalid name such as `export X`, a control character
    in the value) or where systemd versions disagree (a comment line ending in a backslash), this refuses the
    file instead, naming the line: a file this accepts means the same to the service as to --check-config.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise EnvFileError(str(path), f"not valid UTF-8 at byte {error.start}") from None
    values: dict[str, str] = {}
    for line, key, value in _env_assignments(text, str(path)):
        where = f"{path}:{line}"
        if not _ENV_NAME.fullmatch(key):
            raise EnvFileError(where, f"{key[:40]!r} is not a variable name (systemd would ignore the line)")
        if _INVALID_VALUE_CHARS.search(value):
            raise EnvFileError(where, f"the value of {key} has a control character (systemd would ignore it)")
        values[key] = value
    return values


def _env_assignments(text: str, name: str) -> list[tuple[int, str, str]]:
    """systemd's state machine, transcribed: (line, key, value) for every assignment, in order."""
    found: list[tuple[int, str, str]] = []
    state, line, start, key, value = "pre_key", 1, 1, "", ""  # line: of the character at hand; start: of the key
    key_ws: int | None = None  # where the key's trailing whitespace starts
    value_ws: int | None = None  # where the unquoted value's trailing whitespace starts

    def push() -> None:
        found.append((start, key[:key_ws] if key_ws is not None else key,
                      value[:value_ws] if state == "value" and value_ws is not None else value))

    for c in text:
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in _WHITESPACE:
                state, key, value, key_ws, start = "key", c, "", None, line
        elif state == "key":
            if c in _NEWLINE:
                state = "pre_key"
            elif c == "=":
                state, value_ws = "pre_value", None
            else:
                if c not in _WHITESPACE:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key += c
        elif state == "pre_value":
            if c in _NEWLINE:
                push()
                state = "pre_key"
            elif c == "'":
                state = "single_quote"
            elif c == '"':
                state = "double_quote"
            elif c == "\\":
                state = "value_escape"
            elif c not in _WHITESPACE:
                state, value = "value", value + c
        elif state == "value":
            if c in _NEWLINE:
                push()
                state = "pre_key"
            elif c == "\\":
                state, value_ws = "value_escape", None
            else:
                if c not in _WHITESPACE:
                    value_ws = None
                elif value_ws is None:
                    value_ws = len(value)
                value += c
        elif state == "value_escape":
            state = "value"
            if c not in _NEWLINE:
                value += c
        elif state == "single_quote":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double_quote":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_quote_escape"
            else:
                value += c
        elif state == "double_quote_escape":
            state = "double_quote"
            if c in _SHELL_NEED_ESCAPE:
                value += c
            elif c != "\n":
                value += "\\" + c
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in _NEWLINE:
                state = "pre_key"
        elif state == "comment_escape":
            if c in _NEWLINE:  # systemd < 254 continues the comment on the next line, >= 254 does not
                raise EnvFileError(f"{name}:{line}", "a comment line ends in a backslash (systemd versions differ)")
            state = "comment"
        if c == "\n":  # also inside quotes and after a backslash: lines as an editor numbers them
            line += 1
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        push()
    return found
