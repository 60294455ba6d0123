"""`tf2aif.lock`: pinned base image digests, tool versions and input digests."""
