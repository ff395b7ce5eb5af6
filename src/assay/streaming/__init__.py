"""Streaming over NATS JetStream (optional extra ``assay[stream]``): publishing, so far."""
