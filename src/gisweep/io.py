"""Reading and writing the pipeline's files: atomic Parquet with provenance, atomic torch files.

Every output is written to a temporary file in the same folder and renamed into place, so a
killed job never leaves a half-written file under its final name. pandas, pyarrow and torch are
imported where used: a command pays for them only when it reads or writes such a file.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
from contextlib import contextmanager
from pathlib import Path

from gisweep import GisweepError, __version__

PROVENANCE_KEY = b"gisweep"


def package_versions() -> dict:
    import numpy
    import pandas as pd
    import pyarrow as pa
    import torch

    return {
        "gisweep": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
    }


def provenance(**fields) -> dict:
    """Provenance record stored in file metadata: the caller's fields plus package versions."""
    return {**fields, "versions": package_versions()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(df: pd.DataFrame | pa.Table, path, meta: dict | None = None) -> None:
    """Write a table atomically, with `meta` (JSON-able) stored under the 'gisweep' metadata key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    old = table.schema.metadata or {}
    md = {**old, PROVENANCE_KEY: json.dumps(meta or {}, sort_keys=True, default=str).encode()}
    table = table.replace_schema_metadata(md)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_csv(df: pd.DataFrame, path) -> None:
    """Write a readable copy of a table as CSV, atomically (6 significant digits)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def save_torch(record: dict, path) -> None:
    """torch.save a record of tensors and plain values, atomically, with the same bytes on every run.

    torch's zip writer names the archive's records after the file it writes to (`<stem>/data.pkl`),
    so saving straight to the random temporary name would make every run's file differ. Saved to
    a buffer, the records are named `archive/...` whatever the final name; the bytes then go
    through the temporary file like every other output.
    """
    import io

    import torch

    buf = io.BytesIO()
    torch.save(record, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_torch(path, kind: str, required=()) -> dict:
    """A record written by save_torch (on the CPU); a missing, unreadable or incomplete file raises
    GisweepError naming it and the `kind` of file it should have been (e.g. 'model')."""
    import pickle
    import warnings

    import torch

    path = Path(path)
    if not path.exists():
        raise GisweepError(f"{path}: {kind} file not found")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files it did not write; the error below says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message advises loading with weights_only=False, which would run any code the file
        # holds: only tensors and plain values are loaded, and that advice is not passed on
        raise GisweepError(f"{path}: not a gisweep {kind} file (not a torch file of tensors and plain "
                           "values)") from None
    except Exception as e:  # truncated or corrupt archives raise RuntimeError, EOFError, ...
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0]
        reason = type(e).__name__ + (f": {first}" if first and "weights_only" not in first else "")
        raise GisweepError(f"{path}: not a gisweep {kind} file ({reason})") from None
    missing = set(required) - set(record) if isinstance(record, dict) else set(required)
    if missing or not isinstance(record, dict):
        raise GisweepError(f"{path}: not a gisweep {kind} file (missing {sorted(missing)})")
    return record


def read_parquet(path, columns: list[str] | None = None, required: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file; a missing, corrupt or incomplete file raises GisweepError naming it."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise GisweepError(f"{path}: file not found")
    try:
        df = pq.read_table(path, columns=columns).to_pandas()
    except Exception as e:  # pyarrow raises several types for truncated/corrupt files
        raise GisweepError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    missing = [c for c in (required or []) if c not in df.columns]
    if missing:
        raise GisweepError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def read_csv(path, required: list[str] | None = None, what: str = "") -> pd.DataFrame:
    """Read a CSV table; a missing, unreadable or incomplete file raises GisweepError naming it and,
    when given, `what` wrote it (e.g. "written by hull-train-size")."""
    import pandas as pd

    path = Path(path)
    hint = f" ({what})" if what else ""
    if not path.exists():
        raise GisweepError(f"{path}: file not found{hint}")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:  # ParserError and EmptyDataError are ValueErrors
        raise GisweepError(f"{path}: not a readable CSV ({type(e).__name__}: {e}){hint}") from None
    missing = [c for c in (required or []) if c not in df.columns]
    if missing:
        raise GisweepError(f"{path}: missing column(s) {missing}; found {list(df.columns)}{hint}")
    return df


def read_provenance(path) -> dict:
    """The provenance record stored by write_parquet."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_schema(path).metadata or {}
    except Exception as e:
        raise GisweepError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    return json.loads(md.get(PROVENANCE_KEY, b"{}"))
