"""Runs an app on a NATS connection: connect, subscribe, dispatch, limit, stop.

built on band._core; band/__init__ exposes none of it.
"""
