"""The job server's views, one module per part of the protocol."""
