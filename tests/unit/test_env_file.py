"""The env file: the role's writer (roles/gateway/filter_plugins/systemd_env.py) and the gateway's reader
(gateway_app.env_file.read_env_file, systemd's EnvironmentFile= grammar) agree on every value; secrets are never
echoed by --check-config; librdkafka refuses a misspelt KAFKA_* property. What systemd itself reads is compared on
a lab host by tests/e2e/test_env_file_systemd.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from lab.layout import CLUSTER_SECRET
from gateway_app.config import SECRET_ENV_PATTERN, ConfigError, load_settings
from gateway_app.env_file import EnvFileError, read_env_file
from gateway_app.kafka_check import check_kafka_properties

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("systemd_env", REPO / "roles/gateway/filter_plugins/systemd_env.py")
systemd_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(systemd_env)

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "198.18.1.11:9092", "GATEWAY_CLUSTER_SECRET": CLUSTER_SECRET}

TRICKY = [
    "plain", "", " leading and trailing spaces ", 'double"quote', "single'quote", "back\\slash", "trailing\\",
    "dollar $HOME ${X}", "back`tick`", "new\nline", "\ttab", "#not-a-comment", ";semicolon", "a=b=c",
    "\\n literally", "ünïcødé ✓", "'", '"', "\\", "\\\n", "  \n  ",
]


def write(tmp_path: Path, values: dict[str, str]) -> Path:
    path = tmp_path / "gateway.env"
    path.write_text("# written like roles/gateway/templates/gateway.env.j2\n"
                    + "".join(f"{k}={systemd_env.systemd_env_value(v)}\n" for k, v in values.items()))
    return path


@pytest.mark.parametrize("value", TRICKY)
def test_writer_and_reader_agree_on_tricky_values(tmp_path, value):
    assert read_env_file(write(tmp_path, {"KAFKA_SASL_PASSWORD": value, "NEXT": "x"})) == {
        "KAFKA_SASL_PASSWORD": value, "NEXT": "x"}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=[
                           chr(c) for c in [*range(0, 9), *range(11, 32), 127]]), max_size=40), max_size=6))
def test_writer_and_reader_agree_on_any_value(tmp_path_factory, values):
    assert read_env_file(write(tmp_path_factory.mktemp("env"), values)) == values


@pytest.mark.parametrize("value", ["bell\a", "cr\r", "nul\x00", "esc\x1b"])
def test_writer_refuses_what_systemd_would_drop(value):
    with pytest.raises(Exception, match="control characters") as raised:
        systemd_env.systemd_env_value(value)
    assert value not in str(raised.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("A=  spaced value  \n", {"A": "spaced value"}),  # unquoted: surrounding whitespace trimmed
    ("  A  =x\n", {"A": "x"}),  # key trimmed
    ("A='it''s'\n", {"A": "its"}),  # adjacent quoted parts join
    ('A="a\\nb"\n', {"A": "a\\nb"}),  # \n is no escape inside double quotes: the backslash stays
    ('A="x\\"y\\$z"\n', {"A": 'x"y$z'}),
    ("A=one\\\ntwo\n", {"A": "onetwo"}),  # continuation line
    ("A=a\\ b\n", {"A": "a b"}),  # unquoted escape keeps the character
    ("# comment\n; another\nA=1\nA=2\n", {"A": "2"}),  # later wins
    ("A=x # not a comment\n", {"A": "x # not a comment"}),
    ("A=\n", {"A": ""}),
    ("A=last line without newline", {"A": "last line without newline"}),
    ("JUSTAKEY\nA=1\n", {"A": "1"}),  # no '=': systemd skips the line
])
def test_reader_follows_systemd(tmp_path, text, expected):
    path = tmp_path / "env"
    path.write_text(text)
    assert read_env_file(path) == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("export A=1\n", "not a variable name"),  # systemd ignores it; the shell would not
    ("1A=1\n", "not a variable name"),
    ('A="bell\a"\n', "control character"),
    ("# comment ending in a backslash \\\nA=1\n", "systemd versions differ"),
])
def test_reader_refuses_what_systemd_would_ignore_or_read_differently(tmp_path, text, problem):
    path = tmp_path / "env"
    path.write_text(text)
    with pytest.raises(EnvFileError, match=problem):
        read_env_file(path)


def test_invalid_utf8_is_refused(tmp_path):
    path = tmp_path / "env"
    path.write_bytes(b"A=\xff\n")
    with pytest.raises(EnvFileError, match="UTF-8"):
        read_env_file(path)


def test_a_refused_file_is_a_configuration_error_naming_the_file(tmp_path):
    path = tmp_path / "env"
    path.write_text("GATEWAY_NODE_ID=gw1\nexport X=1\n")
    with pytest.raises(ConfigError, match=f"^{path}:2: 'export X' is not a variable name") as raised:
        load_settings(BASE, path)
    assert raised.value.setting == f"{path}:2"


@pytest.mark.parametrize(("text", "line"), [
    ("A=1\nexport X=1\n", 2),
    ("A=1\\\n  continued\nexport X=1\n", 3),  # a continuation line is a line of the file
    ('A="two\nlines"\n# note\n\nexport X=1', 5),  # so is a newline inside quotes; no newline at the end
])
def test_a_refused_line_is_named_by_its_number_in_the_file(tmp_path, text, line):
    path = tmp_path / "env"
    path.write_text(text)
    with pytest.raises(EnvFileError, match=f"^{path}:{line}: 'export X'"):
        read_env_file(path)


CANARY = "canary-7d3f9a1e-secret"


def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway_app", "--check-config"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **BASE, **env}, cwd=REPO)


def test_a_bad_secret_setting_is_named_but_never_echoed():
    done = check_config({"GATEWAY_HTTP_ADMIN_TOKEN": "short canary"})
    assert done.returncode == 2 and "GATEWAY_HTTP_ADMIN_TOKEN" in done.stderr
    assert "short canary" not in done.stdout + done.stderr


def test_check_config_hands_kafka_properties_to_librdkafka():
    misspelt = check_config({"KAFKA_SASL_PASSWROD": CANARY})
    assert misspelt.returncode == 2 and "KAFKA_SASL_PASSWROD" in misspelt.stderr and "librdkafka" in misspelt.stderr
    bad_value = check_config({"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "NOPE"})
    assert bad_value.returncode == 2 and "NOPE" in bad_value.stderr
    missing_file = check_config({"KAFKA_SECURITY_PROTOCOL": "ssl", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"})
    assert missing_file.returncode == 2 and "KAFKA_SSL_CA_LOCATION" in missing_file.stderr
    fine = check_config({"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "PLAIN",
                         "KAFKA_SASL_USERNAME": "gateway", "KAFKA_SASL_PASSWORD": CANARY})
    assert fine.returncode == 0 and fine.stdout.strip() == "configuration OK"
    for done in (misspelt, bad_value, missing_file, fine):
        assert CANARY not in done.stdout + done.stderr


def test_librdkafka_messages_never_echo_a_secret_value():
    # librdkafka echoes an invalid value; a secret property's value is masked in what it says
    settings = load_settings({**BASE, "KAFKA_SASL_OAUTHBEARER_METHOD": CANARY})
    settings.kafka_properties["sasl.oauthbearer.client.secret"] = CANARY
    with pytest.raises(ConfigError) as raised:
        check_kafka_properties(settings)
    assert CANARY not in str(raised.value)


def test_help_names_secret_settings_without_values():
    done = subprocess.run([sys.executable, "-m", "gateway_app", "--help"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "GATEWAY_HTTP_ADMIN_TOKEN": CANARY, "KAFKA_SASL_PASSWORD": CANARY},
                          cwd=REPO)
    assert done.returncode == 0 and "GATEWAY_HTTP_ADMIN_TOKEN" in done.stdout and CANARY not in done.stdout


def test_the_role_masks_the_same_keys_as_the_gateway():
    defaults = yaml.safe_load((REPO / "roles/gateway/defaults/main.yml").read_text())
    assert defaults["gateway_secret_env_pattern"] == SECRET_ENV_PATTERN.pattern
