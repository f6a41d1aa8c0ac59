"""Logs, metrics and traces, free of gRPC and of aiohttp: the RPC and HTTP adapters and the
model layer all report through these modules."""
