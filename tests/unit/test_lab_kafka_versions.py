"""lab.kafka_versions: which Apache Kafka the lab runs, chosen by --kafka-version or $KGW_KAFKA_VERSION."""

from __future__ import annotations

import pytest

from lab import kafka_versions
from lab.__main__ import main
from lab.kafka import kafka_home


@pytest.mark.parametrize("version", ["3.9.0", "3.9.2", "4.1.0", "4.1.2", "4.4.0"])
def test_the_supported_releases_are_accepted(version: str) -> None:
    assert kafka_versions.validate(version) == version


@pytest.mark.parametrize("version", ["3.8.1", "4.0.0", "4.2.0", "4.4.1", "5.0.0", "4.4", "4.4.0-rc1", "4.4.0/../x",
                                     "", " "])
def test_anything_else_is_refused_with_the_supported_set(version: str) -> None:
    with pytest.raises(ValueError, match=r"3\.9\.x \(KRaft\), 4\.1\.x, 4\.4\.0"):
        kafka_versions.validate(version)


def test_the_newest_release_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KGW_KAFKA_VERSION", raising=False)
    assert kafka_versions.selected() == "4.4.0"


def test_the_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGW_KAFKA_VERSION", "3.9.2")
    assert kafka_versions.selected() == "3.9.2"
    assert kafka_versions.selected("4.1.2") == "4.1.2"


def test_a_bad_environment_value_stops_lab_up_before_anything_starts(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KGW_KAFKA_VERSION", "4.2.0")
    assert main(["--instance", "199", "up"]) == 2
    assert "Kafka 4.2.0 is not supported by the lab" in capsys.readouterr().err


def test_each_release_has_a_jar_cache_of_its_own() -> None:
    homes = {kafka_home(version) for version in kafka_versions.MATRIX_VERSIONS}
    assert len(homes) == len(kafka_versions.MATRIX_VERSIONS)
    assert kafka_home("3.9.2").name == "kafka-3.9.2"


def test_features_are_told_by_minor_release() -> None:
    assert kafka_versions.at_least("4.4.0", 4, 0)
    assert kafka_versions.at_least("4.1.2", 4, 1)
    assert not kafka_versions.at_least("3.9.2", 4, 0)


def test_every_matrix_release_is_supported() -> None:
    assert kafka_versions.DEFAULT_KAFKA_VERSION in kafka_versions.MATRIX_VERSIONS
    for version in kafka_versions.MATRIX_VERSIONS:
        kafka_versions.validate(version)


def test_the_console_producer_is_found_where_each_release_has_it() -> None:
    assert kafka_versions.console_producer_class("3.9.2") == "kafka.tools.ConsoleProducer"
    assert kafka_versions.console_producer_class("4.1.2") == "org.apache.kafka.tools.ConsoleProducer"
    assert kafka_versions.console_producer_class("4.4.0") == "org.apache.kafka.tools.ConsoleProducer"
