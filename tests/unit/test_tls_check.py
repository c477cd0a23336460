"""The TLS material check the gateway role runs before installing certificates (and the node before a reload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_app.tls_check import TlsMaterialError, check_ca_bundle, check_certificate, main
from lab.pki import LabCA


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca, other = LabCA(root / "ca"), LabCA(root / "other", name="kgw-other-ca")
    return {"ca": ca.cert_path, "other_ca": other.cert_path, "server": ca.issue("server", ["198.18.0.11"]),
            "client": ca.issue("client", client=True), "expired": ca.issue("expired", ["198.18.0.11"], expired=True)}


def test_good_server_and_client_certificates_pass(pki) -> None:
    check_certificate(str(pki["server"].cert), str(pki["server"].key), str(pki["ca"]))
    check_certificate(str(pki["server"].cert), str(pki["server"].key))
    check_certificate(str(pki["client"].cert), str(pki["client"].key), str(pki["ca"]), as_client=True)
    assert check_ca_bundle(str(pki["ca"])) == 1


@pytest.mark.parametrize("cert, key, ca, as_client, reason", [
    ("server", "client", "ca", False, "key values mismatch"),
    ("expired", "expired", "ca", False, "certificate has expired"),
    ("expired", "expired", None, False, "certificate has expired"),
    ("server", "server", "other_ca", False, "unable to get local issuer certificate"),
    ("client", "client", "ca", False, "unsuitable certificate purpose"),  # a client certificate is no server's
    ("server", "server", "ca", True, "unsuitable certificate purpose"),
])
def test_bad_material_is_refused_with_its_reason(pki, cert, key, ca, as_client, reason) -> None:
    with pytest.raises(TlsMaterialError, match=reason):
        check_certificate(str(pki[cert].cert), str(pki[key].key), str(pki[ca]) if ca else None, as_client=as_client)


def test_a_bundle_without_certificates_is_refused(tmp_path: Path, pki) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(TlsMaterialError):
        check_ca_bundle(str(empty))


def test_command_line_names_the_problem_and_never_the_key(pki, capsys) -> None:
    assert main(["--cert", str(pki["server"].cert), "--key", str(pki["client"].key), "--ca-bundle", str(pki["ca"])]) == 1
    err = capsys.readouterr().err
    assert "key values mismatch" in err and "PRIVATE KEY" not in err
    assert main(["--cert", str(pki["server"].cert), "--key", str(pki["server"].key), "--ca", str(pki["ca"])]) == 0
