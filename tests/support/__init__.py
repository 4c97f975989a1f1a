"""Helpers the tests share: one poller, the real processes, raw fake services, deploy configs.

``poll`` waits for a condition; ``fakes`` are raw nats-py services that follow the wire
contract with no framework; ``processes`` runs real edges and services as subprocesses;
``deploy`` runs the repository's nats.conf. Nothing here is mocked.
"""
