"""A small in-process gRPC server built on the client libraries' own types.

A fake registers unary methods of one gRPC service (by its full name,
as in the API's proto files); requests and responses
are (de)serialized with the proto-plus classes the official clients use, so
what crosses the socket is exactly what Google's servers would receive and send.
"""

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import grpc

from .lifecycle import LocalServer


class ProtoMessage(Protocol):
    """What proto-plus message classes offer for (de)serialization."""

    @classmethod
    def serialize(cls, instance: Any) -> bytes: ...

    @classmethod
    def deserialize(cls, payload: bytes) -> Any: ...


class RpcError(Exception):
    """Raised by a fake's method to answer with a gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass
class Faults:
    """Latency and errors to inject, per method name (`"*"` for every method)."""

    latency: dict[str, float] = field(default_factory=dict)
    errors: dict[str, list[RpcError]] = field(default_factory=lambda: defaultdict(list))
    always: dict[str, RpcError] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def delay(self, seconds: float, method: str = "*") -> None:
        self.latency[method] = seconds

    def fail_next(
        self, code: grpc.StatusCode, details: str = "", method: str = "*", times: int = 1
    ) -> None:
        with self._lock:
            self.errors[method].extend(RpcError(code, details or code.name) for _ in range(times))

    def fail_always(self, code: grpc.StatusCode, details: str = "", method: str = "*") -> None:
        self.always[method] = RpcError(code, details or code.name)

    def clear(self) -> None:
        with self._lock:
            self.latency.clear()
            self.errors.clear()
            self.always.clear()

    def apply(self, method: str) -> None:
        """Sleep and/or raise as configured for `method`; called before each call."""
        seconds = self.latency.get(method, self.latency.get("*", 0.0))
        if seconds:
            time.sleep(seconds)
        with self._lock:
            for key in (method, "*"):
                if self.errors.get(key):
                    raise self.errors[key].pop(0)
        for key in (method, "*"):
            if key in self.always:
                raise self.always[key]


@dataclass
class CallLog:
    """Every call the server answered, and how many ran at the same time."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, method: str, request: Any) -> None:
        with self._lock:
            self.calls.append((method, request))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.max_in_flight = self.in_flight

    def requests(self, method: str) -> list[Any]:
        with self._lock:
            return [request for name, request in self.calls if name == method]


Handler = Callable[[Any], Any]


class LocalGrpcServer(LocalServer):
    """Serves one gRPC service on 127.0.0.1 on a free port.

    `methods` maps a method name to (handler, request class, response class).
    A handler takes the request message and returns the response message, or
    raises `RpcError`.
    """

    def __init__(
        self,
        service: str,
        methods: Mapping[str, tuple[Handler, type[ProtoMessage], type[ProtoMessage]]],
        *,
        port: int = 0,
        max_workers: int = 32,
    ) -> None:
        self.service = service
        self.faults = Faults()
        self.log = CallLog()
        self._requested_port = port
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._wrap(name, handler),
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.serialize,
            )
            for name, (handler, request_type, response_type) in methods.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, handlers),)
        )
        self.port = 0

    @property
    def address(self) -> str:
        """`host:port`, as the `*_EMULATOR_HOST` settings expect it."""
        return f"127.0.0.1:{self.port}"

    def _wrap(self, name: str, handler: Handler) -> Callable[[Any, grpc.ServicerContext], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            self.log.enter(name, request)
            try:
                self.faults.apply(name)
                return handler(request)
            except RpcError as error:
                context.abort(error.code, error.details)
            finally:
                self.log.leave()

        return call

    def start(self) -> Self:
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self._requested_port}")
        self._server.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        self._server.stop(grace).wait()
