"""Generate the gRPC Python code of ``proto/`` into ``pipelines/services/grpc_gen`` (``make proto``).

protoc runs from the pinned grpcio-tools with the proto folder mapped to the package path, so the
generated modules import each other as ``pipelines.services.grpc_gen...`` and need no sys.path tricks.
A test regenerates into a temporary folder and fails when the committed code is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "pipelines/services/grpc_gen"
PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
PROTO_FILES = ("loanstress/v1/loanstress.proto", "grpc/health/v1/health.proto")


def generate(out_root: Path) -> list[Path]:
    """Write the generated modules under ``out_root/pipelines/services/grpc_gen``; returns them."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    target = out_root / PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    arguments = ["protoc", f"-I{PACKAGE}={PROTO_ROOT}", f"-I{include}", f"--python_out={out_root}",
                 f"--pyi_out={out_root}", f"--grpc_python_out={out_root}",
                 *[f"{PROTO_ROOT / name}" for name in PROTO_FILES]]
    if protoc.main(arguments) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(arguments)}")
    written = sorted(p for p in target.rglob("*") if p.suffix in (".py", ".pyi"))
    for folder in {p.parent for p in written} | {target}:
        while folder != out_root / "pipelines" / "services":
            (folder / "__init__.py").touch()
            folder = folder.parent
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    for path in generate(out):
        print(f"wrote {path}")
