"""A Python port of go-datastore's dstest suite, run against the gRPC service."""
