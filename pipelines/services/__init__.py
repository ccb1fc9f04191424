"""The services: the application layer (operations written once) and its gRPC and REST transports."""
