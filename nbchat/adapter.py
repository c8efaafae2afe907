"""The connection pool a Stop can reach: urllib3 connections that attach themselves to the
request's :class:`~nbchat.cancel.Cancellation` while they connect and wait for headers.

Without this, a stop asked for while a server holds its answer back (a model still queued)
would wait for the headers, or for the read timeout: the request is deep inside urllib3 and
nothing above it holds the socket. With it, :meth:`Cancellation.set` shuts that socket, the
wait ends with a closed connection, and the retry policy (:mod:`nbchat.retry`) sees the
cancellation and asks no more.
"""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .cancel import active

__all__ = ["CancellableAdapter"]


def _attach(connection: Any) -> None:
    cancellation = active()
    if cancellation is not None:
        cancellation.attach(connection)


class _HTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self)  # shut at once if the stop came while connecting

    def getresponse(self) -> Any:
        _attach(self)  # a kept-alive connection skips connect()
        return super().getresponse()


class _HTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _attach(self)

    def getresponse(self) -> Any:
        _attach(self)
        return super().getresponse()


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class CancellableAdapter(HTTPAdapter):
    """requests' adapter with pools of the connections above, direct or through an HTTP
    proxy (through a SOCKS proxy, only the pause between retries can be cut short)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has connections of its own
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
