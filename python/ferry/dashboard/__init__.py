"""The ferry dashboard: a small web page on localhost (nodes, actors, objects,
a live transfer table and a throughput chart per transport) fed by a JSON
API, and a Prometheus ``/metrics`` endpoint (docs/observability.md).

``ferry dashboard`` serves it for a running ferry; ``ferry start --head
--dashboard`` serves it from the head's daemon; ``ferry start
--metrics-port`` serves one node's ``/metrics`` from its daemon.
"""
