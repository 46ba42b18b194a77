"""The client daemon: trains on local data when a round opens and submits its update."""
