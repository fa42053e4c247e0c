"""Nomad and go-plugin protocol definitions and the Python modules generated from them.

The *_pb2.py, *_pb2_grpc.py and *_pb2.pyi files are generated; never edit them.
Regenerate with `python scripts/gen_protos.py`.
"""
