"""Is this TLS material usable? The checks the gateway role runs before new material replaces working files, and
the node runs before it takes a renewed certificate on SIGHUP.

A certificate passes when its key belongs to it, it is valid now, and it chains to the given CA bundle (without one,
to itself: the dates are still checked). The check is a TLS handshake in memory with the same OpenSSL the node
serves with, so material that passes is material the node can load and a peer with that CA accepts. A certificate
checked `as_client` is verified the way a broker verifies the gateway's client certificate (purpose TLS client).

`python -m gateway_app.tls_check --cert FILE --key FILE [--ca FILE] [--client] [--ca-bundle FILE ...]` exits 1
with one line per problem; only file names and OpenSSL's reasons are printed, never key material.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path

HANDSHAKE_ROUNDS = 10


class TlsMaterialError(ValueError):
    pass


def check_ca_bundle(path: str) -> int:
    """Number of certificates in a PEM CA bundle; raises when it has none or cannot be read."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as error:
        raise TlsMaterialError(f"CA bundle {path}: {_reason(error)}") from None
    count = context.cert_store_stats()["x509"]
    if not count:
        raise TlsMaterialError(f"CA bundle {path}: no certificate in it")
    return count


def check_certificate(cert: str, key: str, ca: str | None = None, as_client: bool = False) -> None:
    """Raise TlsMaterialError unless `key` belongs to `cert`, `cert` is valid now and chains to `ca` (or itself)."""
    holder = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT if as_client else ssl.PROTOCOL_TLS_SERVER)
    try:
        holder.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise TlsMaterialError(f"certificate {cert} with key {key}: {_reason(error)}") from None
    verifier = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if as_client else ssl.PROTOCOL_TLS_CLIENT)
    verifier.check_hostname = False
    verifier.verify_mode = ssl.CERT_REQUIRED
    try:
        verifier.load_verify_locations(cafile=ca or cert)
    except (ssl.SSLError, OSError) as error:
        raise TlsMaterialError(f"CA bundle {ca or cert}: {_reason(error)}") from None
    if ca is None:  # trust the certificate itself: what is left to verify is its validity period
        verifier.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if as_client:  # the verifier is the server side and needs a certificate of its own; this one will do
        verifier.load_cert_chain(cert, key)
        holder.check_hostname = False
        holder.verify_mode = ssl.CERT_NONE
        server, client = verifier, holder
    else:
        server, client = holder, verifier
    try:
        _handshake(server, client)
    except ssl.SSLCertVerificationError as error:
        raise TlsMaterialError(f"certificate {cert}: {error.verify_message}" + (f" (CA {ca})" if ca else "")) from None
    except ssl.SSLError as error:
        raise TlsMaterialError(f"certificate {cert}: handshake failed: {_reason(error)}") from None


def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    """Run a TLS handshake between the two contexts through memory buffers; raises what either side raises."""
    pipes = [(ssl.MemoryBIO(), ssl.MemoryBIO()) for _ in range(2)]  # (incoming, outgoing) per side
    server = server_context.wrap_bio(pipes[0][0], pipes[0][1], server_side=True)
    client = client_context.wrap_bio(pipes[1][0], pipes[1][1], server_side=False, server_hostname=None)
    done = {id(server): False, id(client): False}
    for _ in range(HANDSHAKE_ROUNDS):
        for side, (incoming, outgoing), (peer_incoming, _) in ((client, pipes[1], pipes[0]), (server, pipes[0], pipes[1])):
            if not done[id(side)]:
                try:
                    side.do_handshake()
                    done[id(side)] = True
                except ssl.SSLWantReadError:
                    pass
            peer_incoming.write(outgoing.read())
        if all(done.values()):
            # TLS 1.3: the server verifies the client's certificate after the client has finished; a refusal
            # reaches the client as an alert at its first read
            try:
                client.read(1)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
            return
    raise ssl.SSLError("handshake did not complete")


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return error.reason.lower().replace("_", " ")
    return getattr(error, "strerror", None) or str(error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway_app.tls_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cert", help="PEM certificate (chain) to check")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--ca", help="PEM CA bundle --cert must chain to")
    parser.add_argument("--client", action="store_true", help="check --cert as a TLS client certificate")
    parser.add_argument("--ca-bundle", action="append", default=[], help="PEM CA bundle that must hold a certificate")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    problems = []
    for bundle in args.ca_bundle:
        try:
            check_ca_bundle(bundle)
        except TlsMaterialError as error:
            problems.append(str(error))
    if args.cert:
        try:
            check_certificate(args.cert, args.key, args.ca, as_client=args.client)
        except TlsMaterialError as error:
            problems.append(str(error))
    for problem in problems:
        print(f"tls_check: {problem}", file=sys.stderr)
    if not problems:
        print("tls_check: OK " + " ".join(str(Path(p).name) for p in [args.cert, *args.ca_bundle] if p))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
