"""Settings from the environment and an optional KEY=VALUE file, validated once at start: the table of
settings (`SPECS`), their parsers and checks, and `Settings`.

`GATEWAY_*` settings configure the node; every `KAFKA_X_Y` becomes the client property `x.y` for
the gateway's own connections to the backing cluster (e.g. KAFKA_SASL_MECHANISM -> sasl.mechanism).
The environment wins over the file, so a systemd EnvironmentFile and ad-hoc overrides compose.
The file's grammar is env_file.py's, the librdkafka check of the KAFKA_* properties kafka_check.py's,
and `--help`'s text settings_help.py's.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .broker_addresses import PortPlan
from .client_networks import (
    RACK_FOLLOWING_SOFTWARE, ClientNetworks, Network, parse_client_networks, parse_software_names, parse_trusted_networks,
)
from .env_file import EnvFileError, read_env_file
from .member import Member, RecordRejected, validate_member


class ConfigError(ValueError):
    """A setting is invalid; the message starts with the setting's name."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    value = float(raw.strip())
    if value <= 0:
        raise ValueError("must be > 0")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _float_in(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw.strip())
        if not low <= value <= high:  # also refuses nan
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError("must be true or false")


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


class Secret:
    """A setting's value that must never be shown: repr, str and f-strings print only a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)


MIN_SECRET_CHARS = 16


def _secret(raw: str) -> Secret:
    value = raw.strip()
    if len(value) < MIN_SECRET_CHARS:
        raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters")
    if not value.isprintable():
        raise ValueError("must be printable characters (no control characters)")
    return Secret(value)


def _optional_secret(raw: str) -> Secret | None:
    return _secret(raw) if raw.strip() else None


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _existing_file(raw: str) -> Path | None:
    if not raw.strip():
        return None
    path = Path(raw.strip())
    if not path.is_file():
        raise ValueError(f"file {path} does not exist")
    return path


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in raw.split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not an address or CIDR network") from None
    return tuple(networks)


MIN_TOKEN_LENGTH = 16


def _optional_token(raw: str) -> str | None:
    if not raw:
        return None
    if len(raw) < MIN_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in raw):
        raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} printable characters without spaces")
    return raw


def _host_ports(raw: str) -> tuple[tuple[str, int], ...]:
    servers = []
    for item in raw.split(","):
        item = item.strip()
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not host:port")
        servers.append((host.strip("[]"), int(port)))
    if not servers:
        raise ValueError("needs at least one host:port")
    return tuple(servers)


@dataclass(frozen=True, slots=True)
class Spec:
    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str | None  # None = required
    help: str
    secret: bool = False  # never echoed, not even in an error message


_PORT = _int_in(1, 65535)

SPECS: tuple[Spec, ...] = (
    Spec("GATEWAY_BIND_HOST", "bind_host", _text, "0.0.0.0", "Address the Kafka listeners and the HTTP port bind to."),
    Spec("GATEWAY_ADVERTISED_HOST", "advertised_host", _optional_text, "",
         "Host name clients are told to connect to (this node, or the load balancer with external load balancing). "
         "Default: this machine's host name."),
    Spec("GATEWAY_PORT_START", "port_start", _PORT, "6969", "Bootstrap port; broker b listens on PORT_START + 1 + (b - MIN_BROKERID)."),
    Spec("GATEWAY_MIN_BROKERID", "min_broker_id", _int_in(0, 2**31 - 1), "1", "Lowest broker id of the backing cluster."),
    Spec("GATEWAY_PORT_COUNT", "port_count", _int_in(2, 10000), "10",
         "Number of ports bound, bootstrap included: broker ids MIN_BROKERID..MIN_BROKERID+PORT_COUNT-2 are reachable."),
    Spec("GATEWAY_HTTP_PORT", "http_port", _PORT, "8888", "Port of /health/live, /health/ready, /metrics and /cluster."),
    Spec("GATEWAY_CLUSTER_ID", "cluster_id", _text, "gateway", "Gateway cluster name; nodes with the same id form one cluster."),
    Spec("GATEWAY_NODE_ID", "node_id", _optional_text, "", "This node's id within the cluster. Default: this machine's host name."),
    Spec("GATEWAY_RACK_ID", "rack_id", _optional_text, "", "Rack of this node; brokers are mapped to a node in their own rack when one is live."),
    Spec("GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING", "internal_load_balancing", _bool, "true",
         "true: spread brokers over live gateway nodes; false: advertise every broker at ADVERTISED_HOST (external load balancer)."),
    Spec("GATEWAY_CLUSTER_SESSION_TIMEOUT_S", "cluster_session_timeout_s", _positive_float, "10",
         "Seconds after which a silent node drops out of the cluster mapping."),
    Spec("GATEWAY_MAX_FRAME_BYTES", "max_frame_bytes", _int_in(1024, 2**31 - 1), str(100 * 1024 * 1024),
         "Largest Kafka frame accepted from a client or broker; a bigger one closes that connection."),
    Spec("GATEWAY_DRAIN_TIMEOUT_S", "drain_timeout_s", _positive_float, "30", "On SIGTERM, how long open connections may finish before the node exits."),
    Spec("GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S", "upstream_connect_timeout_s", _positive_float, "10", "Timeout for connecting to a broker."),
    Spec("GATEWAY_MAX_CONNECTIONS", "max_connections", _int_in(1, 1_000_000), "10000",
         "Client connections a node holds at most; one more is closed at accept (counted, reason node_limit). "
         "Needs LimitNOFILE above twice this (each connection also holds a broker connection)."),
    Spec("GATEWAY_MAX_CONNECTIONS_PER_SOURCE", "max_connections_per_source", _int_in(1, 1_000_000), "1000",
         "Client connections one source address holds at most (the real client under PROXY protocol); one more is "
         "closed at accept (reason source_limit)."),
    Spec("GATEWAY_FIRST_REQUEST_TIMEOUT_S", "first_request_timeout_s", _positive_float, "10",
         "A client connection that sends no complete request this long after accept is closed (reason "
         "first_request_timeout). The broker connection is opened only when the first request arrives."),
    Spec("GATEWAY_IDLE_TIMEOUT_S", "idle_timeout_s", _positive_float, "600",
         "A client connection with nothing in flight and no request for this long is closed (reason idle_timeout); "
         "the default matches Kafka's connections.max.idle.ms, clients close idle connections sooner themselves."),
    Spec("GATEWAY_CLIENT_WRITE_TIMEOUT_S", "client_write_timeout_s", _positive_float, "60",
         "A client that reads nothing of what the node writes to it for this long is aborted (reason "
         "client_not_reading), also while its connection is closing."),
    Spec("GATEWAY_MAX_IN_FLIGHT", "max_in_flight", _int_in(1, 100_000), "500",
         "Requests awaiting their response on one connection; at the cap the node stops reading that client until "
         "half have been answered (counted, reason in_flight_cap)."),
    Spec("GATEWAY_MAX_ASSEMBLED_BYTES", "max_assembled_bytes", _int_in(1024, 2**31 - 1), str(16 * 1024 * 1024),
         "Largest frame the node holds whole: a request whose topic/group names must all be checked before it is "
         "relayed, or a response decoded for a rewrite (not Produce/Fetch, whose tagged fields are read in place). "
         "A bigger one closes that connection. GATEWAY_MAX_FRAME_BYTES applies first."),
    Spec("GATEWAY_MAX_ASSEMBLED_BYTES_TOTAL", "max_assembled_bytes_total", _int_in(1024, 2**40), str(128 * 1024 * 1024),
         "Bytes of client requests all connections of the node together hold whole at once (see "
         "GATEWAY_MAX_ASSEMBLED_BYTES); a request that would exceed it closes its connection (counted, reason "
         "node_assembly_budget, and logged)."),
    Spec("GATEWAY_FRAME_TIMEOUT_S", "frame_timeout_s", _positive_float, "60",
         "A client that has sent part of a request and not the rest for this long is closed (reason frame_timeout), "
         "whatever it sent before."),
    Spec("GATEWAY_SSL_CERT_FILE", "ssl_cert_file", _existing_file, "", "PEM certificate (chain) for TLS towards clients; enables TLS on every listener."),
    Spec("GATEWAY_SSL_KEY_FILE", "ssl_key_file", _existing_file, "", "PEM private key for GATEWAY_SSL_CERT_FILE."),
    Spec("GATEWAY_SSL_CA_FILE", "ssl_ca_file", _existing_file, "", "PEM CA bundle that client certificates are verified against."),
    Spec("GATEWAY_SSL_CLIENT_AUTH", "ssl_client_auth", _choice("none", "requested", "required"), "none",
         "Client certificate authentication: none, requested (verified if sent) or required."),
    Spec("GATEWAY_PROXY_PROTOCOL", "proxy_protocol", _bool, "false",
         "Expect a PROXY protocol v2 header on every listener connection (node behind HAProxy with send-proxy-v2)."),
    Spec("GATEWAY_PROXY_TRUSTED_NETWORKS", "proxy_trusted_networks", parse_trusted_networks, "",
         "Comma-separated CIDR networks (the load balancers') whose PROXY v2 headers are believed. A header naming a "
         "client from any other peer closes the connection (counted, reason proxy_untrusted); a LOCAL header (a "
         "health check, a peer node's probe) claims no address and is taken from anyone. Required when "
         "GATEWAY_PROXY_PROTOCOL is on."),
    Spec("GATEWAY_CLIENT_RACK_NETWORKS", "client_rack_networks", parse_client_networks, "",
         "Client networks per rack, comma-separated rack=cidr pairs (a rack may have several; no two may overlap), "
         "e.g. rack-a=10.1.0.0/16,rack-b=10.2.0.0/16. A client whose source address (the PROXY header's under "
         "PROXY protocol) is in one has that rack: its Fetch requests (v11+) that name no rack_id are relayed with "
         "it, so a broker with RackAwareReplicaSelector points it at a replica in its rack. Empty: nothing rewritten."),
    Spec("GATEWAY_CLIENT_RACK_SOFTWARE", "client_rack_software", parse_software_names,
         ",".join(sorted(RACK_FOLLOWING_SOFTWARE)),
         "Client software (client_software_name of ApiVersions v3+, comma-separated) given the rack of "
         "GATEWAY_CLIENT_RACK_NETWORKS. A broker answers a Fetch naming a rack with a preferred read replica and no "
         "records, and a client that does not follow it (aiokafka without client_rack, a client too old to name "
         "itself) would fetch from the leader forever without progress, so only software known to follow it is "
         "given a rack; other connections are counted (gateway_fetch_rack_withheld_total) and read from leaders. "
         "The default lists the clients the project's rack-aware e2e test proves."),
    Spec("GATEWAY_SPLICE", "splice", _bool, "true",
         "Move record bytes kernel to kernel: on a connection with no TLS on either side, the record sets of Fetch "
         "responses go from the broker's socket to the client's through a pipe (os.splice) and never enter the "
         "gateway's memory; headers are read, and KIP-951 node endpoints rewritten in a tag section of the same size "
         "(gateway_fetch_endpoints_in_place_total). So do the records of Produce requests of 512 kB or more whose "
         "topic names the request guard has passed at the request's head (gateway_spliced_produce_bytes_total). TLS "
         "connections always copy. false: every byte is copied."),
    Spec("GATEWAY_EVENT_LOOP", "event_loop", _choice("uvloop", "asyncio"), "uvloop", "Event loop implementation."),
    Spec("GATEWAY_LOG_LEVEL", "log_level", _choice("debug", "info", "warning", "error"), "info", "Log level."),
    Spec("KAFKA_BOOTSTRAP_SERVERS", "bootstrap_servers", _host_ports, None, "Brokers of the backing cluster, host:port,host:port."),
    Spec("KAFKA_SECURITY_PROTOCOL", "kafka_security_protocol", _choice("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"), "plaintext",
         "Security protocol towards the brokers. Data-plane connections use TLS for ssl/sasl_ssl; client SASL is relayed untouched."),
    Spec("GATEWAY_CLUSTER_SECRET", "cluster_secret", _secret, None,
         "Shared secret of the gateway cluster, the same on every node, at least 16 characters: the key that signs "
         "member records (HMAC-SHA256), so a record on the members topic written by anyone without it is ignored. "
         "Generate one with `openssl rand -hex 32`. Never logged or shown.", secret=True),
    Spec("GATEWAY_CLUSTER_SECRET_PREVIOUS", "cluster_secret_previous", _optional_secret, "",
         "During a secret rotation only: the old GATEWAY_CLUSTER_SECRET, still accepted when verifying member records "
         "(never used to sign). Unset it once every node runs with the new secret.", secret=True),
    Spec("GATEWAY_HTTP_BIND_HOST", "http_bind_host", _optional_text, "",
         "Address the HTTP port binds to (an operator's port: put it on the management network). "
         "Default: GATEWAY_BIND_HOST."),
    Spec("GATEWAY_HTTP_ADMIN_TOKEN", "http_admin_token", _optional_token, "",
         "Operator token (at least 16 characters): a request with 'Authorization: Bearer <token>' gets the "
         "backing brokers' addresses in /cluster; a wrong token is refused with 403. Default: no token.",
         secret=True),
    Spec("GATEWAY_HTTP_ADMIN_NETWORKS", "http_admin_networks", _networks, "127.0.0.0/8,::1",
         "Comma-separated addresses/CIDR networks whose requests get the backing brokers' addresses in /cluster "
         "without a token; everyone else sees /cluster without them. Empty: nobody without the token."),
    Spec("GATEWAY_HANDOVER_ENABLED", "handover_enabled", _bool, "true",
         "Hand over client connections this node holds for a broker the mapping gives to another live node "
         "(internal load balancing only): stop reading, let requests in flight finish, close (docs/handover.md)."),
    Spec("GATEWAY_HANDOVER_SETTLE_S", "handover_settle_s", _float_in(0, 3600), "10",
         "Seconds the broker -> node mapping must stay unchanged before foreign connections are handed over."),
    Spec("GATEWAY_HANDOVER_SPREAD_S", "handover_spread_s", _float_in(0, 3600), "10",
         "Handovers that become due together are spread evenly over this many seconds."),
    Spec("GATEWAY_HANDOVER_DEADLINE_S", "handover_deadline_s", _float_in(0.1, 600), "10",
         "A connection being handed over is closed at this deadline even if a request is still in flight; "
         "one that has had no quiet moment by half of it stops reading new requests."),
)

KAFKA_PREFIX = "KAFKA_"


@dataclass(frozen=True, slots=True)
class Settings:
    bind_host: str
    advertised_host: str
    port_start: int
    min_broker_id: int
    port_count: int
    http_port: int
    cluster_id: str
    node_id: str
    rack_id: str | None
    internal_load_balancing: bool
    cluster_session_timeout_s: float
    max_frame_bytes: int
    drain_timeout_s: float
    upstream_connect_timeout_s: float
    max_connections: int
    max_connections_per_source: int
    first_request_timeout_s: float
    idle_timeout_s: float
    client_write_timeout_s: float
    max_in_flight: int
    max_assembled_bytes: int
    max_assembled_bytes_total: int
    frame_timeout_s: float
    ssl_cert_file: Path | None
    ssl_key_file: Path | None
    ssl_ca_file: Path | None
    ssl_client_auth: str
    proxy_protocol: bool
    proxy_trusted_networks: tuple[Network, ...]
    client_rack_networks: ClientNetworks
    client_rack_software: frozenset[str]
    splice: bool
    event_loop: str
    log_level: str
    bootstrap_servers: tuple[tuple[str, int], ...]
    kafka_security_protocol: str
    cluster_secret: Secret
    cluster_secret_previous: Secret | None
    http_bind_host: str | None
    http_admin_token: str | None = field(repr=False)
    http_admin_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    handover_enabled: bool
    handover_settle_s: float
    handover_spread_s: float
    handover_deadline_s: float
    kafka_properties: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def port_plan(self) -> PortPlan:
        return PortPlan(self.port_start, self.min_broker_id, self.port_count)

    @property
    def member(self) -> Member:
        """This node as its peers see it: the fields of its member record."""
        return Member(self.node_id, self.advertised_host, self.rack_id, self.port_start, self.port_count)

    @property
    def client_tls(self) -> bool:
        return self.ssl_cert_file is not None

    @property
    def upstream_tls(self) -> bool:
        return self.kafka_security_protocol in ("ssl", "sasl_ssl")


# Client properties whose values are credentials (sasl.password, ssl.key.password, sasl.oauthbearer.client.secret,
# ssl.key.pem, sasl.jaas.config, ...): never echoed. roles/gateway/defaults/main.yml's gateway_secret_env_pattern
# is the same expression for the role's redacted view of the env file.
SECRET_ENV_PATTERN = re.compile(r"(PASSWORD|SECRET|TOKEN|CREDENTIAL|_PEM|JAAS|OAUTHBEARER_CONFIG)", re.IGNORECASE)


def is_secret(env_key: str) -> bool:
    spec = next((spec for spec in SPECS if spec.env == env_key), None)
    return spec.secret if spec is not None else bool(SECRET_ENV_PATTERN.search(env_key))


def kafka_properties(raw: Mapping[str, str]) -> dict[str, str]:
    """KAFKA_X_Y=v -> {"x.y": v} for every KAFKA_* key."""
    return {
        key[len(KAFKA_PREFIX):].lower().replace("_", "."): value
        for key, value in raw.items()
        if key.startswith(KAFKA_PREFIX)
    }


def load_settings(environ: Mapping[str, str], config_file: Path | None = None) -> Settings:
    try:
        raw: dict[str, str] = dict(read_env_file(config_file)) if config_file else {}
    except EnvFileError as error:
        raise ConfigError(error.where, error.problem) from None
    raw.update({k: v for k, v in environ.items() if k.startswith(("GATEWAY_", KAFKA_PREFIX))})
    values: dict[str, Any] = {}
    for spec in SPECS:
        text = raw.get(spec.env, spec.default)
        if text is None:
            raise ConfigError(spec.env, "is required")
        try:
            values[spec.attr] = spec.parse(text)
        except ValueError as error:
            raise ConfigError(spec.env, str(error) if spec.secret else f"{error} (got {text!r})") from None
    hostname = socket.gethostname()
    values["http_bind_host"] = values["http_bind_host"] or values["bind_host"]
    values["advertised_host"] = values["advertised_host"] or hostname
    values["node_id"] = values["node_id"] or hostname
    settings = Settings(**values, kafka_properties=kafka_properties(raw))
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    _check_member_record(settings)
    if settings.max_assembled_bytes_total < settings.max_assembled_bytes:
        raise ConfigError("GATEWAY_MAX_ASSEMBLED_BYTES_TOTAL", f"{settings.max_assembled_bytes_total} is below "
                          f"GATEWAY_MAX_ASSEMBLED_BYTES ({settings.max_assembled_bytes}): no large request could be checked")
    plan = settings.port_plan
    if plan.port_start + plan.port_count - 1 > 65535:
        raise ConfigError("GATEWAY_PORT_COUNT", f"ports {plan.port_start}..{plan.port_start + plan.port_count - 1} exceed 65535")
    if settings.http_port in plan.ports():
        raise ConfigError("GATEWAY_HTTP_PORT", f"{settings.http_port} collides with the Kafka port range")
    if (settings.ssl_cert_file is None) != (settings.ssl_key_file is None):
        raise ConfigError("GATEWAY_SSL_KEY_FILE", "GATEWAY_SSL_CERT_FILE and GATEWAY_SSL_KEY_FILE go together")
    if settings.ssl_client_auth != "none" and settings.ssl_ca_file is None:
        raise ConfigError("GATEWAY_SSL_CA_FILE", "required when GATEWAY_SSL_CLIENT_AUTH is not none")
    if settings.ssl_client_auth != "none" and settings.ssl_cert_file is None:
        raise ConfigError("GATEWAY_SSL_CLIENT_AUTH", "client authentication needs TLS (GATEWAY_SSL_CERT_FILE)")
    if settings.proxy_protocol and not settings.proxy_trusted_networks:
        raise ConfigError("GATEWAY_PROXY_TRUSTED_NETWORKS", "required when GATEWAY_PROXY_PROTOCOL is on: the load "
                          "balancers' networks, the only peers whose PROXY headers name a client")
    if settings.max_connections_per_source > settings.max_connections:
        raise ConfigError("GATEWAY_MAX_CONNECTIONS_PER_SOURCE", "cannot exceed GATEWAY_MAX_CONNECTIONS")


def _check_member_record(settings: Settings) -> None:
    """This node's member record must be one its peers accept (they check every record the same way)."""
    try:
        validate_member(settings.member)
    except RecordRejected as error:
        setting = {"node_id": "GATEWAY_NODE_ID", "rack": "GATEWAY_RACK_ID", "advertised_host": "GATEWAY_ADVERTISED_HOST",
                   "port_start": "GATEWAY_PORT_START"}.get(error.field or "", "GATEWAY_PORT_COUNT")
        raise ConfigError(setting, error.detail) from None
    if settings.cluster_secret_previous == settings.cluster_secret:
        raise ConfigError("GATEWAY_CLUSTER_SECRET_PREVIOUS", "is the same as GATEWAY_CLUSTER_SECRET")
