"""Subscribe: a bidirectional stream pushing newly inserted points as Arrow batches.

The client adds and removes uuids at any time; every batch inserted into a subscribed stream is
pushed as ``SubscriptionResp{uuid, arrowBytes}`` in insertion order. A subscriber that falls
behind, asks for an unknown stream or sends a malformed update gets one final message carrying
the status, and the call ends.
"""

from __future__ import annotations

import anyio

from pingthings._proto import v5api
from pingthings.server.errors import StreamNotFound
from pingthings.server.grpc.call import Call
from pingthings.server.service import arrow_io
from pingthings.server.service.context import is_admin
from pingthings.server.service.convert import blocking, require_uuid
from pingthings.server.service.replies import stat_reply, status_of
from pingthings.server.service.state import ServiceState
from pingthings.server.service.subscriptions import Subscriber
from pingthings.server.service.visibility import require_visible
from pingthings.server.service.wire_check import decode_request


class SubscribeHandler:
    """The handler of ``/v5api.BTrDB/Subscribe``."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def handle(self, stream: Call) -> None:
        """Serve one Subscribe call until the client leaves, fails, or the server stops."""
        hub = self.state.hub
        admin = is_admin()
        subscriber = hub.open()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_updates, stream, subscriber)
                async for batch in subscriber.receive:
                    if not admin and self.state.meta.is_hidden_stream(batch.uuid):
                        continue  # hidden after the subscription began: a non-admin key sees nothing
                    table = arrow_io.raw_table(batch.times, batch.values)
                    reply = v5api.SubscriptionResp(uuid=batch.uuid, arrow_bytes=arrow_io.ipc_bytes(table))
                    await stream.send_message(bytes(reply))
                if subscriber.error is not None:
                    await stream.send_message(stat_reply(subscriber.error))
                tg.cancel_scope.cancel()
        finally:
            hub.close_subscriber(subscriber)

    async def _read_updates(self, stream: Call, subscriber: Subscriber) -> None:
        hub = self.state.hub
        try:
            async for data in stream:
                update = decode_request(data, v5api.SubscriptionUpdate)
                uuids = [require_uuid(u) for u in update.uuid]
                if update.op == v5api.SubscriptionUpdateOp.REMOVE_UUIDS:
                    hub.remove(subscriber, uuids)
                    continue
                for uuid in uuids:
                    require_visible(self.state.meta, uuid)
                    if not await blocking(self.state.meta.stream_exists, uuid):
                        raise StreamNotFound()
                hub.add(subscriber, uuids)
        except Exception as exc:
            hub.close_subscriber(subscriber, status_of(exc))
