"""The settings' text of `kafka-gateway --help` (and of the generated settings page, docs/generate.py)."""

from __future__ import annotations

from .config import SPECS

OTHER_KAFKA_HELP = (
    "KAFKA_*  Any other KAFKA_X_Y becomes client property x.y for the gateway's own connections "
    "(e.g. KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CA_LOCATION, "
    "KAFKA_SSL_CERTIFICATE_LOCATION, KAFKA_SSL_KEY_LOCATION, KAFKA_SSL_KEY_PASSWORD, "
    "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM). The ssl.* ones also apply to data-plane upstream TLS."
)


def settings_help() -> str:
    lines = ["Settings (environment variables, or KEY=VALUE lines in --config FILE; the environment wins):", ""]
    for spec in SPECS:
        default = "required" if spec.default is None else f"default {spec.default!r}" if spec.default else "default unset"
        lines.append(f"  {spec.env}  ({default})")
        lines.append(f"      {spec.help}")
    lines += ["", f"  {OTHER_KAFKA_HELP}"]
    return "\n".join(lines)
