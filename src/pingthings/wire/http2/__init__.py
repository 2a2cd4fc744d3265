"""A sans-IO HTTP/2 core shared by the embedded server and the client transport.

Nothing here touches sockets or an event loop: :mod:`.frames` turns bytes into frames and builds the
frames we send, :mod:`.hpack` decodes and encodes header blocks. The connection logic (streams, flow
control, calls) lives with the code that owns the socket.
"""
