"""The command line for people (list, explain, validate, suggest, watch): a thin layer over discovery, no grpc."""
