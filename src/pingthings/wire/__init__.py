"""Code shared by the client and the server: status codes and the point-payload codecs."""

from pingthings.wire import redact as _redact

_redact.install()  # API keys never reach the logs through hpack's DEBUG output
