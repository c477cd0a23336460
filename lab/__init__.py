"""The lab: real Kafka brokers, real systemd hosts and a client namespace on one machine.

Everything the tests, molecule and the README demo run against is brought up here:

* three Apache Kafka brokers (KRaft, combined broker+controller), each in its own network namespace, racks
  rack-a/rack-b/rack-c, jars resolved from Maven Central by ``lab/maven/pom.xml``;
* systemd-nspawn hosts booted from a cached, debootstrapped Debian bookworm root file system;
* a client namespace that reaches the gateway side of the lab but has no route to any broker.

``python -m lab --help`` lists the commands; :class:`lab.state.LabState` is the API tests use.
"""
