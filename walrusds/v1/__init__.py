"""Generated gRPC code for the walrusds.v1 API (``make proto`` regenerates it from proto/)."""
