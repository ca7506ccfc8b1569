"""Local servers that speak Google Cloud's real gRPC APIs on 127.0.0.1.

The service's own code talks to them through the official client libraries,
unchanged: only the endpoint differs. Tests use them to exercise the real wire
protocol (and to inject latency and errors); `make dev` uses them so that the
service runs locally without a Google Cloud account.
"""
