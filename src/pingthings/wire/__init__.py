"""Code shared by the client and the server: status codes and the point-payload codecs."""
