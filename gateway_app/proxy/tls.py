"""TLS contexts: terminating client TLS, and TLS towards brokers from the KAFKA_SSL_* properties."""

from __future__ import annotations

import ssl

from ..config import Settings

_CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def client_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.client_tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.ssl_cert_file), str(settings.ssl_key_file))
    if settings.ssl_ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ssl_ca_file))
    context.verify_mode = _CLIENT_AUTH[settings.ssl_client_auth]
    return context


def upstream_context(settings: Settings) -> ssl.SSLContext | None:
    """Same meaning as librdkafka's ssl.* properties, so one KAFKA_* set configures both sides."""
    if not settings.upstream_tls:
        return None
    props = settings.kafka_properties
    context = ssl.create_default_context(cafile=props.get("ssl.ca.location"))
    if "ssl.certificate.location" in props:
        context.load_cert_chain(props["ssl.certificate.location"], props.get("ssl.key.location"),
                                password=props.get("ssl.key.password"))
    if props.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    if props.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# A listener created with `ssl=` drops a failed handshake silently (asyncio's and uvloop's SSLProtocol alike: the
# ssl.SSLError is an OSError, which only reaches the loop's debug log, and the application protocol never hears of
# the connection). So TLS listeners accept themselves and hand each socket to `loop.connect_accepted_socket(ssl=)`,
# which raises the handshake's error to its caller (gateway_app/proxy/server.py). Upgrading an accepted plain
# transport with `loop.start_tls` instead is not safe under uvloop: it starts reading right after
# `connection_made`, so a ClientHello sent at once is read before start_tls takes the transport over.
TLS_HANDSHAKE_TIMEOUT_S = 10.0


def handshake_failure_reason(error: BaseException) -> str:
    """A short, bounded label for a failed handshake: OpenSSL's reason code (wrong_version_number,
    tlsv1_alert_unknown_ca, certificate_verify_failed, peer_did_not_return_a_certificate, ...), else the kind."""
    if isinstance(error, ssl.SSLError):
        return (error.reason or ("eof" if isinstance(error, ssl.SSLEOFError) else "ssl_error")).lower()[:64]
    if isinstance(error, (TimeoutError, ConnectionAbortedError)):  # the handshake deadline
        return "timeout"
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        return "connection_reset"
    return "other"
