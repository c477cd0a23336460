"""Jinja filter `systemd_env_value`: one value written for a systemd EnvironmentFile= so that systemd reads back
exactly that value (and `kafka-gateway --check-config`, whose gateway_app.env_file.read_env_file follows the same
grammar).

Every value is double-quoted; inside, systemd unescapes backslash before `"`, `\\`, `` ` `` and `$` and keeps
every other character as it is, a newline included. systemd drops a value with any other control character,
so such a value fails the play instead of silently going missing on the host.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_NEEDS_ESCAPE = re.compile(r'(["\\`$])')
_INVALID = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def systemd_env_value(value: object) -> str:
    text = str(value)
    if _INVALID.search(text):
        raise AnsibleFilterError("an env-file value may not hold control characters other than tab and newline")
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", text) + '"'


class FilterModule:
    def filters(self) -> dict:
        return {"systemd_env_value": systemd_env_value}
