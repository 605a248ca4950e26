"""Cluster-mode tests: ferry clusters on network-namespace hosts.

A package (not a bare folder) so that pytest imports this folder's conftest
as ``cluster.conftest``: a second top-level ``conftest`` module would replace
python/tests/conftest.py in ``sys.modules`` for the tests that import from it.
"""
