"""The embedded server's own gRPC-over-HTTP/2 layer, on the sans-IO core in :mod:`pingthings.wire.http2`.

One :class:`asyncio.Protocol` per connection (:mod:`.protocol`) turns frames into calls
(:mod:`.call`), looks their methods up (:mod:`.dispatch`), keeps the flow-control windows
(:mod:`.flow`) and maps every low-level error to its answer in one place (:mod:`.status`);
:mod:`.shutdown` owns the listening server and its graceful stop.
"""
