"""TLS contexts: terminating client TLS, TLS towards brokers from the KAFKA_SSL_* properties, and TLS
towards a peer's listener for the handover's probes."""

from __future__ import annotations

import contextlib
import os
import ssl
from typing import Iterator, Sequence

from ..config import Settings
from ..tls_check import TlsMaterialError, check_certificate

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


def probe_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS towards a peer's listener, only to see it answer (proxy/peer_probe.py): its certificate is not
    checked (no data goes over it); this node's own certificate is offered for peers that require one."""
    if not settings.client_tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(settings.ssl_cert_file), str(settings.ssl_key_file))
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


def reload_client_certificate(contexts: Sequence[ssl.SSLContext], settings: Settings) -> None:
    """Load GATEWAY_SSL_CERT_FILE and GATEWAY_SSL_KEY_FILE again into the node's live contexts (SIGHUP): the
    listeners' one context, and the one the node presents as a client to its peers' listeners (handover probes).

    Loading a chain into a context changes what new handshakes present, while established connections keep the
    session they have. Both files are read once and that snapshot is checked (key matches, certificate valid now)
    before it is loaded, so a bad or half-written pair raises TlsMaterialError or OSError and leaves the live
    contexts as they were.
    """
    cert, key = settings.ssl_cert_file, settings.ssl_key_file
    if cert is None or key is None:
        raise TlsMaterialError("client TLS is off (no GATEWAY_SSL_CERT_FILE)")
    with _in_memory(cert.read_bytes()) as cert_copy, _in_memory(key.read_bytes()) as key_copy:
        try:
            check_certificate(cert_copy, key_copy)
        except TlsMaterialError as error:  # name the operator's files, not the copies
            raise TlsMaterialError(str(error).replace(cert_copy, str(cert)).replace(key_copy, str(key))) from None
        for context in contexts:
            context.load_cert_chain(cert_copy, key_copy)


@contextlib.contextmanager
def _in_memory(data: bytes) -> Iterator[str]:
    """A path to an anonymous in-memory copy of `data` (memfd): OpenSSL loads from paths, and the copy must not
    change between check and load, nor land on disk when it is a key."""
    fd = os.memfd_create("gateway-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
