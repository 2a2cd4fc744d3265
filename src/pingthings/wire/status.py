"""BTrDB v5 status codes, shared by the client and the server.

A v5 server reports errors in the ``stat`` field of an otherwise successful gRPC response.
Codes below 500 are the caller's mistakes; 500 and above are the server's.
"""

from __future__ import annotations

from enum import IntEnum


class StatusCode(IntEnum):
    """Every status code a v5 server or proxy may send (see btrdb-semantics §7)."""

    OK = 0
    NO_SUCH_POINT = 401
    CONTEXT_ERROR = 402
    INSERT_FAILURE = 403
    NO_SUCH_STREAM = 404
    WRONG_ENDPOINT = 405
    STREAM_EXISTS_V4 = 406
    INVALID_COLLECTION = 407
    INVALID_TAG_KEY = 408
    INVALID_TAG_VALUE = 409
    AWESOMENESS_EXCEEDS_THRESHOLD = 410
    INVALID_LIMIT = 411
    AMBIGUOUS_TAGS = 412
    INVALID_TIME_RANGE = 413
    INSERT_TOO_BIG = 414
    INVALID_POINT_WIDTH = 415
    GENERIC_ERROR = 416
    SAME_STREAM = 417
    AMBIGUOUS_STREAM = 418
    CLUSTER_DEGRADED = 419
    BLAZE_IT = 420
    WRONG_ARGS = 421
    ANNOTATION_TOO_BIG = 422
    ANNOTATION_VERSION_MISMATCH = 423
    FAULT_INJECTION_DISABLED = 424
    BAD_VALUE = 425
    RESOURCE_DEPLETED = 426
    INVALID_VERSIONS = 427
    ETCD_FAILURE = 428
    REUSED_UUID = 429
    CONCURRENT_MODIFICATION = 430
    OBLITERATE_DISABLED = 431
    CEPH_ERROR = 432
    NODE_EXISTED = 433
    JOURNAL_ERROR = 434
    MANIFEST_ERROR = 435
    MANIFEST_DEVICE_DUPLICATED = 436
    UNAUTHORIZED = 437
    INVALID_PARAMETER = 438
    MANIFEST_DEVICE_DOESNT_EXIST = 439
    METADATA_CONNECTION_ERROR = 440
    BAD_SQL_VALUE = 441
    ALREADY_EXISTS = 442
    MISSING_PARAMETER = 443
    UNRECOGNIZED_PARAMETER = 444
    OBJECT_NOT_FOUND = 445
    OBJECT_IN_USE = 446
    OPERATION_NOT_ALLOWED = 447
    TLS_ERROR = 448
    SELECTOR_ERROR = 449
    VERSION_NOT_AVAILABLE = 450
    OVERLAPPING_TRIM_RANGE = 452
    LOCK_FAILED = 453
    NO_LEAF_NODE = 454
    TIER_CACHE_ERROR = 455
    STREAM_EMPTY = 456
    TIERED_STORAGE_BACKEND_ERROR = 457
    TIERED_STORAGE_OUT_OF_BOUNDS = 458
    TIERED_STORAGE_TEMPORARY_ERROR = 459
    INVARIANT_FAILURE = 500
    NOT_IMPLEMENTED = 501
    UNSUPPORTED_ROLLBACK = 502


class StatusError(Exception):
    """An error that carries a v5 status code and a human message.

    The server's layers raise subclasses of this; the RPC layer turns any of them into the
    response's ``stat`` field.

    Parameters
    ----------
    code
        The v5 status code.
    msg
        What went wrong, in words a user can act on.
    """

    code: StatusCode = StatusCode.GENERIC_ERROR

    def __init__(self, msg: str, code: StatusCode | int | None = None) -> None:
        super().__init__(msg)
        if code is not None:
            self.code = StatusCode(code)
        self.msg = msg

    def __str__(self) -> str:
        return f"[{int(self.code)}] {self.msg}"
