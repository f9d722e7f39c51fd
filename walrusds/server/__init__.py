"""The gRPC server: the servicer, the error mapping, and server assembly."""
