"""Generate the gRPC stubs in contract/protos/ from the .proto files vendored there.

`.venv/bin/python scripts/generate-grpc.py` (needs grpcio-tools, in the dev extra). The TensorFlow
Serving protos import TensorFlow's own (`tensor.proto`, `meta_graph.proto`, ...): rather than vendor
those too, their descriptors are read from the installed TensorFlow and given to protoc as a
descriptor set, and the generated code imports TensorFlow's modules, as the official
`tensorflow-serving-api` package does. Generated imports are rewritten to live under
`contract.protos`, so that they never clash with that package's `tensorflow_serving`.

`--check` regenerates into a temporary folder and exits 1 if the committed stubs differ.
"""

import argparse
import importlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "contract" / "protos"
PACKAGE = "contract.protos"
TENSORFLOW_MODULES = (  # what the vendored protos import from TensorFlow
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.example.example_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2",
    "tensorflow.core.protobuf.error_codes_pb2",
    "tensorflow.core.protobuf.config_pb2",
    "tensorflow.core.protobuf.named_tensor_pb2",
)
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def descriptor_set(path: Path) -> None:
    """Every .proto file TensorFlow's modules were built from, with all they import, as one set."""
    found: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(file: FileDescriptor) -> None:
        if file.name in found:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        found[file.name] = proto

    for module in TENSORFLOW_MODULES:
        add(importlib.import_module(module).DESCRIPTOR)
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=list(found.values())).SerializeToString())


def generate(out: Path) -> None:
    sources = sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        tensorflow = Path(tmp) / "tensorflow.pb"
        descriptor_set(tensorflow)
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTOS}",
                f"--descriptor_set_in={tensorflow}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *sources,
            ]
        )
    if status != 0:
        sys.exit(f"protoc failed with status {status}")
    for path in out.rglob("*_pb2_grpc.py"):
        if "Servicer" not in path.read_text():  # a file of messages only: no service, no stub
            path.unlink()
    for path in out.rglob("*.py*"):
        path.write_text(_rewrite_imports(path.read_text()))
    for generated in out.rglob("*_pb2.py"):
        for folder in (generated.parent, *generated.parent.parents):
            if folder == out.parent:
                break
            (folder / "__init__.py").touch()


def _rewrite_imports(code: str) -> str:
    code = re.sub(r"^from (tensorflow_serving\.\S+) import", rf"from {PACKAGE}.\1 import", code, flags=re.M)
    code = re.sub(r"^import (\w+_pb2) as", rf"from {PACKAGE} import \1 as", code, flags=re.M)
    return code


def _generated(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in folder.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed stubs are current")
    args = parser.parse_args()
    if not args.check:
        generate(PROTOS)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(PROTOS, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*(f"*{g}" for g in GENERATED)))
        generate(Path(tmp))
        fresh, committed = _generated(Path(tmp)), _generated(PROTOS)
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    if stale:
        print("stale or missing generated stubs:", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
