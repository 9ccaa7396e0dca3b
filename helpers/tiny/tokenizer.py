"""OpenAI CLIP's tokenizer, rebuilt offline from the BPE file that ships inside the ``open-clip-torch`` wheel.

The result is the tokenizer Stable Diffusion v1.5 uses (49408 tokens), as ``vocab.json`` and ``merges.txt`` that
``CLIPTokenizer`` reads. The wheel is needed only here, at build time: the shipped folder loads without it.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

BPE_IN_WHEEL = "open_clip/bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # CLIP keeps the first 48894 merges of the file


def download_bpe(into: Path) -> bytes:
    """Fetch the open-clip-torch wheel from the package registry (no install) and read the BPE file out of it."""
    print(
        f"Building CLIP's tokenizer needs its BPE file ({BPE_IN_WHEEL}), which ships in the open-clip-torch wheel: "
        "downloading the wheel from PyPI with pip (a few MB, nothing installed)",
        file=sys.stderr,
    )
    download = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(into),
            "open-clip-torch",
        ],
        capture_output=True,
        text=True,
    )
    if download.returncode != 0:
        raise RuntimeError(
            f"could not download the open-clip-torch wheel from PyPI for CLIP's BPE file "
            f"({(download.stderr.strip().splitlines() or ['no message'])[-1]}): connect to PyPI, or "
            "copy helpers/tiny_shapes_sd/tokenizer (the same tokenizer) to the training folder's "
            "tokenizer/, which training then reuses"
        )
    wheel = next(into.glob("open_clip_torch-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(BPE_IN_WHEEL)


def vocab_and_merges(bpe_gz: bytes) -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary (bytes, bytes ending a word, merges, two special tokens) and its merge list."""
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    byte_tokens = list(bytes_to_unicode().values())
    tokens = (
        byte_tokens
        + [t + "</w>" for t in byte_tokens]
        + ["".join(m.split()) for m in merges]
    )
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tokenizer(out_dir: Path) -> CLIPTokenizer:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer config SD v1.5 uses into ``out_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = vocab_and_merges(download_bpe(Path(tmp)))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False), encoding="utf-8"
    )
    (out_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    tokenizer = CLIPTokenizer.from_pretrained(out_dir, model_max_length=77)
    tokenizer.save_pretrained(
        out_dir
    )  # adds tokenizer_config.json, special tokens and the fast tokenizer.json
    return tokenizer
