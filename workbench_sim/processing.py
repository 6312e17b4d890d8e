"""The real work a simulated job does for file:// prefixes: a manifest of its input files."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

MANIFEST_NAME = "_manifest.json"
SUCCESS_NAME = "_SUCCESS"
_CHUNK = 1024 * 1024


class ProcessingError(Exception):
    """The job cannot finish successfully; the message becomes the job's error_message."""


def local_path(uri: str) -> Path | None:
    """The local directory a file:// URI names, or None for any other scheme (s3, gs, abfs)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise ProcessingError(f"file URIs on another host are not supported: {uri}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ProcessingError(f"file URI does not name an absolute path: {uri}")
    return Path(path)


def process(input_uri: str, output_uri: str, header: dict[str, Any]) -> str:
    """Scan a local input and write the manifest to a local output; return a summary for the log.

    Remote prefixes are left alone: the simulator cannot read or write them, and the real
    Workbench would. With a local input and a remote output the input is still checked, so
    a missing input directory fails the job the same way whatever the output is.
    """
    input_dir = local_path(input_uri)
    output_dir = local_path(output_uri)
    if input_dir is None:
        return "input is not a file:// prefix; nothing processed"
    files = scan(input_dir, exclude=output_dir)
    if output_dir is None:
        return f"scanned {len(files)} input files; output is not a file:// prefix, nothing written"
    manifest = {
        **header,
        "input_path_prefix": input_uri,
        "output_path_prefix": output_uri,
        "files": files,
        "total_files": len(files),
        "total_bytes": sum(f["size"] for f in files),
    }
    write_outputs(output_dir, manifest)
    return f"wrote a manifest of {len(files)} files to {output_dir}"


def scan(input_dir: Path, exclude: Path | None = None) -> list[dict[str, Any]]:
    """Every regular file under input_dir (recursively) with its relative path, size and sha256."""
    if not input_dir.exists():
        raise ProcessingError(f"input directory does not exist: {input_dir}")
    if not input_dir.is_dir():
        raise ProcessingError(f"input path is not a directory: {input_dir}")
    # An output inside the input would otherwise list its own manifest on a second run.
    skip = exclude.resolve() if exclude is not None else None
    files = []
    try:
        for root, dirs, names in os.walk(input_dir, onerror=_raise):
            root_path = Path(root)
            dirs[:] = sorted(d for d in dirs if (root_path / d).resolve() != skip)
            for name in sorted(names):
                path = root_path / name
                # Sockets, FIFOs and dangling links have no content to checksum.
                if not path.is_file():
                    continue
                size, digest = _digest(path)
                rel = path.relative_to(input_dir).as_posix()
                files.append({"path": rel, "size": size, "sha256": digest})
    except OSError as exc:
        raise ProcessingError(f"cannot read the input under {input_dir}: {_reason(exc)}") from exc
    files.sort(key=lambda f: f["path"])
    return files


def write_outputs(output_dir: Path, manifest: dict[str, Any]) -> None:
    """Write _manifest.json atomically, then the _SUCCESS marker."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        tmp = output_dir / f".{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            # A reader never sees half a manifest: the rename is atomic on one filesystem.
            os.replace(tmp, output_dir / MANIFEST_NAME)
        finally:
            tmp.unlink(missing_ok=True)
        # Written last so that whoever sees _SUCCESS also finds the complete manifest.
        (output_dir / SUCCESS_NAME).write_bytes(b"")
    except OSError as exc:
        raise ProcessingError(f"cannot write the output to {output_dir}: {_reason(exc)}") from exc


def _digest(path: Path) -> tuple[int, str]:
    # Size is counted while hashing so that both describe the same bytes.
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _raise(exc: OSError) -> None:
    raise exc


def _reason(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"
