"""The intake API: host applications log access and erasure requests over HTTP."""
