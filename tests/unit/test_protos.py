"""Unit tier: the generated proto modules are fresh and match Nomad's wire contract.

Freshness is checked two ways. The descriptors embedded in the committed
modules must equal what the current .proto sources compile to (works with any
grpcio-tools). When the pinned generator is at hand, the files must also be
byte-identical to its output (`python scripts/gen_protos.py --check`).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FieldDescriptor

from proto import device_pb2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gen_protos  # noqa: E402  (a script, not a package)

PROTO_NAMES = sorted(p.stem for p in (ROOT / "proto").glob("*.proto"))


def _strip_json_names(file_proto: descriptor_pb2.FileDescriptorProto) -> None:
    """Clear json_name, which protoc fills in for descriptor sets but not for gencode."""

    def strip(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    for message in file_proto.message_type:
        strip(message)


def _compiled_sources(tmp_path: Path) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = tmp_path / "set.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--descriptor_set_out={out}",
         *gen_protos.proto_sources()],
        cwd=ROOT, check=True, capture_output=True,
    )
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {f.name: f for f in files}


def test_generated_descriptors_match_proto_sources(tmp_path: Path) -> None:
    """Each committed *_pb2 module embeds exactly what its .proto compiles to now."""
    pytest.importorskip("grpc_tools")
    compiled = _compiled_sources(tmp_path)
    assert sorted(compiled) == [f"proto/{name}.proto" for name in PROTO_NAMES]
    for name, source in compiled.items():
        module = importlib.import_module(f"proto.{Path(name).stem}_pb2")
        committed = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        _strip_json_names(source)
        _strip_json_names(committed)
        assert committed == source, f"{name} is stale: run python scripts/gen_protos.py"


def test_generated_files_exist_for_every_source() -> None:
    """Every .proto has its _pb2.py, _pb2_grpc.py and _pb2.pyi, and nothing else is generated."""
    expected = {f"{name}{suffix}" for name in PROTO_NAMES for suffix in gen_protos.GENERATED_SUFFIXES}
    present = {p.name for p in (ROOT / "proto").iterdir() if gen_protos.is_generated(p)}
    assert present == expected


def test_generated_files_carry_pinned_generator_versions() -> None:
    """The modules were made by the pinned generator, so their runtime needs are as documented."""
    for name in PROTO_NAMES:
        pb2 = (ROOT / "proto" / f"{name}_pb2.py").read_text()
        assert f"# Protobuf Python Version: {gen_protos.GENCODE_PROTOBUF_VERSION}\n" in pb2
        assert "ValidateProtobufRuntimeVersion" not in pb2
        grpc_mod = (ROOT / "proto" / f"{name}_pb2_grpc.py").read_text()
        assert f"GRPC_GENERATED_VERSION = '{gen_protos.GENERATOR_VERSION}'" in grpc_mod


def test_generated_files_match_pinned_generator_byte_for_byte(tmp_path: Path) -> None:
    """Regenerating with the pinned grpcio-tools (installed once into .cache/ if needed) changes no byte."""
    python = gen_protos.find_generator(install=True)
    gen_protos.generate(tmp_path, python)
    assert gen_protos.stale_files(tmp_path / "proto") == []


class _RecordingChannel:
    """Stands in for grpc.Channel and records which method paths a stub asks for."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}

    def __getattr__(self, kind: str) -> Any:
        def make(path: str, *args: object, **kwargs: object) -> None:
            self.paths[path] = kind

        return make


EXPECTED_METHODS = {
    "/hashicorp.nomad.plugins.base.proto.BasePlugin/PluginInfo": "unary_unary",
    "/hashicorp.nomad.plugins.base.proto.BasePlugin/ConfigSchema": "unary_unary",
    "/hashicorp.nomad.plugins.base.proto.BasePlugin/SetConfig": "unary_unary",
    "/hashicorp.nomad.plugins.device.DevicePlugin/Fingerprint": "unary_stream",
    "/hashicorp.nomad.plugins.device.DevicePlugin/Reserve": "unary_unary",
    "/hashicorp.nomad.plugins.device.DevicePlugin/Stats": "unary_stream",
    "/plugin.GRPCController/Shutdown": "unary_unary",
    "/plugin.GRPCStdio/StreamStdio": "unary_stream",
    "/plugin.GRPCBroker/StartStream": "stream_stream",
}


def test_stubs_use_nomad_method_paths_and_kinds() -> None:
    """The generated stubs call exactly the method paths (and stream kinds) Nomad uses."""
    channel = _RecordingChannel()
    for module_name, stub in [
        ("base_pb2_grpc", "BasePluginStub"), ("device_pb2_grpc", "DevicePluginStub"),
        ("grpc_controller_pb2_grpc", "GRPCControllerStub"), ("grpc_stdio_pb2_grpc", "GRPCStdioStub"),
        ("grpc_broker_pb2_grpc", "GRPCBrokerStub"),
    ]:
        getattr(importlib.import_module(f"proto.{module_name}"), stub)(channel)
    assert channel.paths == EXPECTED_METHODS


@pytest.mark.parametrize(
    ("method", "request_type", "response_type"),
    [
        ("hashicorp.nomad.plugins.base.proto.BasePlugin.SetConfig",
         "hashicorp.nomad.plugins.base.proto.SetConfigRequest",
         "hashicorp.nomad.plugins.base.proto.SetConfigResponse"),
        ("hashicorp.nomad.plugins.device.DevicePlugin.Fingerprint",
         "hashicorp.nomad.plugins.device.FingerprintRequest",
         "hashicorp.nomad.plugins.device.FingerprintResponse"),
        ("plugin.GRPCController.Shutdown", "plugin.Empty", "plugin.Empty"),
        ("plugin.GRPCStdio.StreamStdio", "google.protobuf.Empty", "plugin.StdioData"),
        ("plugin.GRPCBroker.StartStream", "plugin.ConnInfo", "plugin.ConnInfo"),
    ],
)
def test_method_message_types(method: str, request_type: str, response_type: str) -> None:
    """Request and response message types of key methods are the contract's."""
    _import_all()
    found = descriptor_pool.Default().FindMethodByName(method)
    assert found.input_type.full_name == request_type
    assert found.output_type.full_name == response_type


def _import_all() -> None:
    for name in PROTO_NAMES:
        importlib.import_module(f"proto.{name}_pb2")


T = FieldDescriptor
FIELDS = [
    ("hashicorp.nomad.plugins.base.proto.PluginInfoResponse", "type", 1, T.TYPE_ENUM),
    ("hashicorp.nomad.plugins.base.proto.PluginInfoResponse", "plugin_api_versions", 2, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.base.proto.PluginInfoResponse", "name", 4, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.base.proto.ConfigSchemaResponse", "spec", 1, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.base.proto.SetConfigRequest", "msgpack_config", 1, T.TYPE_BYTES),
    ("hashicorp.nomad.plugins.base.proto.SetConfigRequest", "plugin_api_version", 3, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.base.proto.NomadDriverConfig", "ClientMaxPort", 1, T.TYPE_UINT32),
    ("hashicorp.nomad.plugins.base.proto.NomadDriverConfig", "ClientMinPort", 2, T.TYPE_UINT32),
    ("hashicorp.nomad.plugins.base.proto.NomadDriverConfig", "Topology", 3, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.base.proto.ClientTopology", "override_withold_compute", 5, T.TYPE_UINT64),
    ("hashicorp.nomad.plugins.base.proto.ClientTopologyCore", "guess_speed", 8, T.TYPE_UINT64),
    ("hashicorp.nomad.plugins.device.FingerprintResponse", "device_group", 1, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.device.DeviceGroup", "device_name", 3, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.device.DeviceGroup", "attributes", 5, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.device.DetectedDevice", "ID", 1, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.device.DetectedDevice", "hw_locality", 4, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.device.ReserveResponse", "container_res", 1, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.device.DeviceSpec", "permissions", 3, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.device.Mount", "read_only", 3, T.TYPE_BOOL),
    ("hashicorp.nomad.plugins.device.StatsRequest", "collection_interval", 1, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.device.DeviceGroupStats", "instance_stats", 4, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.device.DeviceStats", "timestamp", 3, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.shared.structs.Attribute", "float_val", 1, T.TYPE_DOUBLE),
    ("hashicorp.nomad.plugins.shared.structs.Attribute", "int_val", 2, T.TYPE_INT64),
    ("hashicorp.nomad.plugins.shared.structs.Attribute", "bool_val", 4, T.TYPE_BOOL),
    ("hashicorp.nomad.plugins.shared.structs.Attribute", "unit", 5, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.shared.structs.StatValue", "int_denominator_val", 4, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.shared.structs.StatValue", "desc", 8, T.TYPE_STRING),
    ("hashicorp.nomad.plugins.shared.hclspec.Spec", "Attr", 3, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.shared.hclspec.Spec", "default", 9, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.shared.hclspec.Spec", "literal", 10, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.shared.hclspec.BlockList", "nested", 4, T.TYPE_MESSAGE),
    ("hashicorp.nomad.plugins.shared.hclspec.BlockMap", "labels", 2, T.TYPE_STRING),
    ("plugin.StdioData", "channel", 1, T.TYPE_ENUM),
    ("plugin.ConnInfo", "knock", 4, T.TYPE_MESSAGE),
    ("plugin.ConnInfo.Knock", "error", 3, T.TYPE_STRING),
]


@pytest.mark.parametrize(("message", "field", "number", "field_type"), FIELDS,
                         ids=[f"{m.rsplit('.', 1)[1]}.{f}" for m, f, _, _ in FIELDS])
def test_field_numbers_and_types(message: str, field: str, number: int, field_type: int) -> None:
    """Field numbers and wire types match the contract tables."""
    _import_all()
    descriptor = descriptor_pool.Default().FindMessageTypeByName(message)
    assert descriptor.fields_by_name[field].number == number
    assert descriptor.fields_by_name[field].type == field_type


def test_oneofs_hold_the_right_members() -> None:
    """Attribute.value and Spec.block are oneofs with exactly the contract's members."""
    _import_all()
    pool = descriptor_pool.Default()
    attribute = pool.FindMessageTypeByName("hashicorp.nomad.plugins.shared.structs.Attribute")
    assert [f.name for f in attribute.oneofs_by_name["value"].fields] == [
        "float_val", "int_val", "string_val", "bool_val"]
    spec = pool.FindMessageTypeByName("hashicorp.nomad.plugins.shared.hclspec.Spec")
    assert [f.number for f in spec.oneofs_by_name["block"].fields] == list(range(1, 11))


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        ("hashicorp.nomad.plugins.base.proto.PluginType", {"UNKNOWN": 0, "DRIVER": 2, "DEVICE": 3}),
        ("hashicorp.nomad.plugins.base.proto.CoreGrade", {"Performance": 0, "Efficiency": 1}),
        ("plugin.StdioData.Channel", {"INVALID": 0, "STDOUT": 1, "STDERR": 2}),
    ],
)
def test_enum_values(enum: str, values: dict[str, int]) -> None:
    """Enum names and numbers are the contract's (PluginType has no 1)."""
    _import_all()
    descriptor = descriptor_pool.Default().FindEnumTypeByName(enum)
    assert {v.name: v.number for v in descriptor.values} == values


def test_reserve_response_with_empty_reservation_is_on_the_wire() -> None:
    """An empty ContainerReservation set on ReserveResponse is still serialised (Nomad needs it)."""
    response = device_pb2.ReserveResponse(container_res=device_pb2.ContainerReservation())
    assert response.SerializeToString() == b"\x0a\x00"
