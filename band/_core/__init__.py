"""The core a service is made of: its app, registry, settings, logger, RPC client and scheduler.

Nothing here touches a connection; band._runtime runs an app on one.
"""
