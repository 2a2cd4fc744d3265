"""The v5api.BTrDB service: its method table over the handler classes.

Every request and reply crosses the gRPC layer as raw bytes: the adapters in :mod:`.rpc` decode
control-plane requests strictly and hand point payloads to the numpy codecs.
"""

from __future__ import annotations

from typing import Any

from pingthings._proto import v5api
from pingthings.server.grpc.dispatch import Method
from pingthings.server.service import rpc
from pingthings.server.service.arrow_rpcs import ArrowHandlers
from pingthings.server.service.control import ControlHandlers
from pingthings.server.service.csv_export import CsvHandlers
from pingthings.server.service.points import PointHandlers
from pingthings.server.service.state import ServiceState
from pingthings.server.service.subscribe import SubscribeHandler

_PREFIX = "/v5api.BTrDB/"
#: Unary methods started eagerly (see ``grpc/eager.py``): the small calls a client repeats, whose
#: handlers await nothing but plain futures and ``blocking`` (which awaits ``needs_task`` first).
_EAGER = frozenset({"Info", "Insert", "ArrowInsert", "StreamInfo"})


class BTrDBService:
    """The servable implementing every RPC of ``v5api.BTrDB``.

    Parameters
    ----------
    state
        The engine, metadata store, subscription hub and server facts shared by the handlers.
    """

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.control = ControlHandlers(state)
        self.points = PointHandlers(state)
        self.arrow = ArrowHandlers(state)
        self.csv = CsvHandlers(state)
        self.subscriber = SubscribeHandler(state)

    def grpc_methods(self) -> dict[str, Method]:
        """Method path → :class:`~pingthings.server.grpc.dispatch.Method`."""
        c, p, a = self.control, self.points, self.arrow
        unary: dict[str, tuple[Any, type[Any] | None]] = {
            "Info": (c.info, v5api.InfoParams),
            "Create": (c.create, v5api.CreateParams),
            "StreamInfo": (c.stream_info, v5api.StreamInfoParams),
            "SetStreamAnnotations": (c.set_stream_annotations, v5api.SetStreamAnnotationsParams),
            "SetStreamTags": (c.set_stream_tags, v5api.SetStreamTagsParams),
            "GetMetadataUsage": (c.get_metadata_usage, v5api.MetadataUsageParams),
            "Obliterate": (c.obliterate, v5api.ObliterateParams),
            "Flush": (c.flush, v5api.FlushParams),
            "FaultInject": (c.fault_inject, v5api.FaultInjectParams),
            "Nearest": (p.nearest, v5api.NearestParams),
            "Insert": (p.insert, None),
            "Delete": (p.delete, v5api.DeleteParams),
            "ArrowInsert": (a.arrow_insert, None),  # read by hand: wire/insert_messages.py
        }
        streaming: dict[str, tuple[Any, type[Any] | None]] = {
            "LookupStreams": (c.lookup_streams, v5api.LookupStreamsParams),
            "ListCollections": (c.list_collections, v5api.ListCollectionsParams),
            "SQLQuery": (c.sql_query, v5api.SqlQueryParams),
            "RawValues": (p.raw_values, v5api.RawValuesParams),
            "AlignedWindows": (p.aligned_windows, v5api.AlignedWindowsParams),
            "Windows": (p.windows, v5api.WindowsParams),
            "Changes": (p.changes, v5api.ChangesParams),
            "ArrowRawValues": (a.arrow_raw_values, v5api.ArrowRawValuesParams),
            "ArrowMultiValues": (a.arrow_multi_values, v5api.ArrowMultiValuesParams),
            "ArrowAlignedWindows": (a.arrow_aligned_windows, v5api.AlignedWindowsParams),
            "ArrowWindows": (a.arrow_windows, v5api.WindowsParams),
            "GenerateCSV": (self.csv.generate_csv, v5api.GenerateCsvParams),
        }
        mapping = {_PREFIX + name: rpc.unary(fn, cls, name in _EAGER) for name, (fn, cls) in unary.items()}
        mapping.update({_PREFIX + name: rpc.server_stream(fn, cls) for name, (fn, cls) in streaming.items()})
        mapping[_PREFIX + "Subscribe"] = Method(self.subscriber.handle, unary=False)
        return mapping
